"""The shop server: its pure library (catalog search, stock, shipping, currency and order arithmetic, errors that
name what is accepted), the server over stdio, and schema tasks over it (the proof's held-out server)."""

from __future__ import annotations

import sys

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from collector.tasks.schema_tasks import generate_schema_tasks
from mcp_servers.errors import ToolInputError
from mcp_servers.shop import data


def test_find_and_get_products() -> None:
    found = data.find_products("boots")
    assert [p.sku for p in found.products] == ["SKU-1010"]
    gear = data.find_products("e", category="gear", max_results=2).products
    assert [p.price_usd for p in gear] == sorted(p.price_usd for p in gear) and len(gear) == 2
    assert all(p.category == "gear" for p in gear)
    assert data.get_product(" sku-1006 ").name == "Two-person tent"
    with pytest.raises(ToolInputError, match="unknown sku 'SKU-9'; the catalog has SKU-1001, SKU-1002"):
        data.get_product("SKU-9")
    with pytest.raises(ToolInputError, match="unknown category 'toys'; categories are camping, clothing"):
        data.find_products("x", category="toys")


def test_stock_is_stable_and_sometimes_out() -> None:
    everything = [data.check_stock(sku, store) for sku in data.CATALOG for store in data.STORES]
    assert everything == [data.check_stock(s.sku, s.store) for s in everything]  # deterministic
    out = [s for s in everything if s.units == 0]
    assert out and all(s.restock_days is not None and 2 <= s.restock_days <= 10 for s in out)
    assert all(s.restock_days is None for s in everything if s.units > 0)
    with pytest.raises(ToolInputError, match="unknown store 'east'; stores are north, south, harbor, airport"):
        data.check_stock("SKU-1001", "east")


def test_shipping_currency_and_orders() -> None:
    quote = data.quote_shipping(2.0, "se")
    assert (quote.country, quote.cost_usd, quote.business_days) == ("SE", 25.0, 7)  # 16 + 4.5 x 2
    assert data.quote_shipping(2.0, "SE", express=True).cost_usd == 45.0  # x 1.8
    assert data.quote_shipping(1.0, "US").business_days == 3
    with pytest.raises(ToolInputError, match="no shipping to 'XX'; countries \\(ISO codes\\) are US, CA"):
        data.quote_shipping(1.0, "XX")
    with pytest.raises(ToolInputError, match="weight_kg must be over 0 and at most 30"):
        data.quote_shipping(31, "US")
    assert data.convert_price(100, "eur").amount == 92.0
    assert data.convert_price(0.5, "JPY").amount == 75.5
    with pytest.raises(ToolInputError, match="unknown currency 'BTC'; currencies are USD, EUR"):
        data.convert_price(1, "BTC")
    order = data.order_total(
        [data.LineItem(sku="SKU-1003", quantity=3), data.LineItem(sku="SKU-1011", quantity=1)], "summer15"
    )
    assert (order.subtotal_usd, order.discount_usd, order.total_usd, order.coupon) == (101.5, 15.23, 86.27, "SUMMER15")
    with pytest.raises(ToolInputError, match="unknown coupon 'FREE'; valid coupons are WELCOME10"):
        data.order_total([data.LineItem(sku="SKU-1003", quantity=1)], "FREE")
    with pytest.raises(ToolInputError, match="items is empty"):
        data.order_total([])


async def test_server_over_stdio_and_schema_tasks() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcpgym.cli", "serve", "shop"])
    async with Client(stdio_client(params), mode="auto") as client:
        tools = (await client.list_tools()).tools
        names = sorted(t.name for t in tools)
        assert names == [
            "check_stock",
            "convert_price",
            "find_products",
            "get_product",
            "order_total",
            "quote_shipping",
        ]
        ok = await client.call_tool("order_total", {"items": [{"sku": "SKU-1001", "quantity": 2}]})
        assert not ok.is_error and ok.structured_content["total_usd"] == 178.0
        bad = await client.call_tool("check_stock", {"sku": "SKU-1001", "store": "moon"})
        assert bad.is_error and "store" in bad.content[0].text
        schemas = [t.model_dump(by_alias=True, exclude_none=True) for t in tools]
    # every tool's schema can be sampled: schema tasks cover all six tools, and every sampled SKU is a real one
    tasks = generate_schema_tasks({"shop": schemas}, seed=0, n=30)
    called = {c["name"] for t in tasks for c in t.verifier.calls or []}
    assert called == set(names)
    skus = [c["arguments"]["sku"] for t in tasks for c in t.verifier.calls or [] if "sku" in c["arguments"]]
    assert skus and set(skus) <= set(data.CATALOG)
