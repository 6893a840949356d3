"""The process sandbox's executions supervised from the server's event loop.

The fork server (`_zygote.py`) only clones and reaps. The server asks it for a sandbox over one SOCK_SEQPACKET
channel, passing the call's descriptors (a reply socket, the workspace's network namespace, the sandbox's ends of
four pipes), then, here: moves the sandbox into a cgroup, writes the request, collects stdout and stderr under the
caps and the deadline, and reads the exit status and resource use the fork server writes to the reply socket.
Doing this in the event loop rather than in worker processes spares each call a process hop (a request and a reply
between processes, and their wake-ups) and the workers' own CPU.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import signal
import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mcp_servers.exec.sandbox import _nsutil as ns

__all__ = ["PID", "REPORT", "CgroupPool", "NetNamespaces", "collect", "spawn", "write_all"]

NETNS_KEPT = 16  # network namespaces kept, one per workspace, least recently used dropped first
DRAIN_S = 0.005  # after a pipe had output, how long until it is read again (a line per test must not wake us per line)
PIPE_DEFAULT, PIPE_MAX, F_SETPIPE_SZ = 65536, 1 << 20, 1031
PID = struct.Struct("=i")  # fork server -> server: the sandbox's pid (= _zygote.PID)
REPORT = struct.Struct("=iddq")  # fork server -> server: wait status, user and system s, max RSS kB (= _zygote.REPORT)


class NetNamespaces:
    """The network namespaces kept for workspaces, one each, the least recently used closed beyond `size`.

    Creating and destroying a network namespace costs more than the rest of a sandbox's set-up. Each has no
    interface but a loopback (up or down) and so reaches nothing; a workspace's executions share one (they share
    the workspace's files anyway), and two workspaces never do.
    """

    def __init__(self, loopback: bool, size: int = NETNS_KEPT, make: Callable[[bool], int] | None = None) -> None:
        self.loopback = loopback
        self.size = size
        self._make = make or ns.new_net_namespace  # (without root: the fork server makes them in its namespace)
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workspace: str) -> int:
        """The fd of `workspace`'s network namespace, made on first use (valid until `size` others are used)."""
        with self._lock:
            fd = self._fds.get(workspace)
            if fd is not None:
                self._fds.move_to_end(workspace)
                return fd
            fd = self._make(self.loopback)
            self._fds[workspace] = fd
            while len(self._fds) > self.size:
                os.close(self._fds.popitem(last=False)[1])
            return fd

    def close(self) -> None:
        """Close every kept namespace."""
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


class CgroupPool:
    """Cgroups for running executions (memory and pids limits, peak memory, OOM kills), one per execution at a
    time, made as concurrency needs them and reused."""

    def __init__(self, roots: dict[str, str], prefix: str) -> None:
        self.roots = roots
        self.prefix = prefix
        self._free: list[ns.Cgroup] = []
        self._made = 0
        self._lock = threading.Lock()

    def take(self) -> ns.Cgroup | None:
        """A free cgroup (None where cgroups are not writable)."""
        if not self.roots:
            return None
        with self._lock:
            if self._free:
                return self._free.pop()
            self._made += 1
            name = f"{self.prefix}-{self._made}"
        return ns.Cgroup.create(self.roots, name)

    def give(self, cgroup: ns.Cgroup | None) -> None:
        """Return a cgroup taken with `take` (its processes have exited)."""
        if cgroup is not None:
            with self._lock:
                self._free.append(cgroup)

    def remove_all(self) -> None:
        """Remove every cgroup made (once their processes are gone)."""
        with self._lock:
            for i in range(1, self._made + 1):
                ns.Cgroup.remove_named(self.roots, f"{self.prefix}-{i}")
            self._free.clear()
            self._made = 0


