"""Workers of the process sandbox's fork server: each takes a request, has the template clone a sandbox, supervises it.

Stdlib only; imported by `_zygote.py` (which puts this directory on the path). A worker runs one execution at a time:
it reads the request from the server's connection, hands the workspace to its uid, sets the cgroup, asks the
template for a sandbox (sending the workspace's network namespace), writes the request to the sandbox, collects its
output under the caps and the deadline, and answers with the result and the resource use the template reports.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import socket
import struct
import time
from typing import Any

import _nsutil as ns

Json = dict[str, Any]
NETNS_PER_WORKER = 16
DRAIN_S = 0.005  # how often a worker empties a running sandbox's output pipes
PIPE_DEFAULT, PIPE_MAX, F_SETPIPE_SZ = 65536, 1 << 20, 1031
PID = struct.Struct("=i")  # template -> worker: the sandbox's pid
REPORT = struct.Struct("=iddq")  # template -> worker: wait status, user and system seconds, max RSS in kB


WIRE_VERSION = 4  # marshal format of the messages (plain data only: readable by any Python 3 from 3.4 on)


def recv_msg(conn: socket.socket) -> tuple[Json, bytes]:
    """Read one length-prefixed message; returns it decoded and as received (length prefix included).

    Messages are dicts of plain data in `marshal` format: the server, the workers and the sandboxes trust each other
    (root-only socket and pipes), and marshal reads bytes (stdin, output) as they are, much faster than JSON.
    """
    head = _recv_exact(conn, 4)
    raw = _recv_exact(conn, struct.unpack(">I", head)[0])
    msg: Json = marshal.loads(raw)
    return msg, head + raw


def send_msg(conn: socket.socket, msg: Json) -> None:
    """Write one length-prefixed message (see `recv_msg`)."""
    raw = marshal.dumps(msg, WIRE_VERSION)
    conn.sendall(struct.pack(">I", len(raw)) + raw)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


class NetNamespaces:
    """The network namespaces a worker keeps, one per workspace, the least recently used dropped beyond `size`."""

    def __init__(self, loopback: bool, size: int = NETNS_PER_WORKER) -> None:
        self.loopback = loopback
        self.size = size
        self.fds: dict[str, int] = {}

    def get(self, workspace: str) -> int:
        """The fd of `workspace`'s network namespace, made on first use."""
        fd = self.fds.pop(workspace, None)
        if fd is None:
            fd = ns.new_net_namespace(self.loopback)
            while len(self.fds) >= self.size:
                os.close(self.fds.pop(next(iter(self.fds))))
        self.fds[workspace] = fd  # most recently used last
        return fd


def worker_main(cfg: Json, listener: socket.socket, chan: socket.socket, name: str) -> None:
    """Serve requests one after another: take a connection, get a fresh sandbox from the template, supervise it."""
    cgroup = ns.Cgroup.create(cfg["cgroups"], name) if cfg["cgroups"] else None
    nets = NetNamespaces(cfg.get("loopback", True))
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                req, raw = recv_msg(conn)
                try:
                    result = execute(cfg, req, raw, chan, cgroup, nets)
                except BaseException as exc:  # noqa: BLE001
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                send_msg(conn, result)
            except (OSError, EOFError, ValueError):
                continue


