"""uvicorn for the gateway: a response leaves in one write, and worker processes can share a port.

`serve_workers` runs `--workers N` gateway processes. The parent binds the TCP port once and forks the workers,
which all accept from that one listening socket (the kernel hands each new connection to whichever worker accepts
first, so an idle worker takes more). Each worker also listens on a Unix socket of its own in a private directory:
a request for a session that another worker opened is forwarded there (see `fast_http`).

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`, and the body
with the next message: two `send` system calls, two TCP segments (the socket has `TCP_NODELAY`), and on a small
machine two wake-ups of the client for one small JSON reply. `CorkedHttpToolsProtocol` holds the head back until
the body's first write (or the next event-loop turn, whichever comes first) and writes both at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mcp_servers.errors import ConfigError

if TYPE_CHECKING:
    from mcp_servers.settings import ServerSettings

__all__ = ["WorkerInfo", "http_protocol", "run_uvicorn", "serve_workers", "worker_settings"]


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


@dataclass(frozen=True)
class WorkerInfo:
    """Which gateway process this is, and how to reach its siblings.

    Attributes:
        index: This worker's number, 0 to count - 1.
        count: How many gateway processes share the port.
        peers: Each worker's Unix socket, by index (a session's requests are forwarded to the worker that opened it).
    """

    index: int
    count: int
    peers: tuple[str, ...]


def _listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _listen_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(2048)
    return sock


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the process that started it dies (no orphaned workers holding the port)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's signal handler still ends the workers
        pass


def run_uvicorn(app: Any, settings: ServerSettings, sockets: list[socket.socket] | None = None) -> None:
    """Serve `app` with uvicorn, on `settings.http`'s address or on the given listening sockets."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        lifespan="on",
        http=http_protocol(),
        access_log=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=sockets)


def _worker_main(
    names: list[str], settings: ServerSettings, worker: WorkerInfo, sockets: list[socket.socket]
) -> None:
    from mcp_servers.gateway.app import build_gateway

    _die_with_parent()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    gateway = build_gateway(settings, names, worker=worker)
    if worker.index == 0:
        for name, reason in gateway.skipped.items():
            print(f"mcpgym: skipping {name}: {reason}", file=sys.stderr)
        host = settings.http.host
        shown = f"[{host}]" if ":" in host else host
        for name, path in gateway.paths.items():
            print(f"mcpgym: {name} at http://{shown}:{settings.http.port}{path}", file=sys.stderr)
        print(f"mcpgym: {worker.count} gateway processes on port {settings.http.port}", file=sys.stderr)
    run_uvicorn(gateway.app, settings, sockets)


def worker_settings(settings: ServerSettings, index: int) -> ServerSettings:
    """A worker's settings: its own range of exec sandbox uids (processes must never give two workspaces one uid)."""
    exec_settings = settings.exec.model_copy(update={"uid_base": settings.exec.uid_base + index * UIDS_PER_WORKER})
    return settings.model_copy(update={"exec": exec_settings})


UIDS_PER_WORKER = 50_000
"""Sandbox uids each worker's process backend may hand out (its `uid_count`); worker i starts at uid_base + i x this."""


def serve_workers(names: list[str], settings: ServerSettings, workers: int) -> None:
    """Run `workers` gateway processes accepting connections from one listening socket, until interrupted.

    The parent binds the port (and one Unix socket per worker, in a private directory), forks the workers, and
    waits; SIGINT or SIGTERM ends them all, and so does the exit of any one of them.

    Args:
        names: Servers each worker mounts.
        settings: Server settings (already checked).
        workers: How many processes (at least 2).
    """
    import multiprocessing

    tcp = _listen_tcp(settings.http.host, settings.http.port)
    run_dir = tempfile.mkdtemp(prefix="mcpgym-gateway-")  # mode 0700: only this user reaches the workers' sockets
    peers = tuple(os.path.join(run_dir, f"w{i}.sock") for i in range(workers))
    unix = [_listen_unix(path) for path in peers]
    context = multiprocessing.get_context("fork")
    procs = []
    for index in range(workers):
        info = WorkerInfo(index=index, count=workers, peers=peers)
        proc = context.Process(
            target=_worker_main,
            args=(list(names), worker_settings(settings, index), info, [tcp, unix[index]]),
            name=f"mcpgym-gateway-{index}",
            daemon=False,
        )
        proc.start()
        procs.append(proc)
    for sock in [tcp, *unix]:
        sock.close()  # the workers hold them now
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping and all(p.is_alive() for p in procs):
            time.sleep(0.2)
        failed = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn shuts down gracefully (lifespan: workspaces released)
        for proc in procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(run_dir, ignore_errors=True)
    if failed and not stopping:
        codes = ", ".join(f"worker {procs.index(p)}: {p.exitcode}" for p in failed)
        raise ConfigError(f"a gateway worker exited ({codes}); see the messages above")
