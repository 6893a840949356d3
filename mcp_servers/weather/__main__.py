"""Run the weather server over stdio with settings from the environment: ``python -m mcp_servers.weather``."""

from mcp_servers.settings import ServerSettings
from mcp_servers.weather.server import build_weather_server

if __name__ == "__main__":
    build_weather_server(ServerSettings()).run("stdio")
