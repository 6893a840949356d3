"""Shared fixtures of the collector tests: the toy MCP server over stdio and HTTP, and tasks for it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.servers import ServerSpec
from collector.tasks.model import Task, VerifierSpec

TOY = Path(__file__).with_name("toy_mcp_server.py")


def toy_stdio_spec(name: str = "files") -> ServerSpec:
    """The toy server as a stdio command, one process (and workspace) per session."""
    return ServerSpec(name=name, command=sys.executable, args=(str(TOY), "stdio", "--workspace", "{workspace}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ToyHttp:
    """The toy server as a streamable-HTTP subprocess on a loopback port (restartable)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(TOY), "http", "--port", str(self.port), "--workspace",
                                      str(self.workspace)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("toy HTTP server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def toy_http(tmp_path: Path) -> Iterator[ToyHttp]:
    server = ToyHttp(tmp_path / "http-ws")
    server.start()
    yield server
    server.kill()


def make_task(task_id: str, text: str, *, expected: Any, servers: list[str] | None = None,
              verifier: str = "contains", **extra: Any) -> Task:
    """A task for the toy server."""
    return Task(id=task_id, family="toy", messages=[{"role": "user", "content": text}],
                servers=["files"] if servers is None else servers,
                verifier=VerifierSpec(type=verifier, expected=expected), **extra)
