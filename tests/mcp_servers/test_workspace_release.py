"""Releasing a header workspace on request: `DELETE` with `Mcpgym-Workspace` and no `Mcp-Session-Id`, against a real
`mcpgym serve all` (one process, and `--workers 2` over one workspace root)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from modern_http import modern_call

from mcp_servers.errors import ToolInputError
from mcp_servers.gateway.process import GatewayProcess
from mcp_servers.gateway.shared_workspaces import SharedWorkspaceManager
from mcp_servers.workspace import WorkspaceManager

TOKEN = "release-token"
MODERN = "2026-07-28"
SESSIONS = "2025-11-25"
ATTEMPTS = 200  # fresh connections tried until both workers have answered (each lands on either: 2^-199 to miss)


def call(gw: GatewayProcess, server: str, tool: str, workspace: str, **arguments: object) -> httpx.Response:
    return modern_call(gw, server, tool, workspace, token=TOKEN, **arguments)


def result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()["result"]
    assert out["isError"] is False, out
    return out


def release(gw: GatewayProcess, workspace: str, *, server: str = "files", token: str | None = TOKEN,
            **headers: str) -> httpx.Response:
    sent = {"Mcpgym-Workspace": workspace, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=60) as http:
        return http.delete(gw.url(server), headers=sent)


def header_request(workspace: str) -> SimpleNamespace:
    """What a tool's Context exposes of a sessionless HTTP request: its headers (lower-case keys)."""
    return SimpleNamespace(request_context=SimpleNamespace(request=SimpleNamespace(
        headers={"mcpgym-workspace": workspace}), protocol_version=MODERN))


def test_manager_releases_a_header_workspace_with_its_callbacks(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path / "ws", per_session=True)
    path = manager.current(header_request("job-1"))
    (path / "f.txt").write_text("x")
    seen: list[tuple[str, bool]] = []
    manager.on_release(lambda key, p: seen.append((key, (p / "f.txt").exists())))
    assert manager.release_header_workspace("job-1") is True
    assert seen == [("w-job-1", True)] and not path.exists() and manager.active() == {}
    assert manager.release_header_workspace("job-1") is False and seen == [("w-job-1", True)]
    other = SharedWorkspaceManager(tmp_path / "ws", per_session=True)  # another process over the same root
    made_elsewhere = other.current(header_request("job-2"))
    assert manager.release_header_workspace("job-2") is True and not made_elsewhere.exists()
    with pytest.raises(ToolInputError, match="1-64 characters"):
        manager.release_header_workspace("../ws")
    shared = WorkspaceManager(tmp_path / "shared", per_session=False)  # stdio: every caller works in the root
    (tmp_path / "shared" / "keep.txt").write_text("kept")
    assert shared.release_header_workspace("job-1") is False
    assert (tmp_path / "shared" / "keep.txt").read_text() == "kept"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("release").resolve()


