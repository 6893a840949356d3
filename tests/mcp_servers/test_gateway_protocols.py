"""Both MCP protocol revisions through a real `mcpgym serve all`: a session client (2025-11-25) and sessionless
clients of 2026-07-28 (the Python SDK's, and a raw HTTP client written against the revision's wire rules)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_servers.gateway.process import GatewayProcess

TOKEN = "protocols-token"
MODERN = "2026-07-28"
SESSIONS = "2025-11-25"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gw").resolve()


@pytest.fixture(scope="module")
def gateway(root: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(["all"], workspace=root, token=TOKEN) as gw:
        yield gw


def sdk_client(gw: GatewayProcess, server: str, mode: str, workspace: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if workspace:
        headers["Mcpgym-Workspace"] = workspace
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return http, Client(streamable_http_client(gw.url(server), http_client=http), mode=mode)


class RawModernClient:
    """A 2026-07-28 client in a few lines: every request a self-contained POST with its envelope and method headers."""

    def __init__(self, url: str, workspace: str | None = None, **headers: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream", **headers}
        if workspace:
            self.headers["Mcpgym-Workspace"] = workspace
        self.ids = 0

    def post(self, method: str, params: dict[str, Any] | None = None, *, name: str | None = None,
             headers: dict[str, str] | None = None, client: httpx.Client | None = None) -> httpx.Response:
        self.ids += 1
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw-modern", "version": "1"},
        }
        body = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": {**(params or {}), "_meta": meta}}
        sent = {**self.headers, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
        if name is not None:
            sent["Mcp-Name"] = name
        sent.update(headers or {})
        if client is not None:
            return client.post(self.url, json=body, headers=sent)
        return httpx.post(self.url, json=body, headers=sent, timeout=30)

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        r = self.post("tools/call", {"name": tool, "arguments": arguments}, name=tool)
        assert r.status_code == 200, r.text
        assert "mcp-session-id" not in r.headers
        result: dict[str, Any] = r.json()["result"]
        return result


async def test_session_client_of_2025_11_25(gateway: GatewayProcess, root: Path) -> None:
    http, client = sdk_client(gateway, "files", "legacy")
    async with http, client as c:
        assert c.session.protocol_version == SESSIONS
        names = [t.name for t in (await c.list_tools()).tools]
        assert names == [t.name for t in (await c.list_tools()).tools] and "write_file" in names
        result = await c.call_tool("write_file", {"path": "a.txt", "content": "session data"})
        assert not result.is_error
        session_dirs = [p for p in root.iterdir() if p.name.startswith("s-")]
        assert len(session_dirs) == 1 and (session_dirs[0] / "a.txt").read_text() == "session data"
        result = await c.call_tool("read_text_file", {"path": "a.txt"})
        assert result.content[0].text == "session data"
        result = await c.call_tool("read_text_file", {"path": "missing.txt"})
        assert result.is_error and "missing.txt" in result.content[0].text
    assert not session_dirs[0].exists()  # the client ended the session: its workspace went with it


async def test_sessionless_client_of_2026_07_28(gateway: GatewayProcess, root: Path) -> None:
    http, client = sdk_client(gateway, "files", "auto", workspace="modern-job")
    async with http, client as c:
        assert c.session.protocol_version == MODERN
        first = [t.name for t in (await c.list_tools()).tools]
        assert first == [t.name for t in (await c.list_tools()).tools]
        assert not (await c.call_tool("write_file", {"path": "m.txt", "content": "modern"})).is_error
    http, client = sdk_client(gateway, "files", "auto", workspace="modern-job")
    async with http, client as c:  # another client, same header: the same workspace, no session anywhere
        assert (await c.call_tool("read_text_file", {"path": "m.txt"})).content[0].text == "modern"
    assert (root / "w-modern-job" / "m.txt").read_text() == "modern"


def test_raw_2026_07_28_requests(gateway: GatewayProcess) -> None:
    raw = RawModernClient(gateway.url("files"), workspace="raw-job")
    r = raw.post("server/discover")
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    discovered = r.json()["result"]
    assert MODERN in discovered["supportedVersions"] and "tools" in discovered["capabilities"]
    listings = [raw.post("tools/list").json()["result"]["tools"] for _ in range(3)]
    assert listings[0] == listings[1] == listings[2]  # deterministic order
    assert raw.call("write_file", path="r.txt", content="raw")["isError"] is False
    assert raw.call("read_text_file", path="r.txt")["content"][0]["text"] == "raw"
    # the revision's required method header, checked against the body
    r = raw.post("tools/list", headers={"Mcp-Method": "tools/call"})
    assert r.status_code == 400 and "mcp-method header" in r.json()["error"]["message"].lower()
    r = raw.post("tools/call", {"name": "read_text_file", "arguments": {"path": "r.txt"}}, name="write_file")
    assert r.status_code == 400 and "mcp-name header" in r.json()["error"]["message"].lower()
    # no workspace header and no session: a tool error that says what to send
    result = RawModernClient(gateway.url("files")).call("list_directory")
    assert result["isError"] and "Mcpgym-Workspace" in result["content"][0]["text"]
    # other servers of the gateway speak it too
    weather = RawModernClient(gateway.url("weather")).call("get_current_weather", location="Paris")
    assert weather["isError"] is False and "Paris" in weather["content"][0]["text"]


def test_session_requests_follow_the_specification(gateway: GatewayProcess) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": SESSIONS, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    url = gateway.url("files")
    with httpx.Client(headers=headers, timeout=30) as http:
        r = http.post(url, json=init)
        assert r.status_code == 200 and r.json()["result"]["protocolVersion"] == SESSIONS
        sid = r.headers["mcp-session-id"]
        session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": SESSIONS}
        r = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        assert r.status_code == 202
        r = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session)
        assert r.status_code == 200 and r.headers["mcp-session-id"] == sid and r.json()["result"]["tools"]
        r = http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "no/such"}, headers=session)
        assert r.json()["error"]["code"] == -32601  # method not found, as the SDK answers it
        r = http.post(url, content=b"{not json", headers={**session, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == -32700
        r = http.post(url, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
                      headers={**session, "Accept": "text/html"})
        assert r.status_code == 406
        r = http.get(url, headers=session)
        assert r.status_code == 405  # no standalone stream: the servers send nothing unsolicited
        r = http.post(url, json={"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
        assert r.status_code == 400  # no session id on a request that is not initialize
        assert http.delete(url, headers=session).status_code == 200
        r = http.post(url, json={"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, headers=session)
        assert r.status_code == 404  # ended
        r = http.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                      headers={"Mcp-Session-Id": "made-up", "MCP-Protocol-Version": SESSIONS})
        assert r.status_code == 404


async def test_idle_sessions_end(tmp_path: Path) -> None:
    with GatewayProcess(["files"], workspace=tmp_path, extra_args=["--session-idle-timeout", "0.5"]) as gw:
        http = httpx2.AsyncClient(timeout=30)
        async with http, Client(streamable_http_client(gw.url("files"), http_client=http), mode="legacy") as c:
            assert not (await c.call_tool("write_file", {"path": "x.txt", "content": "x"})).is_error
            (session_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("s-")]
            deadline = time.monotonic() + 15
            while session_dir.exists() and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            assert not session_dir.exists()  # idle for longer than the timeout: session and workspace gone
            headers = {"Mcp-Session-Id": session_dir.name.removeprefix("s-"), "MCP-Protocol-Version": SESSIONS,
                       "Accept": "application/json"}
            r = await http.post(gw.url("files"), json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"},
                                headers=headers)
            assert r.status_code == 404