async def spawn(channel: socket.socket, fds: list[int]) -> tuple[int, socket.socket]:
    """Ask the fork server for a sandbox with `fds` (network namespace, control pipe's read end, write ends of
    stdout, stderr and set-up pipes); returns its pid and the reply socket on which its report will come.

    Raises:
        OSError: The fork server is gone.
        RuntimeError: It could not start a sandbox (its message).
    """
    loop = asyncio.get_running_loop()
    reply, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        reply.setblocking(False)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno(), *fds]))]
        while True:
            try:
                channel.sendmsg([b"spawn"], rights)
                break
            except BlockingIOError:  # the fork server lags: wait until the channel takes more
                await _ready(loop, channel.fileno(), write=True)
        theirs.close()
        msg = await loop.sock_recv(reply, 4096)
        if len(msg) != PID.size:
            if not msg:
                raise ConnectionError("the fork server closed the call's reply socket")
            raise RuntimeError(f"the fork server could not start a sandbox: {msg.decode(errors='replace')}")
        return PID.unpack(msg)[0], reply
    except BaseException:
        theirs.close()
        reply.close()
        raise


async def write_all(fd: int, data: bytes) -> None:
    """Write `data` to the non-blocking pipe `fd`, waiting while it is full (BrokenPipeError if nobody reads)."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(loop, fd, write=True)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
    waiter = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    add(fd, wake)
    try:
        await waiter
    finally:
        remove(fd)


async def collect(pidfd: int, out_r: int, err_r: int, setup_r: int, deadline: float, cap: int) -> dict[str, Any]:
    """Read stdout and stderr (capped) until the sandbox's pid 1 exits, a stream passes the cap, or the deadline.

    A pipe with output is read, then left alone for `DRAIN_S` (a writer that fills it waits that long; the pipes
    hold the whole cap, up to 1 MB). On timeout, or past the cap, pid 1 is killed, which makes the kernel kill
    everything in its pid namespace: nothing outlives a call.
    """
    loop = asyncio.get_running_loop()
    pipes = (out_r, err_r, setup_r)
    bufs = {fd: bytearray() for fd in pipes}
    caps = {out_r: cap, err_r: cap, setup_r: 4096}
    truncated = {fd: False for fd in pipes}
    for fd in pipes:
        os.set_blocking(fd, False)
    if cap > PIPE_DEFAULT:
        for fd in (out_r, err_r):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, min(cap + 4096, PIPE_MAX))
            except OSError:
                pass  # the default size still works: the writer waits for the next read
    outcome: asyncio.Future[str] = loop.create_future()
    timers: list[asyncio.TimerHandle] = []
    watched: set[int] = set()

    def drain(fd: int) -> None:
        try:
            while len(bufs[fd]) <= caps[fd]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                room = caps[fd] - len(bufs[fd])
                bufs[fd] += chunk[: max(room, 0)]
                if len(chunk) > room:
                    truncated[fd] = True
        except BlockingIOError:
            pass

    def finish(reason: str) -> None:
        if not outcome.done():
            outcome.set_result(reason)

    def watch(fd: int) -> None:
        if not outcome.done():
            loop.add_reader(fd, on_output, fd)
            watched.add(fd)

    def on_output(fd: int) -> None:
        loop.remove_reader(fd)
        watched.discard(fd)
        drain(fd)
        if truncated[out_r] or truncated[err_r]:
            finish("output")
        else:
            timers.append(loop.call_later(DRAIN_S, watch, fd))

    if pidfd >= 0:
        loop.add_reader(pidfd, finish, "exited")
        watched.add(pidfd)
    else:
        finish("exited")  # it had exited and was reaped before we could watch it
    watch(out_r)
    watch(err_r)
    timers.append(loop.call_at(deadline, finish, "timeout"))
    try:
        reason = await outcome
    finally:
        for fd in watched:
            loop.remove_reader(fd)
        for timer in timers:
            timer.cancel()
    if reason != "exited":
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for fd in pipes:
        drain(fd)  # what is in the pipes now; never wait for more
    return {
        "stdout": bytes(bufs[out_r]),
        "stderr": bytes(bufs[err_r]),
        "stdout_truncated": truncated[out_r],
        "stderr_truncated": truncated[err_r],
        "output_limit_exceeded": reason == "output",
        "timed_out": reason == "timeout",
        "setup_error": bufs[setup_r].decode("utf-8", "replace") or None,
    }
