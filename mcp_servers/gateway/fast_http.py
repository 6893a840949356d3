"""The gateway's lean streamable HTTP path: one pure-ASGI endpoint per server, with the SDK's own request kernel.

The SDK's streamable HTTP transport serves a session-based (2025-era) request by writing it into the session's
memory stream, where a dispatcher task picks it up, runs it, and writes the reply into another stream, which the
HTTP task reads back: several task switches, two stream hand-offs, a pydantic round trip of every message and a
Starlette router per call. In JSON-response mode (the gateway's default) none of that buys anything: a request is
one HTTP exchange. `McpEndpoint` answers such requests in the HTTP task itself, with the SDK's per-connection kernel
(`ServerRunner.on_request`: the same validation, middleware chain, handlers, result serialization and error
mapping as the SDK's transport), one `ServerRunner` per session kept from `initialize` to the session's end.

What it handles itself, and what it hands to the SDK's session manager unchanged:

- 2026-07-28 and later (`MCP-Protocol-Version` names a revision without the handshake): the SDK's single-exchange
  entry (`handle_modern_request`), called directly (no session manager, no router in between).
- `initialize` without a session id, and POST / DELETE / GET carrying an id this endpoint handed out: here.
- DELETE with an `Mcpgym-Workspace` header and no session id (in every mode): the client is done with that
  workspace, which is released now (an extension of the gateway's; see `_release_workspace`).
- Everything else (no session id and not a well-formed `initialize`, an id it does not know, SSE-response mode):
  the SDK's session manager, which answers exactly as before (400, 404, 405, 406, its SSE streams).

Differences from the SDK's transport in JSON mode, all outside what a JSON-mode session can observe on the wire:
no standalone GET stream (answered 405, which the specification allows; the gateway's servers send no unsolicited
messages), and a `notifications/cancelled` is acknowledged but does not interrupt a call in flight (a call ends by
itself, at the latest after the gateway's call timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server._streamable_http_modern import _mcp_param_rejection, _SingleExchangeDispatchContext
from mcp.server._streamable_http_modern import handle_modern_request as _handle_modern_request
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner, aclose_shielded, modern_error_data, serve_one
from mcp.shared.inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data, progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCRequest,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_servers.errors import ToolInputError
from mcp_servers.gateway.http_wire import (
    FORWARDED,
    HOP_HEADERS,
    INTERNAL,
    error_body,
    parse_reply,
    read_body,
    respond,
    respond_error,
    result_body,
    stamped,
)

if TYPE_CHECKING:
    from mcp.server.lowlevel.server import Server
    from mcp.server.mcpserver import MCPServer

    from mcp_servers.gateway.http_server import WorkerInfo
    from mcp_servers.workspace import WorkspaceManager

__all__ = ["McpEndpoint"]

_log = logging.getLogger(__name__)


@dataclass
class _Session:
    """One session's kernel: the SDK's `ServerRunner` over the session's `Connection`."""

    runner: ServerRunner[Any]
    last_used: float
    in_flight: int = 0
    closed: bool = False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that first yields the already-read body, then defers to the real one (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _accepts_json(accept: str) -> bool:
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return True
    return False


def _is_json_content(content_type: str) -> bool:
    return any(part.strip() == "application/json" for part in content_type.split(";", 1)[0].split(","))


def _plain_request(message: Any) -> bool:
    """Whether a decoded body is a JSON-RPC request the fast path may take without the SDK's message validator."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    request_id = message.get("id")
    params = message.get("params")
    return (
        isinstance(message.get("method"), str)
        and isinstance(request_id, (str, int))
        and not isinstance(request_id, bool)
        and (params is None or isinstance(params, dict))
    )


def _plain_notification(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and "id" not in message
        and isinstance(message.get("method"), str)
        and isinstance(message.get("params", {}), dict)
    )


class McpEndpoint:
    """The `/<name>/mcp` endpoint of one server: session-based requests served in the HTTP task (see module doc)."""

    def __init__(
        self,
        server: MCPServer,
        workspaces: WorkspaceManager,
        *,
        json_response: bool,
        max_body_bytes: int,
        session_idle_timeout_s: float,
        max_sessions: int | None,
        fallback: ASGIApp,
        worker: WorkerInfo | None = None,
    ) -> None:
        """Describe the endpoint; `start` makes it serve.

        Args:
            server: The server (its `streamable_http_app` already built, so its session manager exists).
            workspaces: The gateway's workspaces (a session's is released when the session ends).
            json_response: Answer with JSON bodies; False hands every request to the SDK's SSE transport.
            max_body_bytes: The largest request body accepted (413 above).
            session_idle_timeout_s: A session without a request for this long is ended by `sweep`.
            max_sessions: The most sessions open at once (503 above), None for no limit.
            fallback: The SDK's ASGI handler for everything this endpoint does not serve itself.
            worker: This process's place among several gateway workers (None: the only one). Session ids then end
                in `.w<index>`, and a request for another worker's session is forwarded to it.
        """
        self.server = server
        self.workspaces = workspaces
        self.json_response = json_response
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = session_idle_timeout_s
        self.max_sessions = max_sessions
        self.fallback = fallback
        self.sessions: dict[str, _Session] = {}
        self._lowlevel: Server[Any] = server.session_manager.app
        self._security = server.session_manager.security_settings
        self._lists: dict[str, bytes] = {}
        self._lifespan_state: Any = None
        self._started = False
        self.worker = worker if worker is not None and worker.count > 1 else None
        self._suffix = f".w{self.worker.index}" if self.worker is not None else ""
        self._stamp = [(b"mcpgym-worker", str(self.worker.index).encode())] if self.worker is not None else []

    def start(self, lifespan_state: Any) -> None:
        """Serve from now on, with the lifespan state the SDK's session manager entered for the server."""
        self._lifespan_state = lifespan_state
        self._started = True

    async def close(self) -> None:
        """End every session (server shutdown)."""
        for session_id in list(self.sessions):
            await self._end(session_id)

    async def sweep(self, now: float | None = None) -> list[str]:
        """End the sessions idle for longer than the idle timeout (none with a request in flight).

        Args:
            now: The current `time.monotonic()` (for tests); defaults to now.

        Returns:
            The ended session ids.
        """
        now = time.monotonic() if now is None else now
        idle = [sid for sid, s in self.sessions.items() if s.in_flight == 0 and now - s.last_used > self.idle_timeout_s]
        for sid in idle:
            _log.info("session %s idle timeout", sid)
            await self._end(sid)
        return idle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        if scope["method"] == "DELETE" and await self._released(scope, send):
            return
        if not self.json_response or not self._started:
            await self.fallback(scope, receive, send)
            return
        relay = send  # a forwarded reply keeps the owner's stamp
        if self._stamp:
            send = stamped(send, self._stamp)
        version = session_id = None
        forwarded = False
        accept = content_type = ""
        for key, value in scope["headers"]:
            if key == b"mcp-session-id":
                session_id = value.decode("latin-1")
            elif key == b"mcp-protocol-version":
                version = value.decode("latin-1")
            elif key == b"accept":
                accept = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == FORWARDED:
                forwarded = True
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self._modern(scope, receive, send, accept)
            return
        method = scope["method"]
        if session_id is None:
            if method == "POST" and _accepts_json(accept) and _is_json_content(content_type):
                await self._open(scope, receive, send)
            else:
                await self.fallback(scope, receive, send)
            return
        session = self.sessions.get(session_id)
        if session is None:
            owner = self._owner(session_id)
            if owner is not None and not forwarded:
                await self._forward(owner, scope, receive, relay)
            else:
                await self.fallback(scope, receive, send)  # the SDK's 404 (or its own session, in SSE mode)
        elif method == "POST":
            await self._post(session_id, session, scope, receive, send, accept, content_type)
        elif method == "DELETE":
            await self._end(session_id)
            await respond(send, 200, b"", session_id)
        else:
            allow = [(b"allow", b"POST, DELETE")]
            await respond(send, 405, error_body("Method Not Allowed", INVALID_REQUEST), session_id, allow)

    # -- tools/list, computed once per protocol version ------------------------------------------------------------
    def _cached_list(self, message: dict[str, Any], version: str) -> bytes | None:
        """The encoded `tools/list` result already computed for `version`, when the request asks for that list.

        The gateway's servers register their tools when they are built and never change them, and no server
        scopes its list to the caller, so the first page of `tools/list` is the same for every request of a
        protocol version: it goes through the SDK's full path once (handler, middleware, validation of the
        result against the revision) and is replayed after that. A request with a cursor or other parameters
        is always served in full.
        """
        if message["method"] != "tools/list" or not _first_page(message.get("params")):
            return None
        return self._lists.get(version)

    def _remember_list(self, message: dict[str, Any], version: str, result: dict[str, Any]) -> bytes:
        encoded = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
        if message["method"] == "tools/list" and _first_page(message.get("params")):
            self._lists[version] = encoded
        return encoded

    # -- several workers ---------------------------------------------------------------------------------------------
    def _owner(self, session_id: str) -> str | None:
        """The Unix socket of the worker that opened `session_id`, when that is another live worker."""
        if self.worker is None:
            return None
        _, dot, tail = session_id.rpartition(".w")
        if not dot or not tail.isdigit():
            return None
        index = int(tail)
        if index == self.worker.index or index >= self.worker.count:
            return None
        return self.worker.peers[index]

    async def _forward(self, peer: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay one request to the worker owning its session, over that worker's Unix socket, and its reply back.

        The request keeps its headers (the owner checks Host, Origin and the token again) and is marked as
        forwarded, so it is never forwarded twice.
        """
        body = await read_body(scope, receive, send, self.max_body_bytes)
        if body is None:
            return
        try:
            reply = await _exchange(peer, scope, body)
        except OSError as exc:
            _log.warning("forwarding to the worker at %s failed: %s", peer, exc)
            await respond(send, 502, error_body("the worker holding this session is unavailable", INTERNAL))
            return
        status, headers, payload = parse_reply(reply)
        if self.worker is not None:
            headers.append((b"mcpgym-via", str(self.worker.index).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    # -- releasing a header workspace ------------------------------------------------------------------------------
    async def _released(self, scope: Scope, send: Send) -> bool:
        """Answer a `DELETE` that carries `Mcpgym-Workspace` and no `Mcp-Session-Id` (a workspace release); False
        for any other `DELETE` (a session's end, or a request the SDK answers)."""
        session_id = workspace = None
        forwarded = False
        for key, value in scope["headers"]:
            if key == b"mcp-session-id":
                session_id = value
            elif key == b"mcpgym-workspace":
                workspace = value.decode("latin-1")
            elif key == FORWARDED:
                forwarded = True
        if session_id is not None or workspace is None:
            return False
        await self._release_workspace(workspace, scope, stamped(send, self._stamp) if self._stamp else send, forwarded)
        return True

    async def _release_workspace(self, workspace: str, scope: Scope, send: Send, forwarded: bool) -> None:
        """`DELETE` with `Mcpgym-Workspace` and no `Mcp-Session-Id`: the client is done with that workspace.

        The workspace is released now, as an idle timeout would release it (release callbacks, then the directory).
        With several workers, every other worker is told over its Unix socket (the same request, marked as
        forwarded) before the reply leaves, so each drops what it holds for the workspace (its tracking entry, the
        exec sandbox's uid); a client that sees 200 sees the workspace gone from every process.
        """
        try:
            released = self.workspaces.release_header_workspace(workspace)
        except ToolInputError as exc:
            await respond(send, 400, _json({"error": "bad workspace id", "message": str(exc)}))
            return
        if self.worker is not None and not forwarded:
            peers = [p for i, p in enumerate(self.worker.peers) if i != self.worker.index]
            answers = await asyncio.gather(*(self._release_at(peer, scope) for peer in peers))
            failed = [peer for peer, answer in zip(peers, answers, strict=True) if answer is None]
            if failed:
                message = (f"workspace {workspace!r} was removed, but {len(failed)} other gateway process(es) could "
                           "not be told to drop their state for it; it is dropped when it idles out there")
                await respond(send, 502, _json({"error": "worker unavailable", "message": message}))
                return
            released = released or any(answers)
        await respond(send, 200, _json({"workspace": workspace, "released": released}))

    async def _release_at(self, peer: str, scope: Scope) -> bool | None:
        """Forward a workspace release to another worker: whether it held anything, None when it did not answer."""
        try:
            status, _, payload = parse_reply(await _exchange(peer, scope, b""))
        except (OSError, ValueError, IndexError) as exc:
            _log.warning("telling the worker at %s to release a workspace failed: %s", peer, exc)
            return None
        if status != 200:
            _log.warning("the worker at %s answered %d to a workspace release: %s", peer, status, payload[:200])
            return None
        try:
            return bool(json.loads(payload).get("released"))
        except (ValueError, AttributeError):
            return None

    # -- the 2026-07-28 revision ------------------------------------------------------------------------------------
    async def _modern(self, scope: Scope, receive: Receive, send: Send, accept: str) -> None:
        """One sessionless request: the SDK's single-exchange steps, with the JSON decoded and encoded once.

        The ladder is the SDK's own (`find_duplicated_routing_header`, `classify_inbound_request`, the
        `Mcp-Param-*` check, `serve_one`, `modern_error_data`, the error-to-status table); what is left out is
        re-validating an envelope already checked and a pydantic round trip of the reply. Anything but a plain
        POSTed request that accepts JSON (notifications, batches, malformed bodies, `subscriptions/listen`, other
        methods) goes to the SDK's `handle_modern_request` unchanged.
        """
        body = await read_body(scope, receive, send, self.max_body_bytes)
        if body is None:
            return
        try:
            decoded: Any = json.loads(body) if scope["method"] == "POST" else None
        except (ValueError, RecursionError):
            decoded = None
        if not _plain_request(decoded) or decoded["method"] == "subscriptions/listen" or not _accepts_json(accept):
            await _handle_modern_request(
                self._lowlevel, self._security, True, self._lifespan_state, scope, _replay(body, receive), send
            )
            return
        message: dict[str, Any] = decoded
        request = Request(scope)
        request_id = message["id"]
        duplicated = find_duplicated_routing_header(request.headers.items())
        if duplicated is not None:
            await respond_error(send, request_id, HEADER_MISMATCH, f"{duplicated} header appears more than once")
            return
        verdict = classify_inbound_request(message, headers=dict(request.headers))
        if isinstance(verdict, InboundLadderRejection):
            await respond_error(send, request_id, verdict.code, verdict.message, verdict.data)
            return
        params = message.get("params")
        envelope = JSONRPCRequest.model_construct(jsonrpc="2.0", id=request_id, method=message["method"], params=params)
        rejection = await _mcp_param_rejection(self._lowlevel, request, envelope, verdict, self._lifespan_state)
        if rejection is not None:
            await respond_error(send, request_id, rejection.code, rejection.message, rejection.data)
            return
        cached = self._cached_list(message, verdict.protocol_version)
        if cached is not None:
            await respond(send, 200, result_body(request_id, cached))
            return
        connection = Connection.from_envelope(
            verdict.protocol_version, verdict.client_info, verdict.client_capabilities
        )
        dctx = _SingleExchangeDispatchContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
            request_id=request_id,
            message_metadata=ServerMessageMetadata(request_context=request),
            progress_token=progress_token_from_params(params),
        )
        try:
            result = await serve_one(
                self._lowlevel,
                dctx,
                message["method"],
                params,
                connection=connection,
                lifespan_state=self._lifespan_state,
            )
        except Exception as exc:  # noqa: BLE001 - mapped to the wire as the SDK's modern entry maps it
            error = modern_error_data(exc)
            await respond_error(send, request_id, error.code, error.message, error.data)
            return
        result_json = self._remember_list(message, verdict.protocol_version, result)
        await respond(send, 200, result_body(request_id, result_json))

    # -- sessions (2025-11-25 and earlier) --------------------------------------------------------------------------
    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(scope, receive, send, self.max_body_bytes)
        if body is None:
            return
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            message = None
        if not _plain_request(message) or message["method"] != "initialize":
            await self.fallback(scope, _replay(body, receive), send)  # the SDK's own answer to anything else
            return
        if self.max_sessions is not None and len(self.sessions) >= self.max_sessions:
            _log.warning("refusing to open a new session: %d sessions are already open", self.max_sessions)
            await respond(send, 503, error_body("Too many open sessions", INTERNAL_ERROR))
            return
        session_id = uuid.uuid4().hex + self._suffix
        connection = Connection.from_envelope(LATEST_HANDSHAKE_VERSION, None, None)
        connection.initialized = anyio.Event()  # a handshake connection: initialized by the client's notification
        connection.session_id = session_id
        session = _Session(ServerRunner(self._lowlevel, connection, self._lifespan_state), time.monotonic())
        reply, ok = await self._dispatch(session, message, scope)
        if ok:
            self.sessions[session_id] = session
            await respond(send, 200, reply, session_id)
        else:
            await aclose_shielded(connection)
            await respond(send, 200, reply)

    async def _post(
        self, session_id: str, session: _Session, scope: Scope, receive: Receive, send: Send, accept: str, ctype: str
    ) -> None:
        if not _accepts_json(accept):
            body = error_body("Not Acceptable: Client must accept application/json", INVALID_REQUEST)
            await respond(send, 406, body, session_id)
            return
        if not _is_json_content(ctype):
            body = error_body("Unsupported Media Type: Content-Type must be application/json", INVALID_REQUEST)
            await respond(send, 415, body, session_id)
            return
        raw = await read_body(scope, receive, send, self.max_body_bytes)
        if raw is None:
            return
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            await respond(send, 400, error_body(f"Parse error: {exc}", PARSE_ERROR), session_id)
            return
        session.in_flight += 1
        session.last_used = time.monotonic()
        try:
            if _plain_request(message):
                reply, _ = await self._dispatch(session, message, scope)
                await respond(send, 200, reply, session_id)
            elif _plain_notification(message):
                await session.runner.on_notify(_dispatch_context(None, scope), message["method"], message.get("params"))
                await respond(send, 202, b"", session_id)
            else:
                problem = _validation_problem(message)
                if problem is not None:
                    await respond(send, 400, error_body(f"Validation error: {problem}", INVALID_PARAMS), session_id)
                else:  # a well-formed response or error from the client: nothing here waits for one
                    await respond(send, 202, b"", session_id)
        finally:
            session.in_flight -= 1
            session.last_used = time.monotonic()

    async def _dispatch(self, session: _Session, message: dict[str, Any], scope: Scope) -> tuple[bytes, bool]:
        """Run one request through the session's kernel; the reply body and whether it is a result (not an error)."""
        request_id = message["id"]
        version = session.runner.connection.protocol_version
        cached = self._cached_list(message, version)
        if cached is not None:
            return result_body(request_id, cached), True
        try:
            result = await session.runner.on_request(
                _dispatch_context(request_id, scope), message["method"], message.get("params")
            )
        except Exception as exc:  # noqa: BLE001 - mapped to the wire as the SDK's dispatcher maps it
            error = handler_exception_to_error_data(exc)
            if error is None:
                _log.exception("handler for %r raised", message["method"])
                error = ErrorData(code=0, message=str(exc))  # the SDK's dispatcher pins code 0 here
            payload = {"jsonrpc": "2.0", "id": request_id, "error": error.model_dump(by_alias=True, exclude_none=True)}
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), False
        return result_body(request_id, self._remember_list(message, version, result)), True

    async def _end(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None or session.closed:
            return
        session.closed = True
        # release before the reply leaves, so a client that sees its DELETE answered sees the workspace gone
        self.workspaces.release_session(session_id)
        await aclose_shielded(session.runner.connection)


async def _exchange(peer: str, scope: Scope, body: bytes) -> bytes:
    """Send a request (the scope's method, target and end-to-end headers, marked as forwarded, with `body`) to the
    worker listening on the Unix socket `peer`, and read its whole reply.

    Raises:
        OSError: the worker cannot be reached, or the connection broke.
    """
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    head = [b"%s %s HTTP/1.1\r\n" % (scope["method"].encode(), target)]
    head += [k + b": " + v + b"\r\n" for k, v in scope["headers"] if k not in HOP_HEADERS]
    head.append(b"%s: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % (FORWARDED, len(body)))
    reader, writer = await asyncio.open_unix_connection(peer)
    try:
        writer.write(b"".join(head) + body)
        return await reader.read()
    finally:
        writer.close()


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _dispatch_context(request_id: Any, scope: Scope) -> Any:
    """The per-request dispatch context: no back-channel (JSON mode), the HTTP request for headers."""
    request = Request(scope)
    return _SingleExchangeDispatchContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
        request_id=request_id,
        message_metadata=ServerMessageMetadata(request_context=request),
    )


def _validation_problem(message: Any) -> str | None:
    """The SDK's own validation message for a body that is no JSON-RPC message, None for a valid one."""
    try:
        jsonrpc_message_adapter.validate_python(message, by_name=False)
    except ValidationError as exc:
        return str(exc)
    return None


def _first_page(params: Any) -> bool:
    """Whether `tools/list` params ask for the first page and nothing else (only the request's `_meta`)."""
    return params is None or (isinstance(params, dict) and all(key == "_meta" for key in params))
