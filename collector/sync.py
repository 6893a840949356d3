"""Synchronous access to tool sessions (for TRL environments and scripts): an event loop on a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Self, TypeVar

from collector.pool import ToolPool, ToolSession
from collector.servers import ServerSpec
from collector.settings import CollectorSettings
from collector.tools import ToolResult
from collector.types import OpenAITool

__all__ = ["BackgroundLoop", "SyncToolPool", "SyncToolSession"]

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio event loop running on a daemon thread; `run(coro)` blocks until the coroutine finishes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mcpgym-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and return its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("BackgroundLoop.run() called from its own loop thread; await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and join its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


class SyncToolSession:
    """A `ToolSession` driven from synchronous code; same methods, blocking."""

    def __init__(self, session: ToolSession, loop: BackgroundLoop) -> None:
        self._session = session
        self._loop = loop

    @property
    def tools(self) -> list[OpenAITool]:
        """The OpenAI tools offered."""
        return self._session.tools

    @property
    def servers(self) -> list[str]:
        """The attached servers."""
        return self._session.servers

    def call(self, name: str, arguments_json: str) -> ToolResult:
        """See `ToolSession.call`."""
        return self._loop.run(self._session.call(name, arguments_json))

    def setup_workspace(self, files: dict[str, str]) -> None:
        """See `ToolSession.setup_workspace`."""
        self._loop.run(self._session.setup_workspace(files))

    def snapshot_files(self) -> dict[str, str]:
        """See `ToolSession.snapshot_files`."""
        return self._loop.run(self._session.snapshot_files())

    def run_tests(self, code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        """See `ToolSession.run_tests`."""
        return self._loop.run(self._session.run_tests(code, test_code, entry_point))

    def close(self) -> None:
        """Close the session (and its workspaces)."""
        self._loop.run(self._session.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncToolPool:
    """A `ToolPool` for synchronous code.

    Example:
        with SyncToolPool() as pool, pool.session(["files"]) as s:
            s.setup_workspace({"a.txt": "hi"})
            print(s.call("read_text_file", '{"path": "a.txt"}').text)
    """

    def __init__(self, servers: Mapping[str, ServerSpec] | None = None, *,
                 settings: CollectorSettings | None = None) -> None:
        self._loop = BackgroundLoop()
        try:
            self.pool = self._loop.run(self._start(servers, settings))
        except BaseException:
            self._loop.close()
            raise

    @staticmethod
    async def _start(servers: Mapping[str, ServerSpec] | None, settings: CollectorSettings | None) -> ToolPool:
        pool = ToolPool(servers, settings=settings)
        await pool.start()
        return pool

    @property
    def server_names(self) -> list[str]:
        """Names of the attachable servers."""
        return self.pool.server_names

    def session(self, servers: Sequence[str], tools: Mapping[str, Sequence[str]] | None = None) -> SyncToolSession:
        """Open a fresh session (one workspace) to the named servers; close it with `close()` or `with`.

        `tools` (server -> tool names, a task's `tools`) offers only those tools of a listed server.
        """
        return SyncToolSession(self._loop.run(self.pool.open_session(servers, tools)), self._loop)

    def close(self) -> None:
        """Stop the managed server (if any) and the loop thread."""
        try:
            self._loop.run(self.pool.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
