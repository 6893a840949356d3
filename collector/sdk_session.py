"""One MCP SDK client session to one server (stdio, or streamable HTTP over a shared connection pool): what a
`ToolSession` uses for servers that are not reached sessionlessly (`collector.http_calls`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TextIO

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from collector.errors import ToolSessionError
from collector.http_calls import WORKSPACE_EXTENSION
from collector.servers import ServerSpec

__all__ = ["SessionConnection", "SharedTransport", "tool_dict"]


def tool_dict(tool: Any) -> dict[str, Any]:
    data: dict[str, Any] = tool.model_dump(by_alias=True, exclude_none=True, mode="json")
    data.pop("_meta", None)
    return data


class SharedTransport(httpx2.AsyncBaseTransport):
    """One connection pool for every HTTP session of a tool pool; closing a session's client leaves it open.

    Creating an httpx client with its own transport costs tens of milliseconds (TLS context); sharing one keeps
    opening an MCP session per episode cheap.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Leave the shared pool open (the tool pool closes it)."""


class SessionConnection:
    """One MCP client session to one server, owned by a background task.

    The MCP SDK runs its transport in a task group; if the server dies, that group fails and cancels the task that
    entered it. Entering the client in a task of its own keeps the episode's task alive: a dead server becomes a
    `ToolSessionError` for the caller, not a cancellation.
    """

    def __init__(self, spec: ServerSpec, *, mode: str, errlog: TextIO,
                 transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.spec = spec
        self._transport = transport
        self._mode = mode
        self._errlog = errlog
        self._client: Client | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def _own(self) -> None:
        try:
            if self.spec.url:
                timeout = httpx2.Timeout(30.0, read=300.0)  # the MCP SDK's defaults: SSE streams stay open long
                async with httpx2.AsyncClient(headers=self.spec.headers, timeout=timeout, transport=self._transport,
                                              trust_env=self._transport is None) as http:
                    transport = streamable_http_client(self.spec.url, http_client=http)
                    async with Client(transport, mode=self._mode) as client:
                        self._client = client
                        self._set_ready()
                        await self._closing.wait()
            else:
                params = StdioServerParameters(command=self.spec.command or "", args=list(self.spec.args),
                                               env=self.spec.env or None, cwd=self.spec.cwd)
                async with Client(stdio_client(params, errlog=self._errlog), mode=self._mode) as client:
                    self._client = client
                    self._set_ready()
                    await self._closing.wait()
        except BaseException as exc:  # noqa: BLE001 - the transport's failure is reported to callers
            self._error = exc
        finally:
            self._set_ready()  # wake the opener in every case; it looks at the task's state

    def _set_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _describe(self, exc: BaseException | None) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        where = self.spec.url or " ".join([self.spec.command or "", *self.spec.args])
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else "connection closed"
        return f"MCP server {self.spec.name!r} ({where}): {detail}"

    async def open(self, timeout: float) -> None:
        """Connect (handshake included) within `timeout` seconds.

        Raises:
            ToolSessionError: the server could not be reached or spawned.
        """
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name=f"mcp-{self.spec.name}")
        try:
            async with asyncio.timeout(timeout):
                await self._ready
        except TimeoutError:
            await self.close()
            raise ToolSessionError(
                f"cannot connect to {self._describe(TimeoutError(f'no answer in {timeout:g}s'))}") from None
        if self._client is None or self._task.done():
            raise ToolSessionError(f"cannot connect to {self._describe(self._error)}")

    @property
    def keeps_workspace(self) -> bool:
        """An HTTP server that may keep a workspace for the episode's `Mcpgym-Workspace` id.

        A 2026-07-28 server says so in its capabilities (the workspace extension); under the handshake revisions
        (2025-11-25 and older) capabilities carry no extensions, so every HTTP server may (one that takes no
        releases is asked once: `ToolPool` remembers it).
        """
        if self._client is None or not self.spec.url:
            return False
        try:
            if self._client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                return True
            extensions = self._client.server_capabilities.extensions
        except RuntimeError:  # not connected
            return False
        return extensions is not None and WORKSPACE_EXTENSION in extensions

    @property
    def dead(self) -> bool:
        """The transport ended (server exited or connection lost)."""
        return self._task is None or self._task.done()

    async def request(self, coro_factory: Callable[[Client], Any], timeout: float) -> Any:
        """Run one request; TimeoutError after `timeout`, ToolSessionError when the server dies meanwhile.

        The request is awaited in the caller's task (no extra task hop: under load every hop costs a loop turn);
        a dying transport fails pending requests with CONNECTION_CLOSED, which becomes a ToolSessionError.
        """
        if self._client is None or self.dead:
            raise ToolSessionError(f"server died: {self._describe(self._error)}")
        try:
            async with asyncio.timeout(timeout):
                return await coro_factory(self._client)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED or self.dead:
                raise ToolSessionError(f"server died: {self._describe(self._error or exc)}") from exc
            raise
        except TimeoutError:
            if self.dead:
                raise ToolSessionError(f"server died: {self._describe(self._error)}") from None
            raise

    async def close(self) -> None:
        """End the session (and a stdio server's process)."""
        self._closing.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
