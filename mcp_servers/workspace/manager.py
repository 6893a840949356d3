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

__all__ = [
    "DEFAULT_MAX_WORKSPACES",
    "WORKSPACE_EXTENSION",
    "WORKSPACE_HEADER",
    "WORKSPACE_ID_PATTERN",
    "WorkspaceManager",
    "header_key",
]

_log = logging.getLogger(__name__)

WORKSPACE_HEADER = "Mcpgym-Workspace"
"""HTTP header naming the caller's workspace. It takes precedence over the MCP session id, so a client that talks to
several servers (say /files/mcp and /exec/mcp) sees one workspace by sending the same value to each; it is required
where the negotiated protocol has no sessions (2026-07-28 and later)."""

WORKSPACE_EXTENSION = "mcpgym/workspace"
"""The capability extension (`capabilities.extensions`, in `server/discover` and `initialize` results) by which a
gateway server says that it keeps per-client workspaces keyed by `WORKSPACE_HEADER`, and that a client releases one
with an HTTP `DELETE` carrying the header and no `Mcp-Session-Id` (servers without workspaces do not advertise it, so
a client knows there is nothing to release there)."""

SESSION_HEADER = "mcp-session-id"

WORKSPACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ReleaseCallback = Callable[[str, Path], None]

DEFAULT_MAX_WORKSPACES = 10_000
"""Live per-session workspaces a server holds at most by default (below the exec sandbox's 50,000 uids)."""


@dataclass
class _Entry:
    path: Path
    last_used: float


