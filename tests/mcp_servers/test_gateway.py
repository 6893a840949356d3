"""The HTTP gateway as a real `mcpgym serve all` subprocess: sessions, workspaces, token, limits, Host checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from mcp_servers.gateway.app import _call_timeout_middleware

TOKEN = "test-token-123"


@dataclass
class Gateway:
    url: str
    workspace: Path
    token: str | None
    proc: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(workspace: Path, *extra: str, token: str | None = TOKEN) -> Gateway:
    port = _free_port()
    args = [
        sys.executable,
        "-m",
        "mcpgym.cli",
        "serve",
        "all",
        "--transport",
        "http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workspace",
        str(workspace),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGYM_")}
    if token:
        args += ["--token", token]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Gateway(url, workspace, token, proc)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


def stop_gateway(gw: Gateway) -> None:
    gw.proc.terminate()
    try:
        gw.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("gw"), "--max-body-bytes", "50000")
    yield gw
    stop_gateway(gw)


@asynccontextmanager
async def connect(
    gw: Gateway,
    server: str = "files",
    *,
    mode: str = "legacy",
    workspace: str | None = None,
    token: str | None = "default",
    session_id: str | None = None,
) -> AsyncIterator[Client]:
    headers = {}
    tok = gw.token if token == "default" else token
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    if workspace:
        headers["Mcpgym-Workspace"] = workspace
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    async with http, Client(streamable_http_client(f"{gw.url}/{server}/mcp", http_client=http), mode=mode) as c:
        yield c


def session_dirs(gw: Gateway) -> list[str]:
    return sorted(p.name for p in gw.workspace.iterdir())


async def text(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return str(result.content[0].text)


def test_healthz_lists_servers(gateway: Gateway) -> None:
    body = httpx.get(f"{gateway.url}/healthz").json()
    assert body["status"] == "ok"
    assert body["servers"]["files"] == "/files/mcp"
    assert set(body["servers"]) | set(body["skipped"]) == {"files", "search", "weather", "exec", "almanac", "shop"}


def test_token_required_on_mcp_routes(gateway: Gateway) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for path in ("/files/mcp", "/weather/mcp"):
        r = httpx.post(f"{gateway.url}{path}", json=init, headers=headers)
        assert r.status_code == 401 and "missing bearer token" in r.json()["message"]
        r = httpx.post(f"{gateway.url}{path}", json=init, headers={**headers, "Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "invalid bearer token" in r.json()["message"]
    r = httpx.post(f"{gateway.url}/files/mcp", json=init, headers={**headers, "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


async def test_client_without_token_is_refused(gateway: Gateway) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own transport error type for a 401
        async with connect(gateway, token=None) as c:
            await c.list_tools()


def test_host_and_origin_checks_stay_on(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    r = httpx.post(f"{gateway.url}/files/mcp", json=init, headers={**headers, "Host": "evil.example:80"})
    assert r.status_code in (400, 403, 421)
    r = httpx.post(f"{gateway.url}/files/mcp", json=init, headers={**headers, "Origin": "http://evil.example"})
    assert r.status_code in (400, 403)


def test_healthz_checks_host_and_origin_too(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", "127.0.0.1:1.evil.example"):
        r = httpx.get(f"{gateway.url}/healthz", headers={"Host": host})
        assert r.status_code == 421 and "servers" not in r.text, host
    r = httpx.get(f"{gateway.url}/healthz", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "servers" not in r.text
    r = httpx.get(f"{gateway.url}/files/mcp", headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 421


def test_body_size_limit(gateway: Gateway) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    r = httpx.post(f"{gateway.url}/files/mcp", content=b"{" + b" " * 60_000 + b"}", headers=headers)
    assert r.status_code == 413


async def test_concurrent_sessions_have_separate_workspaces(gateway: Gateway) -> None:
    results: dict[str, str] = {}
    seen_dirs: list[list[str]] = []

    async def agent(name: str) -> None:
        async with connect(gateway) as c:
            await text(c, "write_file", path="note.txt", content=f"written by {name}")
            await anyio.sleep(0.2)  # both sessions are open at once
            seen_dirs.append(session_dirs(gateway))
            listing = await c.call_tool("list_directory", {})
            assert [e["name"] for e in listing.structured_content["entries"]] == ["note.txt"]
            results[name] = await text(c, "read_text_file", path="note.txt")

    async with anyio.create_task_group() as tg:
        tg.start_soon(agent, "a")
        tg.start_soon(agent, "b")
    assert results == {"a": "written by a", "b": "written by b"}
    assert any(len([d for d in dirs if d.startswith("s-")]) >= 2 for dirs in seen_dirs)
    # each client ended its session (DELETE): the workspaces are gone
    assert [d for d in session_dirs(gateway) if d.startswith("s-")] == []


async def test_sessionless_protocol_uses_workspace_header(gateway: Gateway) -> None:
    async with connect(gateway, mode="auto") as c:
        assert c.session.protocol_version >= "2026"
        result = await c.call_tool("list_directory", {})
        assert result.is_error and "Mcpgym-Workspace" in result.content[0].text
    async with (
        connect(gateway, mode="auto", workspace="job-1") as c1,
        connect(gateway, mode="auto", workspace="job-1") as c2,
        connect(gateway, mode="auto", workspace="job-2") as c3,
    ):
        await text(c1, "write_file", path="shared.txt", content="one")
        assert await text(c2, "read_text_file", path="shared.txt") == "one"  # same id, same workspace
        r = await c3.call_tool("read_text_file", {"path": "shared.txt"})
        assert r.is_error and "does not exist" in r.content[0].text
    assert (gateway.workspace / "w-job-1" / "shared.txt").read_text() == "one"
    async with connect(gateway, mode="auto", workspace="../escape") as c:
        r = await c.call_tool("list_directory", {})
        assert r.is_error and "Mcpgym-Workspace header" in r.content[0].text
    assert not (gateway.workspace.parent / "escape").exists()


async def test_sessionless_requests_cannot_borrow_a_session_id(gateway: Gateway) -> None:
    async with connect(gateway) as owner:  # a session (initialize handshake) with a private file
        await text(owner, "write_file", path="secret.txt", content="the owner's secret")
        (live,) = [d.removeprefix("s-") for d in session_dirs(gateway) if d.startswith("s-")]
        # sessionless (2026-07-28) requests that name the live session's id, or a made-up one, in Mcp-Session-Id
        for session_id in (live, "made-up-id-1234"):
            async with connect(gateway, mode="auto", session_id=session_id) as thief:
                assert thief.session.protocol_version >= "2026"
                r = await thief.call_tool("read_text_file", {"path": "secret.txt"})
                assert r.is_error and "secret" not in r.content[0].text.replace("secret.txt", "")
                assert "Mcpgym-Workspace" in r.content[0].text and "no sessions" in r.content[0].text
                r = await thief.call_tool("list_directory", {})
                assert r.is_error
        assert not (gateway.workspace / "s-made-up-id-1234").exists()  # a made-up id creates no workspace
        assert await text(owner, "read_text_file", path="secret.txt") == "the owner's secret"
    # with the header, the session id is ignored: the header's workspace, not the session's
    async with connect(gateway, mode="auto", workspace="job-own", session_id="made-up-id-1234") as c:
        r = await c.call_tool("list_directory", {})
        assert not r.is_error and r.structured_content["entries"] == []


async def test_idle_workspaces_are_removed(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "ws", "--session-idle-timeout", "0.5", token=None)
    try:
        async with connect(gw, mode="auto", workspace="idle-job") as c:
            await text(c, "write_file", path="x.txt", content="x")
        assert (gw.workspace / "w-idle-job" / "x.txt").exists()
        deadline = time.monotonic() + 15
        while (gw.workspace / "w-idle-job").exists() and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        assert not (gw.workspace / "w-idle-job").exists()
    finally:
        stop_gateway(gw)


async def test_header_workspaces_are_capped(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "ws", "--max-workspaces", "2", token=None)
    try:
        for job in ("job-a", "job-b"):
            async with connect(gw, mode="auto", workspace=job) as c:
                await text(c, "write_file", path="x.txt", content=job)
        async with connect(gw, mode="auto", workspace="job-c") as c:  # a third id: refused, nothing created
            r = await c.call_tool("write_file", {"path": "x.txt", "content": "c"})
            assert r.is_error and "2 live workspaces" in r.content[0].text and "--max-workspaces" in r.content[0].text
        assert session_dirs(gw) == ["w-job-a", "w-job-b"]
        async with connect(gw, mode="auto", workspace="job-a") as c:  # the live ones still work
            assert await text(c, "read_text_file", path="x.txt") == "job-a"
    finally:
        stop_gateway(gw)


async def test_call_timeout_middleware_turns_a_slow_call_into_a_tool_error() -> None:
    server = MCPServer("slow")

    @server.tool()
    async def nap(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "awake"

    server.middleware.append(_call_timeout_middleware(0.2))
    async with Client(server) as c:
        assert (await c.call_tool("nap", {"seconds": 0})).content[0].text == "awake"
        result = await c.call_tool("nap", {"seconds": 5})
        assert result.is_error
        assert result.content[0].text == "Error executing tool nap: timed out after 0.2 s (the server's call limit)"
