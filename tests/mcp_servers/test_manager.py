"""WorkspaceManager: keys, release callbacks, idle sweeping (real directories; requests as plain header carriers)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mcp_servers.errors import ToolInputError, WorkspaceError
from mcp_servers.workspace import WorkspaceManager


def request(**headers: str) -> SimpleNamespace:
    """What a tool's Context exposes of an HTTP request in a session: the request's headers (lower-case keys) and
    the negotiated protocol version (one with sessions, so the session id counts)."""
    return SimpleNamespace(
        request_context=SimpleNamespace(request=SimpleNamespace(headers=headers), protocol_version="2025-11-25")
    )


def test_shared_root_for_stdio(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path / "ws", per_session=False)
    assert manager.current(None) == (tmp_path / "ws").resolve()
    assert manager.current(request(**{"mcpgym-workspace": "x"})) == (tmp_path / "ws").resolve()


def test_keys_header_over_session(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path, per_session=True)
    by_session = manager.current(request(**{"mcp-session-id": "abc123"}))
    by_header = manager.current(request(**{"mcp-session-id": "abc123", "mcpgym-workspace": "job-1"}))
    assert by_session == tmp_path.resolve() / "s-abc123" and by_session.is_dir()
    assert by_header == tmp_path.resolve() / "w-job-1"
    with pytest.raises(WorkspaceError, match="Mcpgym-Workspace"):
        manager.current(request())
    with pytest.raises(WorkspaceError):
        manager.current(None)
    for bad in ("../up", "a/b", ".hidden", "x" * 65, "sp ace"):
        with pytest.raises(ToolInputError, match="Mcpgym-Workspace header"):
            manager.current(request(**{"mcpgym-workspace": bad}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-abc123", "w-job-1"]


def test_release_runs_callbacks_before_removal(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path, per_session=True)
    path = manager.current(request(**{"mcp-session-id": "s1"}))
    (path / "file.txt").write_text("x")
    seen: list[tuple[str, bool]] = []
    manager.on_release(lambda key, p: seen.append((key, (p / "file.txt").exists())))
    manager.on_release(lambda key, p: 1 / 0)  # a failing callback does not keep the workspace
    manager.release_session("s1")
    assert seen == [("s-s1", True)]
    assert not path.exists() and manager.active() == {}
    manager.release("s-unknown")  # no-op


def test_sweep_removes_only_idle_workspaces(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path, per_session=True, idle_timeout_s=0.5)
    old = manager.current(request(**{"mcpgym-workspace": "old"}))
    fresh = manager.current(request(**{"mcpgym-workspace": "fresh"}))
    time.sleep(0.6)
    manager.current(request(**{"mcpgym-workspace": "fresh"}))  # used again (and sweeps, as every call may)
    manager.sweep()
    assert not old.exists() and fresh.exists()
    assert list(manager.active()) == ["w-fresh"]
    manager.close()
    assert not fresh.exists() and manager.active() == {}


def test_idle_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="idle_timeout_s"):
        WorkspaceManager(tmp_path, per_session=True, idle_timeout_s=0)


def test_live_workspaces_are_capped_and_idle_ones_make_room(tmp_path: Path) -> None:
    manager = WorkspaceManager(tmp_path, per_session=True, idle_timeout_s=0.5, max_workspaces=2)
    manager.current(request(**{"mcpgym-workspace": "a"}))
    manager.current(request(**{"mcp-session-id": "s1"}))
    with pytest.raises(WorkspaceError, match="already holds 2 live workspaces.*--max-workspaces"):
        manager.current(request(**{"mcpgym-workspace": "c"}))
    assert not (tmp_path / "w-c").exists()
    assert manager.current(request(**{"mcpgym-workspace": "a"})).name == "w-a"  # a live one is still served
    manager.release_session("s1")
    assert manager.current(request(**{"mcpgym-workspace": "c"})).name == "w-c"  # a released one freed its place
    time.sleep(0.6)  # both idle now: a new id sweeps them instead of being refused
    assert manager.current(request(**{"mcpgym-workspace": "d"})).name == "w-d"
    assert sorted(manager.active()) == ["w-d"]
    with pytest.raises(ToolInputError, match="max_workspaces"):
        WorkspaceManager(tmp_path, per_session=True, max_workspaces=0)
