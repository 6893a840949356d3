"""The search MCP server: ranked full-text search and document reading (local FTS5 index or SearXNG)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_servers.errors import ToolInputError, tool_errors
from mcp_servers.search.index import get_document, search_index
from mcp_servers.search.web import SearxngBackend
from mcp_servers.settings import ServerSettings

__all__ = ["DocumentText", "SearchHit", "SearchResults", "build_search_server"]


MAX_K = 50
MAX_OFFSET = 1000
MAX_CHARS = 20_000


class SearchHit(BaseModel):
    """One ranked hit."""

    id: str = Field(description="Pass to fetch_document to read the whole document")
    title: str
    snippet: str = Field(description="Matching passage; matched words are marked **like this**")
    score: float = Field(description="Relevance; higher is better (bm25 for the local index)")
    source: str = Field(description="Corpus name, or the web site's host")
    url: str | None = None


class SearchResults(BaseModel):
    """A page of ranked hits."""

    query: str
    backend: str = Field(description="'local' (offline index) or 'searxng' (web)")
    total: int = Field(description="Number of matching documents")
    offset: int
    hits: list[SearchHit]
    next_offset: int | None = Field(description="Offset of the next page, or null when there is none")


class DocumentText(BaseModel):
    """A window of a document's text."""

    id: str
    title: str
    source: str
    url: str | None = None
    text: str
    offset: int = Field(description="Character offset of this window")
    total_chars: int
    next_offset: int | None = Field(description="Pass as offset to read on, or null at the end of the document")
    truncated: bool = Field(description="True when the document continues after this window")


QueryArg = Annotated[
    str, Field(min_length=1, max_length=500, description="Keywords or a question; put exact phrases in double quotes")
]
KArg = Annotated[int, Field(ge=1, le=MAX_K, description=f"Number of hits to return, 1 to {MAX_K}")]
OffsetArg = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Hits to skip, for the next page")]
DocIdArg = Annotated[str, Field(min_length=1, max_length=2000, description="The id of a search hit")]
CharOffsetArg = Annotated[int, Field(ge=0, description="Character offset to start reading at")]
MaxCharsArg = Annotated[int, Field(ge=100, le=MAX_CHARS, description=f"Characters to return, 100 to {MAX_CHARS}")]


def _window(doc: dict[str, Any], offset: int, max_chars: int) -> DocumentText:
    text: str = doc["text"]
    total = len(text)
    if offset > total or (offset == total and total > 0):
        raise ToolInputError(f"offset {offset} is past the end of document {doc['id']!r} ({total} characters)")
    end = min(total, offset + max_chars)
    return DocumentText(
        id=doc["id"],
        title=doc["title"],
        source=doc["source"],
        url=doc.get("url"),
        text=text[offset:end],
        offset=offset,
        total_chars=total,
        next_offset=end if end < total else None,
        truncated=end < total,
    )


def build_search_server(settings: ServerSettings) -> MCPServer:
    """Build the search server for the configured backend.

    Args:
        settings: Server settings; ``settings.search.backend`` picks ``local`` (SQLite FTS5 over the bundled
            Wikipedia lead sections plus ``search.corpus``, built on first use) or ``searxng`` (web search
            through ``search.searxng_url`` under the destination policy).

    Returns:
        An `MCPServer` with the tools ``search`` and ``fetch_document``.

    Raises:
        ConfigError: The searxng backend is chosen without a valid ``searxng_url``.
    """
    web = SearxngBackend(settings.search) if settings.search.backend == "searxng" else None
    backend = "searxng" if web is not None else "local"
    corpus = "the web (through SearXNG)" if web else "an offline encyclopedia (Wikipedia lead sections) and local notes"
    server = MCPServer(
        name="mcpgym-search",
        instructions=f"Search {corpus}: call search to find documents, then fetch_document to read one.",
    )
    annotations = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                  open_world_hint=web is not None)  # fmt: skip

    @server.tool(annotations=annotations.model_copy(update={"title": "Search documents"}), structured_output=True)
    @tool_errors
    async def search(query: QueryArg, k: KArg = 10, offset: OffsetArg = 0) -> SearchResults:
        """Search for documents matching a query and get ranked hits (id, title, a snippet with the matching words
        marked, and a score).

        Use this to find facts you do not know, or the document that answers a question. Then call fetch_document
        with a hit's id to read it; snippets are short. Use offset to page through more hits.
        """
        if web is not None:
            found = await web.search(query, k, offset)
        else:
            found = await anyio.to_thread.run_sync(search_index, settings, query, k, offset)
        hits = [SearchHit(**hit) for hit in found["hits"]]
        more = found.get("more", offset + len(hits) < found["total"]) and len(hits) == k
        return SearchResults(
            query=query,
            backend=backend,
            total=found["total"],
            offset=offset,
            hits=hits,
            next_offset=offset + len(hits) if more else None,
        )

    @server.tool(annotations=annotations.model_copy(update={"title": "Read a document"}), structured_output=True)
    @tool_errors
    async def fetch_document(
        doc_id: DocIdArg, offset: CharOffsetArg = 0, max_chars: MaxCharsArg = 4000
    ) -> DocumentText:
        """Read the text of a document found with search, by its id.

        Long documents come in windows of max_chars characters: when next_offset is not null, call again with
        offset=next_offset to read on.
        """
        if web is not None:
            doc = await web.fetch(doc_id)
        else:
            found = await anyio.to_thread.run_sync(get_document, settings, doc_id)
            doc = {"id": found.id, "title": found.title, "text": found.text, "source": found.source}
        return _window(doc, offset, max_chars)

    return server
