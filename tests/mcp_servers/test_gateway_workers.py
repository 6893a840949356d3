"""`mcpgym serve all --workers 2`: two real gateway processes on one port, serving header-workspace calls from both
processes over one workspace root, and routing a session's requests to the process that opened it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from modern_http import modern_call

from mcp_servers.cli import serve
from mcp_servers.gateway.http_server import UIDS_PER_WORKER, worker_settings
from mcp_servers.gateway.process import GatewayProcess
from mcp_servers.settings import ServerSettings

TOKEN = "workers-token"
MODERN = "2026-07-28"
SESSIONS = "2025-11-25"
ATTEMPTS = 200  # fresh connections tried until both workers have answered (each lands on either: 2^-199 to miss)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gw2").resolve()


@pytest.fixture(scope="module")
def gateway(root: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(["all"], workspace=root, token=TOKEN, extra_args=["--workers", "2"]) as gw:
        yield gw


def files_call(gw: GatewayProcess, tool: str, workspace: str, **arguments: object) -> httpx.Response:
    """One 2026-07-28 files call on a fresh connection (each may be accepted by either worker)."""
    return modern_call(gw, "files", tool, workspace, token=TOKEN, timeout=30, **arguments)


def test_both_workers_answer_health(gateway: GatewayProcess) -> None:
    seen = set()
    for _ in range(ATTEMPTS):
        with httpx.Client(timeout=10) as http:  # a new connection each time
            body = http.get(f"{gateway.base_url}/healthz").json()
        assert body["workers"] == 2
        seen.add(body["worker"])
        if seen == {0, 1}:
            break
    assert seen == {0, 1}


def test_header_workspace_calls_are_served_by_both_processes(gateway: GatewayProcess, root: Path) -> None:
    r = files_call(gateway, "write_file", "shared-job", path="note.txt", content="written once")
    assert r.status_code == 200 and r.json()["result"]["isError"] is False
    served_by = set()
    for _ in range(ATTEMPTS):
        r = files_call(gateway, "read_text_file", "shared-job", path="note.txt")
        assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "written once"
        served_by.add(r.headers["mcpgym-worker"])
        if served_by == {"0", "1"}:
            break
    assert served_by == {"0", "1"}  # both processes read the one workspace under the shared root
    assert (root / "w-shared-job" / "note.txt").read_text() == "written once"


def test_a_session_stays_with_the_worker_that_opened_it(gateway: GatewayProcess, root: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": SESSIONS, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    with httpx.Client(headers=headers, timeout=30) as http:
        r = http.post(gateway.url("files"), json=init)
        sid, owner = r.headers["mcp-session-id"], r.headers["mcpgym-worker"]
    assert sid.endswith(f".w{owner}")
    session = {**headers, "Mcp-Session-Id": sid, "MCP-Protocol-Version": SESSIONS}
    write = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "write_file", "arguments": {"path": "s.txt", "content": "in session"}}}
    read = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "read_text_file", "arguments": {"path": "s.txt"}}}
    assert httpx.post(gateway.url("files"), json=write, headers=session, timeout=30).json()["result"]["isError"] is False
    forwarded = 0
    for _ in range(ATTEMPTS):  # fresh connections: those the other worker accepts are forwarded to the owner
        r = httpx.post(gateway.url("files"), json=read, headers=session, timeout=30)
        assert r.status_code == 200 and r.headers["mcpgym-worker"] == owner
        assert r.json()["result"]["content"][0]["text"] == "in session"
        if "mcpgym-via" in r.headers:
            assert r.headers["mcpgym-via"] != owner
            forwarded += 1
            if forwarded == 3:
                break
    assert forwarded == 3
    assert (root / f"s-{sid}" / "s.txt").read_text() == "in session"
    for _ in range(5):
        r = httpx.post(gateway.url("files"), json=read, headers={**session, "Authorization": "Bearer wrong"}, timeout=30)
        assert r.status_code == 401  # forwarding never skips the token check
    assert httpx.delete(gateway.url("files"), headers=session, timeout=30).status_code == 200
    assert not (root / f"s-{sid}").exists()
    for _ in range(5):
        assert httpx.post(gateway.url("files"), json=read, headers=session, timeout=30).status_code == 404


def test_workers_get_separate_sandbox_uids_and_need_json_mode(tmp_path: Path) -> None:
    settings = ServerSettings()
    bases = [worker_settings(settings, i).exec.uid_base for i in range(3)]
    assert bases == [settings.exec.uid_base + i * UIDS_PER_WORKER for i in range(3)]
    result = CliRunner().invoke(serve, ["all", "--workers", "2", "--sse", "--workspace", str(tmp_path)])
    assert result.exit_code != 0 and "--workers" in result.output and "--json" in result.output
    result = CliRunner().invoke(serve, ["files", "--workers", "2", "--workspace", str(tmp_path)])
    assert result.exit_code == 2 and "--transport http" in result.output
    result = CliRunner().invoke(serve, ["all", "--workers", "0", "--workspace", str(tmp_path)])
    assert result.exit_code == 2 and "--workers" in result.output
