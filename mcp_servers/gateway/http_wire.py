"""The HTTP/1.1 wire pieces of the gateway's JSON-mode path: bodies read under a size limit, replies written in one
`http.response.start` and one body, JSON-RPC error bodies, and a forwarded worker's raw reply parsed back."""

from __future__ import annotations

import json
from typing import Any

from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from starlette.types import Message, Receive, Scope, Send

__all__ = [
    "FORWARDED",
    "HOP_HEADERS",
    "INTERNAL",
    "error_body",
    "parse_reply",
    "read_body",
    "respond",
    "respond_error",
    "result_body",
    "stamped",
]

JSON = b"application/json"


def error_body(message: str, code: int) -> bytes:
    """A JSON-RPC error without a request id, as the SDK's transport writes its HTTP-level refusals."""
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


class _BodyTooLarge(Exception):
    pass


FORWARDED = b"mcpgym-forwarded"
HOP_HEADERS = frozenset({b"connection", b"keep-alive", b"content-length", b"transfer-encoding", FORWARDED})
INTERNAL = -32603


def parse_reply(reply: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of a complete HTTP/1.1 response read until the peer closed (chunked or not)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    status = int(status_line.split()[1])
    headers: list[tuple[bytes, bytes]] = []
    chunked = False
    for line in lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        elif name not in HOP_HEADERS and name not in (b"date", b"server"):
            headers.append((name, value))
    if chunked:
        out, rest = [], body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out.append(rest[:size])
            rest = rest[size + 2 :]
        body = b"".join(out)
    headers.append((b"content-length", b"%d" % len(body)))
    return status, headers, body


def stamped(send: Send, stamp: list[tuple[bytes, bytes]]) -> Send:
    """A `send` that adds the worker's header to the response head."""

    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *stamp]}
        await send(message)

    return stamped


async def read_body(scope: Scope, receive: Receive, send: Send, limit: int) -> bytes | None:
    """The request body; None once a 413 has been sent for a body (declared or read) over `limit` bytes."""
    try:
        return await _read_body(scope, receive, limit)
    except _BodyTooLarge:
        await respond(send, 413, b"Request body too large", content_type=b"text/plain; charset=utf-8")
        return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                if int(value) > limit:
                    raise _BodyTooLarge
            except ValueError:
                pass
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def result_body(request_id: Any, result_json: bytes) -> bytes:
    """A JSON-RPC result reply around an already encoded result."""
    return b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(request_id).encode(), result_json)


async def respond_error(send: Send, request_id: Any, code: int, message: str, data: Any = None) -> None:
    """A JSON-RPC error reply with the HTTP status the SDK's table maps its code to (200 for the rest)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}, ensure_ascii=False, separators=(",", ":"))
    await respond(send, ERROR_CODE_HTTP_STATUS.get(code, 200), body.encode())


async def respond(
    send: Send,
    status: int,
    body: bytes,
    session_id: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = JSON,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if session_id is not None:
        headers.append((b"mcp-session-id", session_id.encode("latin-1")))
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
