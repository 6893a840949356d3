"""A thread-free stdio transport: the SDK's `stdio_server` fed with event-loop pipe streams instead of worker threads.

The SDK's default stdio streams hop to a worker thread for every line read and twice per message written
(`write` then `flush`); on a small machine those hops are most of a cheap tool call's cost. `stdio_server` accepts
explicit streams, so here stdin and stdout are asyncio pipe transports driven by the event loop itself. Like the
SDK, the standard descriptors are diverted while serving (fd 0 reads the null device, fd 1 goes to stderr) so
stray output from tools or children cannot corrupt the protocol stream, and restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

__all__ = ["pipes_supported", "run_stdio_fast"]

MAX_LINE_BYTES = 256 * 1024 * 1024


class _LineReader:
    """Async iterator of decoded lines over an asyncio StreamReader (what `stdio_server` iterates)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _LineReader:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Writer:
    """Buffers messages and writes them once the event loop has run the work already queued.

    Writing a reply wakes the client at once; on a busy machine the scheduler may then run the client and leave this
    process waiting for the CPU with the tail of the request (task clean-up) still undone. Deferring the write by two
    loop turns lets that tail finish first, and batches replies that complete together into one write.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._chunks: list[bytes] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    async def write(self, text: str) -> None:
        self._chunks.append(text.encode("utf-8"))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._loop.call_soon, self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = False
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._writer.write(data)

    async def flush(self) -> None:
        transport = self._writer.transport
        if transport.get_write_buffer_size() > 1024 * 1024:  # back-pressure only when the client lags far behind
            self._flush_now()
            await self._writer.drain()

    def close(self) -> None:
        """Write whatever is still buffered."""
        self._flush_now()


def pipes_supported(fd_in: int = 0, fd_out: int = 1) -> bool:
    """Whether stdin and stdout are pipes, sockets or character devices (what asyncio pipe transports accept)."""
    try:
        modes = [os.fstat(fd).st_mode for fd in (fd_in, fd_out)]
    except OSError:
        return False
    return all(stat.S_ISFIFO(m) or stat.S_ISSOCK(m) or stat.S_ISCHR(m) for m in modes)


@contextlib.contextmanager
def _claim_std_fds() -> Any:
    """Move the wire to private descriptors and point fd 0 at /dev/null and fd 1 at stderr; restore on exit."""
    wire_in = os.dup(0)
    wire_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        sys.stdout.flush()
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        os.close(devnull)
        with contextlib.suppress(OSError):
            os.dup2(wire_in, 0)
            os.dup2(wire_out, 1)


@contextlib.asynccontextmanager
async def _pipe_streams(wire_in: int, wire_out: int) -> AsyncIterator[tuple[_LineReader, _Writer]]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    in_file = os.fdopen(wire_in, "rb", buffering=0)
    out_file = os.fdopen(wire_out, "wb", buffering=0)
    read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
    write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out_file)
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    out = _Writer(writer)
    try:
        yield _LineReader(reader), out
    finally:
        out.close()
        with contextlib.suppress(Exception):
            await writer.drain()
        read_transport.close()
        write_transport.close()


async def run_stdio_fast(server: Any) -> None:
    """Serve an `MCPServer` on stdin/stdout without worker threads (falls back to the SDK's own stdio otherwise).

    Args:
        server: The `MCPServer` to run.
    """
    from mcp.server.stdio import stdio_server

    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None or not pipes_supported():
        await server.run_stdio_async()
        return
    with _claim_std_fds() as (wire_in, wire_out):
        async with (
            _pipe_streams(wire_in, wire_out) as (stdin, stdout),
            stdio_server(stdin=cast(Any, stdin), stdout=cast(Any, stdout)) as (read_stream, write_stream),
        ):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