def execute(
    cfg: Json, req: Json, raw: bytes, chan: socket.socket, cgroup: ns.Cgroup | None, nets: NetNamespaces
) -> Json:
    """Run one request (`raw`: as received, passed on to the sandbox) in a fresh sandbox and collect its output,
    status and resource use."""
    t0 = time.monotonic()
    lim = req["limits"]
    if req.get("chown", True):
        ns.own_tree(req["workspace"], req["uid"], req["gid"])
    if cgroup is not None:
        cgroup.set_limits(lim["memory_bytes"], lim["processes"] + 1)
        cgroup.reset()
    net_fd = nets.get(req["workspace"])
    ctl_r, ctl_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    setup_r, setup_w = os.pipe()
    try:
        socket.send_fds(chan, [b"spawn"], [net_fd, ctl_r, out_w, err_w, setup_w])  # the sandbox's ends
    finally:
        for fd in (ctl_r, out_w, err_w, setup_w):
            os.close(fd)
    msg = chan.recv(4096)
    if len(msg) != PID.size:
        for fd in (ctl_w, out_r, err_r, setup_r):
            os.close(fd)
        raise RuntimeError(f"the template could not start a sandbox: {msg.decode(errors='replace')}")
    (pid,) = PID.unpack(msg)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # it failed at once and the template has reaped it already
        pidfd = -1
    done = False
    try:
        try:
            if cgroup is not None:
                cgroup.add(pid)  # before the request is written: the sandbox waits for it before running anything
            os.write(ctl_w, raw)
        except (BrokenPipeError, ProcessLookupError):
            pass  # the sandbox failed before reading its request: its set-up error is in its pipe
        finally:
            os.close(ctl_w)
        collected = collect(pidfd, out_r, err_r, setup_r, t0 + lim["timeout_s"], lim["output_bytes"])
        done = True
    finally:
        if pidfd >= 0:
            if not done:  # the sandbox must not run on unsupervised
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        for fd in (out_r, err_r, setup_r):
            os.close(fd)
        report = chan.recv(4096)  # the template reaped it (always read: the next call's messages come after it)
    wstatus, user_s, system_s, max_rss_kb = REPORT.unpack(report)
    exit_code = signal_no = None
    if not collected["timed_out"] and not collected["output_limit_exceeded"]:
        if os.WIFEXITED(wstatus):
            exit_code = os.WEXITSTATUS(wstatus)
        elif os.WIFSIGNALED(wstatus):
            signal_no = os.WTERMSIG(wstatus)
            exit_code = -signal_no
    collected.update(exit_code=exit_code, signal=signal_no, duration_s=time.monotonic() - t0)
    collected["rusage"] = {"user_s": user_s, "system_s": system_s, "max_rss_kb": max_rss_kb}
    stderr_tail = collected["stderr"][-2000:]
    collected["memory_exceeded"] = exit_code not in (0, None) and b"MemoryError" in stderr_tail
    if cgroup is not None:
        collected["memory_exceeded"] = collected["memory_exceeded"] or cgroup.oom_killed()
        collected["rusage"]["peak_memory_bytes"] = cgroup.peak_memory()
    return collected


def collect(pidfd: int, out_r: int, err_r: int, setup_r: int, deadline: float, cap: int) -> Json:
    """Read stdout/stderr (capped) until the sandbox's pid 1 exits or the deadline passes.

    The pipes are drained every `DRAIN_S` and when pid 1 exits, not on every write: a run that prints a line per
    test would otherwise wake this worker once per line. A writer that fills a pipe waits for the next drain (the
    pipes hold the whole cap, up to 1 MB). On timeout, or when a stream passes the cap, pid 1 is killed, which
    makes the kernel kill everything in its pid namespace: nothing outlives the call.
    """
    pipes = (out_r, err_r, setup_r)
    bufs = {out_r: bytearray(), err_r: bytearray(), setup_r: bytearray()}
    caps = {out_r: cap, err_r: cap, setup_r: 4096}
    truncated = {out_r: False, err_r: False, setup_r: False}
    for fd in pipes:
        os.set_blocking(fd, False)
    if cap > PIPE_DEFAULT:
        import fcntl

        for fd in (out_r, err_r):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, min(cap + 4096, PIPE_MAX))
            except OSError:
                pass  # the default size still works: the writer waits for the next drain
    poller = select.poll()
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    timed_out = output_exceeded = exited = False

    def drain() -> None:
        for fd in pipes:
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

    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        exited = pidfd < 0 or bool(poller.poll(min(remaining, DRAIN_S) * 1000))
        drain()
        if truncated[out_r] or truncated[err_r]:
            output_exceeded = True
            break
        if exited:
            break
    if not exited:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        drain()  # take what is already in the pipes, never wait for more
    return {
        "stdout": bytes(bufs[out_r]),
        "stderr": bytes(bufs[err_r]),
        "stdout_truncated": truncated[out_r],
        "stderr_truncated": truncated[err_r],
        "output_limit_exceeded": output_exceeded,
        "timed_out": timed_out,
        "setup_error": bufs[setup_r].decode("utf-8", "replace") or None,
    }
