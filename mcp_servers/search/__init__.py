"""The search MCP server, its local full-text index (`mcp_servers.search.index`) and its guarded web backend."""

from mcp_servers.search.corpus import Document
from mcp_servers.search.index import build_index, get_document, iter_documents
from mcp_servers.search.server import build_search_server

__all__ = ["Document", "build_index", "build_search_server", "get_document", "iter_documents"]
