"""Workspaces: the directory each MCP client's file and exec tools act in (one shared root, or one per session)."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_servers.errors import ToolInputError, WorkspaceError
from mcp_servers.workspace.paths import normalize_root

__all__ = ["WorkspaceManager", "WORKSPACE_HEADER", "WORKSPACE_ID_PATTERN"]

_log = logging.getLogger(__name__)

WORKSPACE_HEADER = "Mcpgym-Workspace"
"""HTTP header naming the caller's workspace. It takes precedence over the MCP session id, so a client that talks to
several servers (say /files/mcp and /exec/mcp) sees one workspace by sending the same value to each; it is required
where the negotiated protocol has no sessions (2026-07-28 and later)."""

WORKSPACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ReleaseCallback = Callable[[str, Path], None]


@dataclass
class _Entry:
    path: Path
    last_used: float
    holders: int = 0


class WorkspaceManager:
    """Hands each MCP caller its workspace directory and removes per-session ones when they end or idle out.

    Example:
        >>> manager = WorkspaceManager(Path("/tmp/ws"), per_session=False)
        >>> manager.current(None)
        PosixPath('/tmp/ws')
    """

    def __init__(self, root: Path, *, per_session: bool, idle_timeout_s: float = 900.0) -> None:
        """Create the manager (and the root directory if missing).

        Args:
            root: The workspace root. With `per_session=False` every caller works directly in it.
            per_session: Give each MCP session (or workspace id) its own directory under the root (HTTP).
            idle_timeout_s: Remove a per-session workspace no open session holds after this many idle seconds.

        Raises:
            ToolInputError: `idle_timeout_s` is not positive.
        """
        if idle_timeout_s <= 0:
            raise ToolInputError(f"idle_timeout_s: must be > 0 seconds, got {idle_timeout_s}")
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(normalize_root(root))
        self.per_session = per_session
        self.idle_timeout_s = idle_timeout_s
        self._entries: dict[str, _Entry] = {}
        self._callbacks: list[ReleaseCallback] = []
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    # -- lookup ---------------------------------------------------------------------------------------------------
    def key_for(self, ctx: Any | None) -> str:
        """The workspace key of a request: `w-<header value>` if the workspace header is set, else `s-<session id>`.

        Args:
            ctx: The tool's `Context` (or a low-level request context).

        Returns:
            The key (also the directory name under the root).

        Raises:
            WorkspaceError: Neither a workspace header nor a session id is available.
            ToolInputError: The header value is malformed.
        """
        request_context = _request_context(ctx)
        headers = _headers(request_context)
        if headers is not None:
            value = headers.get(WORKSPACE_HEADER.lower()) or headers.get(WORKSPACE_HEADER)
            if value:
                if not WORKSPACE_ID_PATTERN.match(value):
                    raise ToolInputError(
                        f"{WORKSPACE_HEADER} header {value[:80]!r}: must be 1-64 characters of letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit"
                    )
                return f"w-{value}"
        session_id = getattr(request_context, "session_id", None) if request_context is not None else None
        if session_id:
            return f"s-{session_id}"
        raise WorkspaceError(
            "this server gives every client its own workspace, but the request carries neither an MCP session id nor "
            f"a {WORKSPACE_HEADER} header; send '{WORKSPACE_HEADER}: <id>' (letters, digits, '.', '_', '-')"
        )

    def current(self, ctx: Any | None) -> Path:
        """The calling MCP session's workspace directory (created on first use).

        With `per_session=False` (stdio) this is always the root. With `per_session=True` (HTTP) it is a directory
        under the root keyed by the `Mcpgym-Workspace` header when sent, else by the MCP session id. A session-keyed
        (or header-keyed, while a session uses it) workspace is released when the session ends; one used only by
        sessionless requests is released after `idle_timeout_s` without use.

        Args:
            ctx: The tool's `Context`; None outside a request (only valid with `per_session=False`).

        Returns:
            The absolute, symlink-free workspace directory.

        Raises:
            WorkspaceError: Per-session mode and the request identifies no session or workspace.
        """
        if not self.per_session:
            return self.root
        key = self.key_for(ctx)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                path = self.root / key
                path.mkdir(exist_ok=True)
                entry = self._entries[key] = _Entry(path=path, last_used=now)
            entry.last_used = now
        self._hold(ctx, key, entry)
        if now - self._last_sweep > min(self.idle_timeout_s / 4, 30.0):
            self.sweep(now)
        return entry.path

    def _hold(self, ctx: Any, key: str, entry: _Entry) -> None:
        """Tie the workspace to the request's connection (if it has a session) so it is released when that ends."""
        request_context = _request_context(ctx)
        connection = getattr(request_context, "connection", None)
        if connection is None or not getattr(connection, "session_id", None):
            return
        marker = f"mcpgym.workspace:{key}"
        if connection.state.get(marker):
            return
        connection.state[marker] = True
        with self._lock:
            entry.holders += 1
        connection.exit_stack.callback(self._drop_holder, key)

    def _drop_holder(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.holders -= 1
            done = entry.holders <= 0
        if done:
            self.release(key)

    # -- release --------------------------------------------------------------------------------------------------
    def on_release(self, callback: ReleaseCallback) -> None:
        """Register a callback run when a session's workspace is released (session end or idle timeout), before removal.

        Args:
            callback: Called with (key, workspace path); its exceptions are logged and ignored.
        """
        self._callbacks.append(callback)

    def release(self, key: str) -> None:
        """Run the release callbacks for a workspace and remove its directory (no-op for unknown keys).

        Args:
            key: The workspace key (see `key_for`).
        """
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        for callback in list(self._callbacks):
            try:
                callback(key, entry.path)
            except Exception:  # a failing callback must not keep the workspace alive
                _log.exception("workspace release callback failed for %s", key)
        shutil.rmtree(entry.path, ignore_errors=True)
        _log.info("released workspace %s", key)

    def sweep(self, now: float | None = None) -> list[str]:
        """Release every workspace no session holds that has been idle for longer than `idle_timeout_s`.

        Args:
            now: The current `time.monotonic()` (for tests); defaults to now.

        Returns:
            The released keys.
        """
        now = time.monotonic() if now is None else now
        self._last_sweep = now
        with self._lock:
            idle = [
                k for k, e in self._entries.items() if e.holders <= 0 and now - e.last_used > self.idle_timeout_s
            ]
        for key in idle:
            self.release(key)
        return idle

    def close(self) -> None:
        """Release every workspace (server shutdown)."""
        for key in list(self._entries):
            self.release(key)

    def active(self) -> dict[str, Path]:
        """The workspaces currently in use, by key."""
        with self._lock:
            return {k: e.path for k, e in self._entries.items()}


def _request_context(ctx: Any | None) -> Any | None:
    """The low-level request context behind a `Context` (or the object itself if it already is one)."""
    if ctx is None:
        return None
    if hasattr(ctx, "connection"):
        return ctx
    try:
        return ctx.request_context
    except (ValueError, AttributeError):  # Context outside a request
        return None


def _headers(request_context: Any | None) -> Any | None:
    """The HTTP headers of a request: the transport's (sessionless path) or the HTTP request's (session path)."""
    if request_context is None:
        return None
    headers = getattr(request_context, "headers", None)
    if headers is None:
        headers = getattr(getattr(request_context, "request", None), "headers", None)
    return headers