class WorkspaceManager:
    """Hands each MCP caller its workspace directory and removes per-session ones when they end or idle out.

    Example:
        >>> manager = WorkspaceManager(Path("/tmp/ws"), per_session=False)
        >>> manager.current(None)
        PosixPath('/tmp/ws')
    """

    def __init__(self, root: Path, *, per_session: bool, idle_timeout_s: float = 900.0,
                 max_workspaces: int = DEFAULT_MAX_WORKSPACES) -> None:
        """Create the manager (and the root directory if missing).

        Args:
            root: The workspace root. With `per_session=False` every caller works directly in it.
            per_session: Give each MCP session (or workspace id) its own directory under the root (HTTP).
            idle_timeout_s: Remove a per-session workspace no open session holds after this many idle seconds.
            max_workspaces: The most per-session workspaces live at once (a client naming new workspace ids could
                otherwise create them without limit); a request that would create one more gets a `WorkspaceError`.

        Raises:
            ToolInputError: `idle_timeout_s` or `max_workspaces` is not positive.
        """
        if idle_timeout_s <= 0:
            raise ToolInputError(f"idle_timeout_s: must be > 0 seconds, got {idle_timeout_s}")
        if max_workspaces < 1:
            raise ToolInputError(f"max_workspaces: must be at least 1, got {max_workspaces}")
        self.max_workspaces = max_workspaces
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

        The session id counts only in protocol versions with sessions (the initialize handshake), where the SDK
        answers 404 to an id it did not hand out. A sessionless request (2026-07-28 and later) needs the header:
        its `Mcp-Session-Id`, validated by nobody, would let a client pick another session's workspace.

        Args:
            ctx: The tool's `Context` (or a low-level request context).

        Returns:
            The key (also the directory name under the root).

        Raises:
            WorkspaceError: Neither a workspace header nor a session id is available.
            ToolInputError: The header value is malformed.
        """
        headers = _headers(ctx)
        if headers is not None:
            value = headers.get(WORKSPACE_HEADER.lower())
            if value:
                return header_key(value)
            session_id = headers.get(SESSION_HEADER)
            if session_id and not _in_session(ctx):
                raise WorkspaceError(
                    f"protocol version {_protocol_version(ctx)} has no sessions, so the {SESSION_HEADER} header names "
                    f"no workspace; send '{WORKSPACE_HEADER}: <id>' (letters, digits, '.', '_', '-')"
                )
            if session_id and WORKSPACE_ID_PATTERN.match(session_id):
                return f"s-{session_id}"
        raise WorkspaceError(
            "this server gives every client its own workspace, but the request carries neither an MCP session id nor "
            f"a {WORKSPACE_HEADER} header; send '{WORKSPACE_HEADER}: <id>' (letters, digits, '.', '_', '-')"
        )

    def current(self, ctx: Any | None) -> Path:
        """The calling MCP session's workspace directory (created on first use).

        With `per_session=False` (stdio) this is always the root. With `per_session=True` (HTTP) it is a directory
        under the root keyed by the `Mcpgym-Workspace` header when sent, else by the MCP session id. The gateway
        releases a session's workspace when the client ends the session (HTTP DELETE), a header workspace when the
        client asks (`release_header_workspace`); any workspace unused for `idle_timeout_s` is released by `sweep`.

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
        if key not in self._entries and len(self._entries) >= self.max_workspaces:
            self.sweep(now)  # idle ones make room first
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                if len(self._entries) >= self.max_workspaces:
                    raise WorkspaceError(
                        f"this server already holds {len(self._entries)} live workspaces, its limit "
                        f"(http.max_workspaces, --max-workspaces); end a session or wait until idle workspaces are "
                        f"removed ({self.idle_timeout_s:g} s without a call), or reuse a {WORKSPACE_HEADER} id"
                    )
                path = self.root / key
                path.mkdir(exist_ok=True)
                entry = self._entries[key] = _Entry(path=path, last_used=now)
            entry.last_used = now
        if now - self._last_sweep > min(self.idle_timeout_s / 4, 30.0):
            self.sweep(now)
        return entry.path

    def release_session(self, session_id: str) -> None:
        """Release the workspace of an MCP session that ended (no-op if it never used one).

        Args:
            session_id: The `Mcp-Session-Id` of the ended session.
        """
        self.release(f"s-{session_id}")

    def release_header_workspace(self, workspace_id: str) -> bool:
        """Release the workspace a client named with the `Mcpgym-Workspace` header, now (the client is done with it).

        The same release as an idle timeout's: the release callbacks run, then the directory is removed. A
        directory under the root that this manager does not track (another gateway process created it, or an
        earlier run left it) is removed too. An id with no workspace is no error.

        Args:
            workspace_id: The header's value.

        Returns:
            Whether there was anything to release (tracked here, or a directory on disk).

        Raises:
            ToolInputError: `workspace_id` is not a valid workspace id (the message says what is accepted).
        """
        key = header_key(workspace_id)
        if not self.per_session:
            return False  # every caller works in the root itself: nothing of one client's to remove
        with self._lock:
            known = key in self._entries
        self.release(key)
        path = self.root / key
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            known = True
        return known

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
            except Exception:  # noqa: BLE001 - a failing callback must not keep the workspace alive
                _log.exception("workspace release callback failed for %s", key)
        shutil.rmtree(entry.path, ignore_errors=True)
        _log.info("released workspace %s", key)

    def sweep(self, now: float | None = None) -> list[str]:
        """Release every workspace that has been idle for longer than `idle_timeout_s`.

        Args:
            now: The current `time.monotonic()` (for tests); defaults to now.

        Returns:
            The released keys.
        """
        now = time.monotonic() if now is None else now
        self._last_sweep = now
        with self._lock:
            idle = [k for k, e in self._entries.items() if now - e.last_used > self.idle_timeout_s]
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


def header_key(value: str) -> str:
    """The workspace key (and directory name) of an `Mcpgym-Workspace` header value: `w-<value>`.

    Raises:
        ToolInputError: The value is not 1-64 characters of letters, digits, '.', '_' or '-' starting with a letter
            or digit.
    """
    if not WORKSPACE_ID_PATTERN.match(value):
        raise ToolInputError(
            f"{WORKSPACE_HEADER} header {value[:80]!r}: must be 1-64 characters of letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return f"w-{value}"


def _protocol_version(ctx: Any) -> str | None:
    """The protocol version of the request behind a tool's `Context` (None when unknown)."""
    try:
        request_context = ctx.request_context
    except (ValueError, AttributeError):
        request_context = ctx
    version = getattr(request_context, "protocol_version", None)
    return version if isinstance(version, str) else None


def _in_session(ctx: Any) -> bool:
    """Whether the request belongs to an MCP session the SDK validated (a protocol version with the handshake)."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    return _protocol_version(ctx) in HANDSHAKE_PROTOCOL_VERSIONS


def _headers(ctx: Any | None) -> Any | None:
    """The HTTP request headers behind a tool's `Context` (None on stdio or outside a request)."""
    if ctx is None:
        return None
    try:
        request_context = ctx.request_context
    except (ValueError, AttributeError):  # a Context outside a request, or already a low-level context
        request_context = ctx
    request = getattr(request_context, "request", None)
    return getattr(request, "headers", None)
