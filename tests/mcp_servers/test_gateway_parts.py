"""Parts of the gateway checked on their own: shared header workspaces across worker processes, the reply parser of
session forwarding, and the one-write response transport."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mcp_servers.gateway.http_server import _CorkedTransport
from mcp_servers.gateway.http_wire import parse_reply as _parse_reply
from mcp_servers.gateway.shared_workspaces import SharedWorkspaceManager


def request_with(workspace: str) -> Any:
    """What a tool's context exposes of its HTTP request: the headers."""
    return SimpleNamespace(request=SimpleNamespace(headers={"mcpgym-workspace": workspace}))


def test_a_header_workspace_stays_while_another_worker_uses_it(tmp_path: Path) -> None:
    first = SharedWorkspaceManager(tmp_path, per_session=True, idle_timeout_s=10)
    second = SharedWorkspaceManager(tmp_path, per_session=True, idle_timeout_s=10)
    path = first.current(request_with("job"))
    assert second.current(request_with("job")) == path  # one directory under the shared root
    (path / "keep.txt").write_text("x")
    later = time.monotonic() + 20  # the first worker has not used it for 20 s...
    assert first.sweep(later) == []  # ...but the directory was used just now (by the second): kept
    assert (path / "keep.txt").exists()
    old = time.time() - 30
    os.utime(path, (old, old))  # no worker used it for 30 s
    assert first.sweep(later + 20) == ["w-job"]
    assert not path.exists()
    # the second worker still knew the workspace: its next request finds a fresh, empty directory
    assert second.current(request_with("job")) == path and path.is_dir() and not any(path.iterdir())


def test_forwarded_replies_are_parsed_plain_and_chunked() -> None:
    plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
    status, headers, body = _parse_reply(plain)
    assert status == 200 and body == b"{}"
    assert (b"content-type", b"application/json") in headers and (b"content-length", b"2") in headers
    assert all(name != b"connection" for name, _ in headers)
    chunked = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nmcp-session-id: abc\r\n\r\n"
               b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
    status, headers, body = _parse_reply(chunked)
    assert status == 404 and body == b"hello world"
    assert (b"mcp-session-id", b"abc") in headers and (b"content-length", b"11") in headers


class Sink(asyncio.Transport):
    """A transport that records each write (one entry per system call it would make)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_a_response_head_leaves_with_its_body() -> None:
    sink = Sink()
    corked = _CorkedTransport(sink, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    assert sink.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    corked.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # a stream whose body comes later
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sink.writes[-1] == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"  # flushed on the next turn
    corked.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    corked.close()  # closing flushes first
    assert sink.writes[-1].startswith(b"HTTP/1.1 400") and sink.closed
