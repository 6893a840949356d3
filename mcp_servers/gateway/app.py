"""The HTTP gateway: one ASGI app routing `/<name>/mcp` to each server's streamable HTTP endpoint, with auth and limits."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_servers.errors import ConfigError, ServerUnavailableError
from mcp_servers.gateway.fast_http import McpEndpoint
from mcp_servers.gateway.guard import HostOriginMiddleware, HostPolicy, is_loopback
from mcp_servers.gateway.http_server import WorkerInfo
from mcp_servers.gateway.shared_workspaces import SharedWorkspaceManager
from mcp_servers.workspace import WorkspaceManager
from mcp_servers.workspace.manager import WORKSPACE_EXTENSION, WORKSPACE_HEADER

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from mcp_servers.settings import ServerSettings

__all__ = ["Gateway", "build_gateway", "is_loopback"]

_log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """The built gateway: the ASGI app, the servers it mounts, the ones skipped (with why), and the workspaces."""

    app: ASGIApp
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


def _drop_idle_tracing(server: MCPServer) -> None:
    """Remove the SDK's OpenTelemetry middleware when no tracer provider is installed (the SDK's own opt-out).

    Without a provider every span is a no-op, but opening one per message still costs about a tenth of a small
    call's CPU in the gateway. With a provider installed (e.g. the process runs under `opentelemetry-instrument`)
    the middleware stays and every message gets its span.
    """
    from mcp.server._otel import OpenTelemetryMiddleware
    from opentelemetry.trace import ProxyTracerProvider, get_tracer_provider

    if isinstance(get_tracer_provider(), ProxyTracerProvider):
        server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]


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
    worker: WorkerInfo | None = None,
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
        worker: This process's place among `--workers` gateway processes (None: the only one).

    Returns:
        The Gateway.

    Raises:
        ConfigError: No server could be built, or a setting is invalid.
        ServerUnavailableError: A server is unavailable and `skip_unavailable` is false.
    """
    from mcp_servers.registry import SERVERS, build_server

    http = settings.http
    if workspaces is None:
        manager = SharedWorkspaceManager if worker is not None and worker.count > 1 else WorkspaceManager
        workspaces = manager(settings.workspace, per_session=True, idle_timeout_s=http.session_idle_timeout_s,
                             max_workspaces=http.max_workspaces)
    security = _transport_security()
    servers: dict[str, MCPServer] = {}
    skipped: dict[str, str] = {}
    endpoints: dict[str, McpEndpoint] = {}
    for name in names:
        try:
            server = build_server(name, settings, workspaces)
        except ServerUnavailableError as exc:
            if not skip_unavailable:
                raise
            skipped[name] = str(exc)
            _log.warning("%s", exc)
            continue
        _drop_idle_tracing(server)
        server.middleware.append(_call_timeout_middleware(http.call_timeout_s))
        server.streamable_http_app(  # builds the SDK's session manager: the path for SSE mode and for refusals
            streamable_http_path="/mcp",
            json_response=http.json_response,
            transport_security=security,
            max_request_body_size=http.max_body_bytes,
            session_idle_timeout=http.session_idle_timeout_s,
            host=http.host,
        )
        if SERVERS[name].needs_workspace and workspaces.per_session:
            server.session_manager.app.extensions[WORKSPACE_EXTENSION] = {"header": WORKSPACE_HEADER,
                                                                          "release": "DELETE"}
        servers[name] = server
        endpoints[name] = McpEndpoint(
            server,
            workspaces,
            json_response=http.json_response,
            max_body_bytes=http.max_body_bytes,
            session_idle_timeout_s=http.session_idle_timeout_s,
            max_sessions=server.session_manager.max_sessions,
            fallback=SessionEndWatcher(server.session_manager.handle_request, workspaces),
            worker=worker,
        )
    if not servers:
        raise ConfigError("no server could be started: " + "; ".join(skipped.values()))

    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "servers": {name: f"/{name}/mcp" for name in servers},
            "skipped": skipped,
            "workspaces": len(workspaces.active()),
            "worker": worker.index if worker is not None else 0,
            "workers": worker.count if worker is not None else 1,
        }

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for name, server in servers.items():
                manager = server.session_manager
                await stack.enter_async_context(manager.run())
                # the lifespan state the manager entered for the server, shared with the endpoint's own path
                endpoints[name].start(getattr(manager, "_lifespan_state", None))
                stack.push_async_callback(endpoints[name].close)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_sweeper, workspaces, list(endpoints.values()))
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        workspaces.close()

    app: ASGIApp = GatewayRouter({f"/{name}/mcp": ep for name, ep in endpoints.items()}, health, lifespan)
    token = settings.token.get_secret_value() if settings.token is not None else None
    if token:
        app = BearerTokenMiddleware(app, token=token)
    app = HostOriginMiddleware(app, HostPolicy.for_bind(http.host, http.allowed_hosts))
    return Gateway(
        app=app,
        servers=servers,
        skipped=skipped,
        workspaces=workspaces,
        paths={name: f"/{name}/mcp" for name in servers},
    )


class GatewayRouter:
    """The gateway's ASGI app: exact-path routing to the endpoints, `/healthz`, and the lifespan protocol.

    A plain dictionary lookup per request (a Starlette router with mounts and its error and exception middleware
    cost more per request than the JSON-mode MCP exchange itself).
    """

    def __init__(
        self,
        routes: dict[str, ASGIApp],
        health: Callable[[], dict[str, Any]],
        lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]],
    ) -> None:
        self.routes = dict(routes)
        self.routes.update({f"{path}/": app for path, app in routes.items()})
        self.health = health
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            app = self.routes.get(path)
            if app is not None:
                await app(scope, receive, send)
            elif path == "/healthz":
                await _send_json(send, 200, self.health())
            else:
                await _send_json(send, 404, {"error": "not found", "message": f"no route {path[:100]!r}"})
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.lifespan():
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except BaseException as exc:
            kind = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": kind, "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _sweeper(workspaces: WorkspaceManager, endpoints: list[McpEndpoint]) -> None:
    interval = max(0.05, min(workspaces.idle_timeout_s / 4, 30.0))
    while True:
        await anyio.sleep(interval)
        for endpoint in endpoints:
            await endpoint.sweep()
        workspaces.sweep()
