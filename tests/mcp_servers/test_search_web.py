"""The SearXNG web backend against a real local server speaking SearXNG's JSON API, and its destination checks.

Refusals happen before any connection: the tests prove it with a second local server that must see no request,
and by refusing link-local and private literals without resolving or contacting them.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mcp import Client

from mcp_servers.errors import ToolInputError
from mcp_servers.search.netguard import DestinationPolicy, check_destination
from mcp_servers.search.server import build_search_server
from mcp_servers.search.web import highlight, html_to_text
from mcp_servers.settings import SearchSettings, ServerSettings

PAGE_HTML = """<!doctype html><html><head><title>Page {n}</title><style>body {{color: red}}</style></head>
<body><script>var secret = "not text";</script><h1>Result page {n}</h1><p>Alpine glaciers retreat.</p>
<p>{filler}</p></body></html>"""


class FakeWeb(ThreadingHTTPServer):
    """A SearXNG instance plus a few web pages and redirects, on 127.0.0.1."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], str]] = []  # path, query, Host header
        self.json_enabled = True
        self.report_total = True  # False: number_of_results is 0, as many SearXNG engines leave it

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _results(query: str, pageno: int, base: str) -> dict[str, Any]:
    if pageno > 2:
        return {"query": query, "number_of_results": 0, "results": []}
    results = [
        {
            "url": f"{base}/page/{(pageno - 1) * 10 + i}",
            "title": f"{query.title()} result {(pageno - 1) * 10 + i}",
            "content": f"All about {query} in depth, number {(pageno - 1) * 10 + i}.",
            "engine": "fake",
            "engines": ["fake"],
            "score": round(5.0 - (pageno - 1) - i * 0.1, 2),
            "category": "general",
        }
        for i in range(10)
    ]
    return {"query": query, "number_of_results": 20, "results": results, "answers": [], "suggestions": []}


