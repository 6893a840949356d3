"""The shop's pure library: a fixed catalog and deterministic stock, shipping, currency and order arithmetic."""

from __future__ import annotations

import hashlib
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, Field

from mcp_servers.errors import ToolInputError

__all__ = [
    "CATALOG",
    "COUNTRIES",
    "CURRENCIES",
    "STORES",
    "LineItem",
    "OrderTotal",
    "Price",
    "Product",
    "ProductList",
    "ShippingQuote",
    "Stock",
    "check_stock",
    "convert_price",
    "find_products",
    "get_product",
    "order_total",
    "quote_shipping",
]


class Product(BaseModel):
    """One catalog item."""

    sku: str
    name: str
    category: str
    price_usd: float
    weight_kg: float


CATALOG: dict[str, Product] = {
    p.sku: p
    for p in (
        Product(sku="SKU-1001", name="Trail running shoes", category="footwear", price_usd=89.0, weight_kg=0.9),
        Product(sku="SKU-1002", name="Rain jacket", category="clothing", price_usd=120.0, weight_kg=0.6),
        Product(sku="SKU-1003", name="Insulated water bottle", category="gear", price_usd=24.5, weight_kg=0.4),
        Product(sku="SKU-1004", name="Headlamp", category="gear", price_usd=32.0, weight_kg=0.15),
        Product(sku="SKU-1005", name="Wool socks (3 pairs)", category="clothing", price_usd=18.0, weight_kg=0.3),
        Product(sku="SKU-1006", name="Two-person tent", category="camping", price_usd=249.0, weight_kg=2.4),
        Product(sku="SKU-1007", name="Sleeping bag", category="camping", price_usd=159.0, weight_kg=1.3),
        Product(sku="SKU-1008", name="Camping stove", category="camping", price_usd=64.0, weight_kg=0.8),
        Product(sku="SKU-1009", name="Day backpack", category="gear", price_usd=75.0, weight_kg=0.7),
        Product(sku="SKU-1010", name="Hiking boots", category="footwear", price_usd=165.0, weight_kg=1.4),
        Product(sku="SKU-1011", name="Sun hat", category="clothing", price_usd=28.0, weight_kg=0.1),
        Product(sku="SKU-1012", name="First aid kit", category="gear", price_usd=35.0, weight_kg=0.5),
    )
}
STORES = ("north", "south", "harbor", "airport")
# shipping: (base USD, USD per kg, express multiplier, business days standard/express)
COUNTRIES: dict[str, tuple[float, float]] = {
    "US": (5.0, 1.5),
    "CA": (9.0, 2.5),
    "MX": (11.0, 3.0),
    "GB": (14.0, 4.0),
    "DE": (14.0, 4.0),
    "FR": (14.0, 4.0),
    "SE": (16.0, 4.5),
    "JP": (18.0, 5.0),
    "AU": (21.0, 6.0),
    "BR": (19.0, 5.5),
}
CURRENCIES: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0, "SEK": 10.6, "CAD": 1.37}
COUPONS: dict[str, int] = {"WELCOME10": 10, "SUMMER15": 15, "CAMP20": 20}
_CENT = Decimal("0.01")


def _money(value: Decimal | float) -> float:
    return float(Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP))


def _product(sku: str) -> Product:
    key = sku.strip().upper()
    if key not in CATALOG:
        raise ToolInputError(f"unknown sku {sku!r}; the catalog has {', '.join(CATALOG)} (find_products searches it)")
    return CATALOG[key]


class ProductList(BaseModel):
    """The products that match a search."""

    query: str
    products: list[Product]


def find_products(query: str, category: str | None = None, max_results: int = 5) -> ProductList:
    """Products whose name or category contains every word of `query` (case-insensitive), cheapest first."""
    words = query.casefold().split()
    if category is not None and category not in {p.category for p in CATALOG.values()}:
        known = sorted({p.category for p in CATALOG.values()})
        raise ToolInputError(f"unknown category {category!r}; categories are {', '.join(known)}")
    found = [
        p
        for p in CATALOG.values()
        if all(w in f"{p.name} {p.category}".casefold() for w in words) and category in (None, p.category)
    ]
    found.sort(key=lambda p: (p.price_usd, p.sku))
    return ProductList(query=query, products=found[:max_results])


