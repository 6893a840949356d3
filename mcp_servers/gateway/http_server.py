"""uvicorn for the gateway: a response leaves in one write, and worker processes can share a port.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`, and the body
with the next message: two `send` system calls, two TCP segments (the socket has `TCP_NODELAY`), and on a small
machine two wake-ups of the client for one small JSON reply. `CorkedHttpToolsProtocol` holds the head back until
the body's first write (or the next event-loop turn, whichever comes first) and writes both at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

__all__ = ["http_protocol"]


class _CorkedTransport:
    """A transport wrapper that joins a response head with the write after it (see the module doc)."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + bytes(data))
        elif isinstance(data, bytes) and data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._head = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> Any:
    """uvicorn's `http` setting for the gateway: the corked httptools protocol, or "auto" without httptools."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed: uvicorn's pure-Python parser, uncorked
        return "auto"

    class CorkedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol writing each small response in one system call."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = cast(asyncio.Transport, _CorkedTransport(transport, asyncio.get_running_loop()))

    return CorkedHttpToolsProtocol
