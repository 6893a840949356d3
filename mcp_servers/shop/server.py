"""The shop MCP server: catalog search, product details, stock per store, shipping quotes, prices in other
currencies and order totals. Offline and deterministic (see `mcp_servers.shop.data`)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.errors import tool_errors
from mcp_servers.settings import ServerSettings
from mcp_servers.shop import data

__all__ = ["build_shop_server"]

SkuArg = Annotated[str, Field(description="A product's SKU", json_schema_extra={"enum": list(data.CATALOG)})]
StoreArg = Annotated[str, Field(description="The store", json_schema_extra={"enum": list(data.STORES)})]


def build_shop_server(settings: ServerSettings) -> MCPServer:
    """Build the shop server (it has no settings of its own; `settings` is accepted like every server's).

    Returns:
        An `MCPServer` with the tools ``find_products``, ``get_product``, ``check_stock``, ``quote_shipping``,
        ``convert_price`` and ``order_total``.
    """
    del settings
    server = MCPServer(
        name="mcpgym-shop",
        instructions="An outdoor-gear shop: search its catalog, check stock in its four stores, quote shipping, "
        "state prices in other currencies and price orders.",
    )

    def annotations(title: str) -> ToolAnnotations:
        return ToolAnnotations(
            title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )

    @server.tool(annotations=annotations("Find products"), structured_output=True)
    @tool_errors
    def find_products(
        query: Annotated[str, Field(min_length=1, max_length=100, description="Words to find in names")],
        category: Annotated[
            str | None,
            Field(
                description="Only this category",
                json_schema_extra={"enum": ["footwear", "clothing", "gear", "camping"]},
            ),
        ] = None,
        max_results: Annotated[int, Field(ge=1, le=12, description="At most this many products")] = 5,
    ) -> data.ProductList:
        """Search the catalog: the products whose name or category holds every word of the query, cheapest first."""
        return data.find_products(query, category, max_results)

    @server.tool(annotations=annotations("Product details"), structured_output=True)
    @tool_errors
    def get_product(sku: SkuArg) -> data.Product:
        """Get one product's name, category, price in USD and shipping weight."""
        return data.get_product(sku)

    @server.tool(annotations=annotations("Stock"), structured_output=True)
    @tool_errors
    def check_stock(sku: SkuArg, store: StoreArg) -> data.Stock:
        """Get how many units of a product one store has on hand, and when it restocks if it has none."""
        return data.check_stock(sku, store)

    @server.tool(annotations=annotations("Shipping quote"), structured_output=True)
    @tool_errors
    def quote_shipping(
        weight_kg: Annotated[float, Field(gt=0, le=30, description="Parcel weight in kg")],
        country: Annotated[
            str, Field(description="Destination, ISO 3166 code", json_schema_extra={"enum": list(data.COUNTRIES)})
        ],
        express: Annotated[bool, Field(description="Express delivery (2 business days, 1.8x the price)")] = False,
    ) -> data.ShippingQuote:
        """Quote the cost in USD and the business days of shipping a parcel to a country."""
        return data.quote_shipping(weight_kg, country, express)

    @server.tool(annotations=annotations("Price in another currency"), structured_output=True)
    @tool_errors
    def convert_price(
        amount_usd: Annotated[float, Field(ge=0, le=100000, description="The amount in US dollars")],
        currency: Annotated[
            str, Field(description="Target currency", json_schema_extra={"enum": list(data.CURRENCIES)})
        ],
    ) -> data.Price:
        """State an amount in US dollars in another currency, at the shop's fixed rates."""
        return data.convert_price(amount_usd, currency)

    @server.tool(annotations=annotations("Order total"), structured_output=True)
    @tool_errors
    def order_total(
        items: Annotated[list[data.LineItem], Field(min_length=1, max_length=10, description="The order's lines")],
        coupon: Annotated[str | None, Field(description="A coupon code, if any")] = None,
    ) -> data.OrderTotal:
        """Price an order: the subtotal of its lines in USD, the coupon's discount and the total."""
        return data.order_total(items, coupon)

    return server