def get_product(sku: str) -> Product:
    """One product by its SKU."""
    return _product(sku)


class Stock(BaseModel):
    """Units on hand of one product in one store."""

    sku: str
    store: str
    units: int
    restock_days: int | None = Field(description="Days until the next delivery when none are on hand")


def check_stock(sku: str, store: str) -> Stock:
    """Units on hand: a stable function of the product and the store (some are out of stock)."""
    product = _product(sku)
    if store not in STORES:
        raise ToolInputError(f"unknown store {store!r}; stores are {', '.join(STORES)}")
    digest = hashlib.sha256(f"{product.sku}/{store}".encode()).digest()
    units = digest[0] % 13 - 3  # -3..9: 16 of the 48 product-store pairs are out of stock
    if units <= 0:
        return Stock(sku=product.sku, store=store, units=0, restock_days=2 + digest[1] % 9)
    return Stock(sku=product.sku, store=store, units=units, restock_days=None)


class ShippingQuote(BaseModel):
    """The cost and time of shipping a parcel."""

    country: str
    weight_kg: float
    express: bool
    cost_usd: float
    business_days: int


def quote_shipping(weight_kg: float, country: str, express: bool = False) -> ShippingQuote:
    """Base rate plus a rate per kg for the destination; express costs 1.8x and takes 2 business days."""
    code = country.strip().upper()
    if code not in COUNTRIES:
        raise ToolInputError(f"no shipping to {country!r}; countries (ISO codes) are {', '.join(COUNTRIES)}")
    if not 0 < weight_kg <= 30:
        raise ToolInputError(f"weight_kg must be over 0 and at most 30 (a parcel's limit), not {weight_kg}")
    base, per_kg = COUNTRIES[code]
    cost = Decimal(str(base)) + Decimal(str(per_kg)) * Decimal(str(weight_kg))
    if express:
        cost *= Decimal("1.8")
    days = 2 if express else (3 if code == "US" else 7)
    return ShippingQuote(country=code, weight_kg=weight_kg, express=express, cost_usd=_money(cost), business_days=days)


class Price(BaseModel):
    """An amount in US dollars stated in another currency."""

    amount_usd: float
    currency: str
    amount: float
    rate: float


def convert_price(amount_usd: float, currency: str) -> Price:
    """An amount in USD in another currency, at the shop's fixed rates."""
    code = currency.strip().upper()
    if code not in CURRENCIES:
        raise ToolInputError(f"unknown currency {currency!r}; currencies are {', '.join(CURRENCIES)}")
    rate = CURRENCIES[code]
    return Price(
        amount_usd=amount_usd, currency=code, amount=_money(Decimal(str(amount_usd)) * Decimal(str(rate))), rate=rate
    )


class LineItem(BaseModel):
    """One line of an order: a product and how many."""

    sku: str = Field(description="A product's SKU", json_schema_extra={"enum": list(CATALOG)})
    quantity: int = Field(ge=1, le=99)


class OrderTotal(BaseModel):
    """An order's lines, subtotal, discount and total in USD."""

    lines: list[dict[str, object]]
    subtotal_usd: float
    coupon: str | None
    discount_usd: float
    total_usd: float


def order_total(items: list[LineItem], coupon: str | None = None) -> OrderTotal:
    """The price of an order: each line's unit price times its quantity, less a coupon's percentage."""
    if not items:
        raise ToolInputError("items is empty; give at least one {sku, quantity}")
    lines: list[dict[str, object]] = []
    subtotal = Decimal(0)
    for item in items:
        product = _product(item.sku)
        line = Decimal(str(product.price_usd)) * item.quantity
        subtotal += line
        lines.append({"sku": product.sku, "quantity": item.quantity, "line_usd": _money(line)})
    percent = 0
    code = None
    if coupon is not None:
        code = coupon.strip().upper()
        if code not in COUPONS:
            raise ToolInputError(f"unknown coupon {coupon!r}; valid coupons are {', '.join(COUPONS)}")
        percent = COUPONS[code]
    discount = Decimal(str(_money(subtotal * percent / 100)))  # rounded first: total = subtotal - the discount shown
    return OrderTotal(
        lines=lines,
        subtotal_usd=_money(subtotal),
        coupon=code,
        discount_usd=_money(discount),
        total_usd=_money(subtotal - discount),
    )
