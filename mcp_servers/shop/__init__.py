"""The shop MCP server: a small store's catalog, stock, shipping quotes, prices in other currencies and order totals.

Its tools share nothing with the other built-in servers (no weather, files, code or encyclopedia): the CPU proof
holds it out of every training row and measures, with schema tasks over it, whether a model trained on the other
servers calls tools it has never seen from their schemas alone. The pure library is `mcp_servers.shop.data`.
"""