@pytest.fixture(scope="module")
def gateway(root: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(["all"], workspace=root, token=TOKEN) as gw:
        yield gw


def test_delete_releases_a_header_workspace_and_the_id_starts_fresh(gateway: GatewayProcess, root: Path) -> None:
    result(call(gateway, "files", "write_file", "rel-job", path="a.txt", content="first episode"))
    ran = result(call(gateway, "exec", "run_shell", "rel-job", command="cat a.txt"))  # exec's sandbox state too
    assert "first episode" in ran["structuredContent"]["stdout"]
    assert (root / "w-rel-job" / "a.txt").exists()
    health = httpx.get(f"{gateway.base_url}/healthz", timeout=10).json()
    assert health["workspaces"] >= 1
    r = release(gateway, "rel-job", server="exec")  # any server's path: the workspaces are the gateway's
    assert r.status_code == 200 and r.json() == {"workspace": "rel-job", "released": True}
    assert not (root / "w-rel-job").exists()
    assert httpx.get(f"{gateway.base_url}/healthz", timeout=10).json()["workspaces"] == health["workspaces"] - 1
    listing = result(call(gateway, "files", "list_directory", "rel-job"))  # the same id again: a fresh, empty one
    assert listing["structuredContent"]["entries"] == []
    ran = result(call(gateway, "exec", "run_shell", "rel-job", command="ls -A | wc -l"))
    assert ran["structuredContent"]["stdout"].strip() == "0"
    assert release(gateway, "rel-job").json()["released"] is True
    assert not (root / "w-rel-job").exists()


def test_workspace_servers_advertise_the_release(gateway: GatewayProcess) -> None:
    """`server/discover` names the workspace extension on the servers that keep workspaces, and only there."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "MCP-Protocol-Version": MODERN,
               "Mcp-Method": "server/discover"}
    advertised = {}
    for server in ("files", "exec", "weather", "search"):
        found = httpx.post(gateway.url(server), json=body, headers=headers, timeout=30).json()["result"]
        advertised[server] = (found["capabilities"].get("extensions") or {}).get("mcpgym/workspace")
    expected = {"header": "Mcpgym-Workspace", "release": "DELETE"}
    assert advertised == {"files": expected, "exec": expected, "weather": None, "search": None}


def test_unknown_id_is_a_no_op_and_bad_ids_are_refused(gateway: GatewayProcess, root: Path) -> None:
    before = sorted(p.name for p in root.iterdir())
    r = release(gateway, "never-used-id")
    assert r.status_code == 200 and r.json() == {"workspace": "never-used-id", "released": False}
    for bad in ("../escape", "-leading-dash", "x" * 65, "with space", ""):
        r = release(gateway, bad)
        assert r.status_code == 400, (bad, r.text)
        message = r.json()["message"]
        assert "Mcpgym-Workspace" in message and "1-64 characters of letters, digits" in message
    assert sorted(p.name for p in root.iterdir()) == before
    assert not (root.parent / "escape").exists()


def test_release_needs_the_token(gateway: GatewayProcess, root: Path) -> None:
    result(call(gateway, "files", "write_file", "guarded", path="g.txt", content="kept"))
    r = release(gateway, "guarded", token=None)
    assert r.status_code == 401 and "missing bearer token" in r.json()["message"]
    r = release(gateway, "guarded", token="wrong")
    assert r.status_code == 401 and "invalid bearer token" in r.json()["message"]
    r = release(gateway, "guarded", Origin="http://evil.example")
    assert r.status_code == 403
    assert (root / "w-guarded" / "g.txt").read_text() == "kept"
    assert release(gateway, "guarded").status_code == 200
    assert not (root / "w-guarded").exists()


def test_ending_a_session_does_not_release_its_header_workspace(gateway: GatewayProcess, root: Path) -> None:
    """A DELETE with `Mcp-Session-Id` ends that session only: other sessions may share the header's workspace."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
               "Mcpgym-Workspace": "shared-by-sessions"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": SESSIONS, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    write = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "write_file", "arguments": {"path": "s.txt", "content": "from a session"}}}
    with httpx.Client(headers=headers, timeout=60) as http:
        sid = http.post(gateway.url("files"), json=init).headers["mcp-session-id"]
        session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": SESSIONS}
        assert http.post(gateway.url("files"), json=write, headers=session).json()["result"]["isError"] is False
        assert http.delete(gateway.url("files"), headers=session).status_code == 200
    assert (root / "w-shared-by-sessions" / "s.txt").read_text() == "from a session"
    assert release(gateway, "shared-by-sessions").json()["released"] is True
    assert not (root / "w-shared-by-sessions").exists()


def health_by_worker(gw: GatewayProcess) -> dict[int, int]:
    """Each worker's count of live workspaces, from `/healthz` on fresh connections until both have answered."""
    seen: dict[int, int] = {}
    for _ in range(ATTEMPTS):
        with httpx.Client(timeout=10) as http:
            body = http.get(f"{gw.base_url}/healthz").json()
        seen[body["worker"]] = body["workspaces"]
        if len(seen) == 2:
            break
    assert set(seen) == {0, 1}
    return seen


def test_one_request_releases_a_workspace_in_every_worker(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    with GatewayProcess(["all"], workspace=root, token=TOKEN, extra_args=["--workers", "2"]) as gw:
        result(call(gw, "files", "write_file", "both-workers", path="n.txt", content="shared"))
        served_by: set[str] = set()
        for _ in range(ATTEMPTS):  # fresh connections until both processes have used (and track) the workspace
            r = call(gw, "exec", "run_shell", "both-workers", command="cat n.txt")
            assert result(r)["structuredContent"]["stdout"] == "shared"
            served_by.add(r.headers["mcpgym-worker"])
            if served_by == {"0", "1"}:
                break
        assert served_by == {"0", "1"}
        assert health_by_worker(gw) == {0: 1, 1: 1}
        r = release(gw, "both-workers")
        assert r.status_code == 200 and r.json() == {"workspace": "both-workers", "released": True}
        assert not (root / "w-both-workers").exists()
        assert health_by_worker(gw) == {0: 0, 1: 0}  # each process dropped its own state for it
        assert release(gw, "both-workers").json()["released"] is False
        r = call(gw, "files", "list_directory", "both-workers")  # the id again, on either worker: empty
        assert result(r)["structuredContent"]["entries"] == []
        r = release(gw, "both-workers", token="wrong")
        assert r.status_code == 401
        assert (root / "w-both-workers").is_dir()