class _Handler(BaseHTTPRequestHandler):
    server: FakeWeb

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append((parts.path, params, self.headers.get("Host", "")))
        if parts.path == "/search":
            if not self.server.json_enabled or params.get("format") != "json":
                return self._send(403, "text/html", b"<h1>403 Forbidden</h1>")
            host = self.headers.get("Host", "")
            body = _results(params.get("q", ""), int(params.get("pageno", "1")), f"http://{host}")
            if not self.server.report_total:
                body["number_of_results"] = 0
            return self._send(200, "application/json", json.dumps(body).encode())
        if parts.path.startswith("/page/"):
            n = parts.path.rsplit("/", 1)[1]
            html = PAGE_HTML.format(n=n, filler="Moraine and ice. " * 200)
            return self._send(200, "text/html; charset=utf-8", html.encode())
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", params["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if parts.path.startswith("/chain/"):
            left = int(parts.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/chain/{left - 1}" if left > 0 else "/page/1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if parts.path == "/binary":
            return self._send(200, "application/octet-stream", b"\x00\x01\x02")
        self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _start() -> FakeWeb:
    server = FakeWeb()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    server = _start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def victim() -> Iterator[FakeWeb]:
    """Another local server that refused requests must never reach."""
    server = _start()
    yield server
    server.shutdown()
    server.server_close()


def _settings(web: FakeWeb, **search: Any) -> ServerSettings:
    search.setdefault("allow_private_hosts", [f"127.0.0.1:{web.port}"])
    return ServerSettings(
        search=SearchSettings(backend="searxng", searxng_url=search.pop("url", web.base + "/"), timeout_s=5, **search)
    )


async def _call(settings: ServerSettings, tool: str, args: dict[str, Any]) -> tuple[bool, Any, str]:
    async with Client(build_search_server(settings)) as client:
        result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert "Traceback" not in text
    return bool(result.is_error), result.structured_content, text


async def test_search_returns_ranked_web_hits(web: FakeWeb) -> None:
    async with Client(build_search_server(_settings(web))) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("search", {"query": "glacier", "k": 3})
    assert all(t.annotations and t.annotations.open_world_hint for t in tools)
    found = result.structured_content
    assert found is not None and not result.is_error
    assert found["backend"] == "searxng" and found["total"] == 20 and found["next_offset"] == 3
    first = found["hits"][0]
    assert first["id"] == first["url"] == f"{web.base}/page/0"
    assert first["snippet"] == "All about **glacier** in depth, number 0."
    assert first["score"] == 5.0 and first["source"] == "127.0.0.1"
    assert web.requests[0][1] == {"q": "glacier", "format": "json", "pageno": "1"}


async def test_paging_reads_further_result_pages(web: FakeWeb) -> None:
    error, found, _ = await _call(_settings(web), "search", {"query": "moraine", "k": 5, "offset": 12})
    assert not error
    assert [h["id"].rsplit("/", 1)[1] for h in found["hits"]] == ["12", "13", "14", "15", "16"]
    assert [p for p, _, _ in web.requests] == ["/search", "/search"]


async def test_paging_without_a_reported_total(web: FakeWeb) -> None:
    web.report_total = False
    error, first, _ = await _call(_settings(web), "search", {"query": "ice", "k": 10})
    assert not error and first["next_offset"] == 10  # a full page: more may follow
    error, second, _ = await _call(_settings(web), "search", {"query": "ice", "k": 10, "offset": 10})
    assert not error and len(second["hits"]) == 10 and second["next_offset"] == 20  # still unknown
    error, past, _ = await _call(_settings(web), "search", {"query": "ice", "k": 10, "offset": 20})
    assert not error and past["hits"] == [] and past["next_offset"] is None  # page 3 came back empty
    assert past["total"] == 20


async def test_fetch_document_reads_a_page_as_text(web: FakeWeb) -> None:
    error, doc, _ = await _call(_settings(web), "fetch_document", {"doc_id": f"{web.base}/page/7", "max_chars": 300})
    assert not error
    assert doc["title"] == "Page 7"
    assert doc["text"].startswith("Result page 7\nAlpine glaciers retreat.")
    assert "secret" not in doc["text"] and "color" not in doc["text"]
    assert doc["truncated"] is True and doc["next_offset"] == 300 and doc["total_chars"] > 3000


async def test_host_header_keeps_the_name_while_connecting_to_the_checked_address(web: FakeWeb) -> None:
    settings = _settings(web, url=f"http://localhost:{web.port}/", allow_private_hosts=[f"localhost:{web.port}"])
    error, found, text = await _call(settings, "search", {"query": "ice", "k": 1})
    assert not error, text
    assert web.requests[0][2] == f"localhost:{web.port}"
    assert found["hits"][0]["url"].startswith(f"http://localhost:{web.port}/")


async def test_loopback_instance_is_refused_without_exemption(web: FakeWeb) -> None:
    error, _, text = await _call(_settings(web, allow_private_hosts=[]), "search", {"query": "glacier"})
    assert error
    assert "resolves to 127.0.0.1, a private, loopback, link-local or reserved address" in text
    assert web.requests == []  # refused before connecting


async def test_redirect_to_another_loopback_port_is_refused(web: FakeWeb, victim: FakeWeb) -> None:
    target = f"{web.base}/redirect?to=http://127.0.0.1:{victim.port}/page/1"
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": target})
    assert error and f"destination http://127.0.0.1:{victim.port}/page/1 refused" in text
    assert [p for p, _, _ in web.requests] == ["/redirect"]
    assert victim.requests == []


async def test_the_same_redirect_passes_when_private_destinations_are_allowed(web: FakeWeb, victim: FakeWeb) -> None:
    target = f"{web.base}/redirect?to=http://127.0.0.1:{victim.port}/page/1"
    error, doc, text = await _call(_settings(web, allow_private=True), "fetch_document", {"doc_id": target})
    assert not error, text
    assert doc["title"] == "Page 1" and doc["url"] == f"http://127.0.0.1:{victim.port}/page/1"
    assert len(victim.requests) == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://192.168.1.1/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
async def test_redirects_to_private_link_local_and_loopback_targets_are_refused(web: FakeWeb, location: str) -> None:
    target = f"{web.base}/redirect?to={location}"
    error, _, text = await _call(_settings(web, allowed_hosts=["*"]), "fetch_document", {"doc_id": target})
    assert error
    assert "refused" in text and "private, loopback, link-local or reserved address" in text


async def test_hosts_off_the_allow_list_are_refused_before_resolution(web: FakeWeb) -> None:
    target = f"{web.base}/redirect?to=https://elsewhere.example/page"
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": target})
    assert error and "host 'elsewhere.example' is not on the allow-list" in text
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": "https://elsewhere.example/"})
    assert error and "not on the allow-list" in text


async def test_other_schemes_and_bad_ids_are_refused(web: FakeWeb) -> None:
    target = f"{web.base}/redirect?to=file:///etc/passwd"
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": target})
    assert error and "only http and https URLs are accepted" in text
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": "wiki/Paris"})
    assert error and "with the web backend, doc_id is the URL of a search hit" in text


async def test_redirect_chains_are_capped(web: FakeWeb) -> None:
    error, _, text = await _call(_settings(web, max_redirects=3), "fetch_document", {"doc_id": f"{web.base}/chain/5"})
    assert error and "more than 3 redirects" in text
    error, doc, _ = await _call(_settings(web, max_redirects=6), "fetch_document", {"doc_id": f"{web.base}/chain/5"})
    assert not error and doc["title"] == "Page 1"


async def test_unreadable_content_and_disabled_json_are_clear_errors(web: FakeWeb) -> None:
    error, _, text = await _call(_settings(web), "fetch_document", {"doc_id": f"{web.base}/binary"})
    assert error and "'application/octet-stream'; only HTML and text pages can be read" in text
    web.json_enabled = False
    error, _, text = await _call(_settings(web), "search", {"query": "glacier"})
    assert error and "HTTP 403 (is the JSON format enabled" in text


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://[::1]/", "http://[::ffff:10.0.0.1]/", "http://169.254.1.1/", "http://172.16.0.1/",
     "http://[fe80::1]/", "http://[fc00::1]/", "http://224.0.0.1/", "http://198.18.0.1/"],
)  # fmt: skip
async def test_private_address_literals_are_refused(url: str) -> None:
    with pytest.raises(ToolInputError, match="private, loopback, link-local or reserved"):
        await check_destination(httpx.URL(url), DestinationPolicy(allowed_hosts=("*",)))


