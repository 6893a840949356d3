"""Run the search server over stdio with settings from the environment: ``python -m mcp_servers.search``."""

from mcp_servers.search.server import build_search_server
from mcp_servers.settings import ServerSettings

if __name__ == "__main__":
    build_search_server(ServerSettings()).run("stdio")
