"""The weather MCP server and its deterministic offline provider (`mcp_servers.weather.offline`)."""

from mcp_servers.weather.server import build_weather_server

__all__ = ["build_weather_server"]
