"""The web search backend: a SearXNG-compatible JSON API, and guarded fetching of result pages as text."""

from __future__ import annotations

import html.parser
import json
import re
from typing import Any

import httpx

from mcp_servers.errors import BackendError, ConfigError, ToolInputError
from mcp_servers.search.netguard import DestinationPolicy, guarded_get
from mcp_servers.settings import SearchSettings

__all__ = ["SearxngBackend", "highlight", "html_to_text"]

_WORD = re.compile(r"\w+")
_MAX_PAGES = 5


def highlight(text: str, query: str) -> str:
    """Mark the query's words (3+ characters) in ``text`` with ``**``, as the local index's snippets do."""
    words = sorted({w for w in _WORD.findall(query) if len(w) >= 3}, key=len, reverse=True)
    if not words:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return pattern.sub(r"**\1**", text)


class _TextExtractor(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """Extract ``(title, text)`` from HTML, dropping scripts and styles and collapsing whitespace."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    text = re.sub(r"\s*\n\s*", "\n", text).strip()
    return parser.title.strip(), text


class SearxngBackend:
    """Search through a SearXNG instance's JSON API and fetch result pages, under a destination policy.

    The SearXNG host is always on the allow-list; result pages may be fetched from hosts in
    ``settings.allowed_hosts`` (``"*"`` for any public host).

    Args:
        settings: Search settings (``searxng_url``, ``allowed_hosts``, ``allow_private*``, timeouts, caps).
        transport: An httpx transport to use instead of the network; None for the default.

    Raises:
        ConfigError: ``searxng_url`` is missing or not an http(s) URL.
    """

    def __init__(self, settings: SearchSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.searxng_url:
            raise ConfigError("search backend 'searxng' needs MCPGYM_SEARCH__SEARXNG_URL, e.g. http://localhost:8888")
        base = httpx.URL(settings.searxng_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError(f"MCPGYM_SEARCH__SEARXNG_URL must be an http(s) URL, got {settings.searxng_url!r}")
        self.settings = settings
        self.search_url = str(base.join("search")) if not base.path.endswith("/search") else str(base)
        self.policy = DestinationPolicy(
            allowed_hosts=(base.host, *settings.allowed_hosts),
            allow_private=settings.allow_private,
            allow_private_hosts=tuple(h.lower() for h in settings.allow_private_hosts),
        )
        self._transport = transport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.settings.timeout_s,
            follow_redirects=False,
            transport=self._transport,
            headers={"User-Agent": "mcpgym-search/0.1", "Accept": "application/json, text/html;q=0.9, */*;q=0.5"},
        )

    async def _page(self, client: httpx.AsyncClient, query: str, pageno: int) -> dict[str, Any]:
        result = await guarded_get(
            client,
            self.search_url,
            self.policy,
            params={"q": query, "format": "json", "pageno": pageno},
            max_redirects=self.settings.max_redirects,
            max_bytes=self.settings.max_fetch_bytes,
        )
        if result.status_code != 200:
            hint = " (is the JSON format enabled in the instance's settings.yml?)" if result.status_code == 403 else ""
            raise BackendError(f"SearXNG answered HTTP {result.status_code}{hint}")
        try:
            body = json.loads(result.body)
        except ValueError:
            raise BackendError("SearXNG answered with a body that is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
            raise BackendError("SearXNG answered with JSON that has no 'results' list")
        return body

    async def search(self, query: str, k: int = 10, offset: int = 0) -> dict[str, Any]:
        """Search the web.

        Args:
            query: Free text.
            k: Number of hits.
            offset: Hits to skip.

        Returns:
            ``{"total": int, "more": bool, "hits": [{"id", "title", "snippet", "score", "source", "url"}]}``; the id of a
            web hit is its URL.

        Raises:
            ToolInputError: Empty query or a refused destination.
            BackendError: SearXNG failed.
        """
        if not _WORD.search(query):
            raise ToolInputError("query must contain at least one letter or digit, e.g. 'speed of light'")
        hits: list[dict[str, Any]] = []
        seen: set[str] = set()
        total: int | None = None
        exhausted = False
        async with self._client() as client:
            for pageno in range(1, _MAX_PAGES + 1):
                body = await self._page(client, query, pageno)
                if total is None and isinstance(body.get("number_of_results"), int) and body["number_of_results"]:
                    total = int(body["number_of_results"])
                rows = [r for r in body.get("results", []) if isinstance(r, dict) and r.get("url")]
                new = [r for r in rows if str(r["url"]) not in seen]
                for row in new:
                    url = str(row["url"])
                    seen.add(url)
                    score = row.get("score")
                    hits.append(
                        {
                            "id": url,
                            "title": str(row.get("title") or url),
                            "snippet": highlight(str(row.get("content") or ""), query),
                            "score": round(float(score), 4) if isinstance(score, int | float) else None,
                            "source": httpx.URL(url).host or "web",
                            "url": url,
                        }
                    )
                exhausted = not new
                if exhausted or len(hits) >= offset + k:
                    break
        page = hits[offset : offset + k]
        for rank, hit in enumerate(page, start=offset + 1):
            if hit["score"] is None:
                hit["score"] = round(1.0 / rank, 4)
        # SearXNG often reports number_of_results as 0 (unknown): then count what was read, and say whether more
        # result pages may follow.
        if total is not None:
            more = offset + len(page) < total
        else:
            more = len(hits) > offset + len(page) or (not exhausted and len(page) == k)
        return {"total": total if total is not None else len(hits), "hits": page, "more": more}

    async def fetch(self, url: str) -> dict[str, Any]:
        """Fetch a web page (a hit's id) as plain text.

        Returns:
            ``{"id", "title", "text", "source", "url"}``.

        Raises:
            ToolInputError: Not a URL, a refused destination, or an unsupported content type.
            BackendError: The page could not be fetched.
        """
        if not url.startswith(("http://", "https://")):
            raise ToolInputError(f"doc_id {url!r}: with the web backend, doc_id is the URL of a search hit")
        async with self._client() as client:
            result = await guarded_get(
                client, url, self.policy, max_redirects=self.settings.max_redirects,
                max_bytes=self.settings.max_fetch_bytes,
            )  # fmt: skip
        if result.status_code >= 400:
            raise BackendError(f"{url} answered HTTP {result.status_code}")
        kind = result.content_type.split(";")[0].strip().lower()
        charset_match = re.search(r"charset=([\w-]+)", result.content_type)
        try:
            raw = result.body.decode(charset_match.group(1) if charset_match else "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            raw = result.body.decode("utf-8", errors="replace")
        if kind in ("text/html", "application/xhtml+xml"):
            title, text = html_to_text(raw)
        elif kind.startswith("text/") or kind in ("application/json", ""):
            title, text = "", raw
        else:
            raise ToolInputError(f"{url} is {kind!r}; only HTML and text pages can be read")
        return {
            "id": url,
            "title": title or url,
            "text": text,
            "source": httpx.URL(result.url).host or "web",
            "url": result.url,
        }
