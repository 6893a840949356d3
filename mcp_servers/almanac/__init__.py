"""The almanac MCP server: past weather, air quality, sun times, unit and date calculations (offline, deterministic).

Its tools sit next to the weather server's (close names, close descriptions), so an agent offered both has to choose
by what each tool really serves. The pure library is `mcp_servers.almanac.data`; the server is
`mcp_servers.almanac.server.build_almanac_server`.
"""
