"""The HTTP gateway: one Starlette app mounting each server's streamable HTTP endpoint, with auth and limits."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_servers.errors import ConfigError, ServerUnavailableError
from mcp_servers.gateway.guard import HostOriginMiddleware, HostPolicy, is_loopback
from mcp_servers.workspace import WorkspaceManager

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from mcp_servers.settings import ServerSettings

__all__ = ["Gateway", "build_gateway", "is_loopback"]

_log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """The built gateway: the ASGI app, the servers it mounts, the ones skipped (with why), and the workspaces."""

    app: Starlette
    servers: dict[str, MCPServer]
    skipped: dict[str, str]
    workspaces: WorkspaceManager
    paths: dict[str, str] = field(default_factory=dict)


class BearerTokenMiddleware:
    """Refuses every request outside the open paths unless it carries `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset({"/healthz"})) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        reason = "missing bearer token" if not given else "invalid bearer token"
        body = json.dumps({"error": "unauthorized", "message": f"{reason}; send 'Authorization: Bearer <token>'"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="mcpgym"')],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


class SessionEndWatcher:
    """Releases a session's workspace once the client ends the MCP session (a successful HTTP DELETE)."""

    def __init__(self, app: ASGIApp, workspaces: WorkspaceManager) -> None:
        self.app = app
        self.workspaces = workspaces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "DELETE":
            await self.app(scope, receive, send)
            return
        session_id = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"mcp-session-id"), None)

        async def watch(message: Any) -> None:
            # release before the reply leaves, so a client that sees its DELETE answered sees the workspace gone
            if message["type"] == "http.response.start" and session_id and message["status"] < 400:
                self.workspaces.release_session(session_id)
            await send(message)

        await self.app(scope, receive, watch)


def _call_timeout_middleware(seconds: float) -> Any:
    """A server middleware that ends a `tools/call` after `seconds` with an `is_error` result."""
    from mcp_types import CallToolResult, TextContent

    async def middleware(ctx: Any, call_next: Any) -> Any:
        if getattr(ctx, "method", None) != "tools/call":
            return await call_next(ctx)
        with anyio.move_on_after(seconds) as scope:
            return await call_next(ctx)
        name = (getattr(ctx, "params", None) or {}).get("name", "tool") if scope.cancelled_caught else "tool"
        text = f"Error executing tool {name}: timed out after {seconds:g} s (the server's call limit)"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    return middleware


def _transport_security() -> Any:
    """The SDK's own Host/Origin check is off: `HostOriginMiddleware` checks every path of the gateway instead."""
    from mcp.server.transport_security import TransportSecuritySettings

    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def build_gateway(
    settings: ServerSettings,
    names: Sequence[str],
    *,
    workspaces: WorkspaceManager | None = None,
    skip_unavailable: bool = True,
) -> Gateway:
    """Build the gateway app serving `names` at `/<name>/mcp`, plus `/healthz`.

    Each server's streamable HTTP session manager is started in the app's lifespan; file and exec tools get a
    per-session workspace under `settings.workspace` (released when the session ends or idles out). When a token
    is set, every path but `/healthz` requires it. Every path, `/healthz` included, refuses a `Host` that is not a
    loopback name, the bind address or an allowed host (421), and a foreign `Origin` (403).

    Args:
        settings: Server settings (workspace, token, http.*).
        names: Servers to mount.
        workspaces: A WorkspaceManager to use (default: per-session under `settings.workspace`).
        skip_unavailable: Skip servers whose module is not installed (logged) instead of failing.

    Returns:
        The Gateway.

    Raises:
        ConfigError: No server could be built, or a setting is invalid.
        ServerUnavailableError: A server is unavailable and `skip_unavailable` is false.
    """
    from mcp_servers.registry import build_server

    http = settings.http
    if workspaces is None:
        workspaces = WorkspaceManager(settings.workspace, per_session=True, idle_timeout_s=http.session_idle_timeout_s,
                                      max_workspaces=http.max_workspaces)
    security = _transport_security()
    servers: dict[str, MCPServer] = {}
    skipped: dict[str, str] = {}
    routes: list[Route | Mount] = []
    for name in names:
        try:
            server = build_server(name, settings, workspaces)
        except ServerUnavailableError as exc:
            if not skip_unavailable:
                raise
            skipped[name] = str(exc)
            _log.warning("%s", exc)
            continue
        server.middleware.append(_call_timeout_middleware(http.call_timeout_s))
        sub = server.streamable_http_app(
            streamable_http_path="/mcp",
            json_response=http.json_response,
            transport_security=security,
            max_request_body_size=http.max_body_bytes,
            session_idle_timeout=http.session_idle_timeout_s,
            host=http.host,
        )
        servers[name] = server
        routes.append(Mount(f"/{name}", app=SessionEndWatcher(sub, workspaces)))
    if not servers:
        raise ConfigError("no server could be started: " + "; ".join(skipped.values()))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "servers": {name: f"/{name}/mcp" for name in servers},
                "skipped": skipped,
                "workspaces": len(workspaces.active()),
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for server in servers.values():
                await stack.enter_async_context(server.session_manager.run())
            async with anyio.create_task_group() as tg:
                tg.start_soon(_sweeper, workspaces)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        workspaces.close()

    middleware = [Middleware(HostOriginMiddleware, policy=HostPolicy.for_bind(http.host, http.allowed_hosts))]
    token = settings.token.get_secret_value() if settings.token is not None else None
    if token:
        middleware.append(Middleware(BearerTokenMiddleware, token=token))
    app = Starlette(routes=[Route("/healthz", healthz), *routes], middleware=middleware, lifespan=lifespan)
    return Gateway(
        app=app,
        servers=servers,
        skipped=skipped,
        workspaces=workspaces,
        paths={name: f"/{name}/mcp" for name in servers},
    )


async def _sweeper(workspaces: WorkspaceManager) -> None:
    interval = max(0.05, min(workspaces.idle_timeout_s / 4, 30.0))
    while True:
        await anyio.sleep(interval)
        workspaces.sweep()