async def test_public_literals_pass_and_exemptions_are_per_host_and_port() -> None:
    policy = DestinationPolicy(allowed_hosts=("*",), allow_private_hosts=("127.0.0.1:8888",))
    assert str(await check_destination(httpx.URL("http://9.9.9.9/"), policy)) == "9.9.9.9"  # checked, not contacted
    assert str(await check_destination(httpx.URL("http://127.0.0.1:8888/"), policy)) == "127.0.0.1"
    with pytest.raises(ToolInputError):
        await check_destination(httpx.URL("http://127.0.0.1:8889/"), policy)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::10.0.0.5", "64:ff9b::169.254.169.254", "64:ff9b::127.0.0.1",  # NAT64 well-known prefix
        "64:ff9b:1::a00:5", "64:ff9b:1:a00:5::", "64:ff9b:1::909:909",  # NAT64 local-use prefix: never public
        "::127.0.0.1", "::10.0.0.1", "::169.254.169.254",  # IPv4-compatible
        "::ffff:127.0.0.1", "::ffff:192.168.1.1",  # IPv4-mapped
        "::ffff:0:127.0.0.1", "::ffff:0:10.0.0.5", "::ffff:0:169.254.169.254",  # SIIT IPv4-translated
        "2002:a9fe:a9fe::", "2002:7f00:1::1", "2002:a00:5:1::1",  # 6to4 of 169.254.169.254, 127.0.0.1, 10.0.0.5
        "2001:0:909:909:0:0:f5ff:fffe",  # Teredo: public server 9.9.9.9, client 10.0.0.1 (stored inverted)
        "2001:0:a00:1:0:0:f6f6:f6f6",  # Teredo: server 10.0.0.1, public client 9.9.9.9
        "fec0::1", "feff:1::1",  # site-local
    ],
)  # fmt: skip
async def test_ipv6_forms_that_embed_a_refused_ipv4_are_refused(address: str) -> None:
    with pytest.raises(ToolInputError, match="private, loopback, link-local or reserved"):
        await check_destination(httpx.URL(f"http://[{address}]/"), DestinationPolicy(allowed_hosts=("*",)))


@pytest.mark.parametrize("address", ["64:ff9b::9.9.9.9", "::ffff:9.9.9.9", "::ffff:0:9.9.9.9", "2002:909:909::1"])
async def test_ipv6_forms_that_embed_a_public_ipv4_pass(address: str) -> None:
    # checked, not contacted: the embedded address decides, so NAT64 networks still reach public hosts
    policy = DestinationPolicy(allowed_hosts=("*",))
    assert str(await check_destination(httpx.URL(f"http://[{address}]/"), policy)) == str(ipaddress.ip_address(address))


def test_allow_list_matching() -> None:
    policy = DestinationPolicy(allowed_hosts=("searx.example.org", "*.wikipedia.org"))
    assert policy.host_allowed("SEARX.example.org")
    assert policy.host_allowed("en.wikipedia.org")
    assert not policy.host_allowed("wikipedia.org.evil.test")
    assert not policy.host_allowed("example.org")


def test_highlight_and_html_to_text() -> None:
    assert highlight("Glaciers and a glacier", "glacier") == "Glaciers and a **glacier**"
    assert highlight("Ice", "of") == "Ice"
    title, text = html_to_text("<title>T</title><p>a &amp; b</p><script>x()</script><div>c</div>")
    assert (title, text) == ("T", "a & b\nc")
