"""The process backend: Linux namespaces, rlimits and cgroups around a warm fork server (see `_zygote.py`)."""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import json
import marshal
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_servers.errors import BackendError, BackendTimeoutError, ConfigError
from mcp_servers.exec.sandbox import _nsutil as ns
from mcp_servers.exec.sandbox import supervise
from mcp_servers.exec.sandbox.base import ExecResult, Limits, LoopGate, Sandbox, checked_run

__all__ = ["DEFAULT_PRELOAD", "HARNESS_MODULE", "JUDGE_MODULE", "ProcessSandbox", "ProcessSandboxConfig"]

HARNESS_MODULE = "mcpgym_harness"  # the run_tests harness, preloaded by the fork server under this name
WIRE_MODULE = "mcpgym_wire"  # the judge's plain-data codec
JUDGE_MODULE = "mcpgym_judge"  # the run_tests judge (it finds the harness and the codec under the names above)

_ZYGOTE = Path(__file__).with_name("_zygote.py")
_BOOT = (  # the fork server's program (as `_zygote.BOOT`): the memfd {fd} names its file and holds its configuration
    "import json, os\nwith os.fdopen({fd}) as fh:\n    cfg = json.load(fh)\n"
    "with open(cfg['zygote'], encoding='utf-8') as fh:\n    source = fh.read()\n"
    "scope = {{'__name__': '_zygote', '__file__': cfg['zygote']}}\n"
    "exec(compile(source, '<_zygote>', 'exec'), scope)\nscope['serve'](cfg)\n"
)
_STARTS = itertools.count(1)  # fork servers started by this process (names their cgroups)
_BIG_TREE = 256  # workspaces with more entries than this are handed to their uid in a thread
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc")

# Modules imported once by the fork server so that executions find them in memory (the warm path). Left out: modules
# that hook every fork, a cost each execution would pay whether it uses them or not: `random` (and `statistics`,
# which imports it) re-seeds in every fork, and `subprocess` imports `threading`, whose at-fork hook alone raised the
# cost of a fork and exit from 0.67 to 1.06 ms. Code that imports them pays the import instead (a few ms).
DEFAULT_PRELOAD: tuple[str, ...] = (
    "abc", "argparse", "array", "base64", "bisect", "collections", "copy", "csv", "dataclasses", "datetime",
    "decimal", "enum", "fractions", "functools", "hashlib", "heapq", "io", "itertools", "json", "math",
    "operator", "pathlib", "re", "string", "struct", "textwrap",
    "traceback", "typing", "unittest", "ast",
)  # fmt: skip


def _base_python() -> str:
    """The real interpreter behind this (possibly virtual) environment: its files are visible in the sandbox."""
    for cand in (getattr(sys, "_base_executable", None), sys.executable):
        if cand and os.path.exists(cand):
            return os.path.realpath(cand)
    raise ConfigError("cannot find a Python interpreter for the sandbox; set MCPGYM_EXEC__PYTHON")


@dataclass(frozen=True)
class ProcessSandboxConfig:
    """Configuration of the process backend.

    Attributes:
        limits: Default limits of an execution.
        python: Interpreter used inside the sandbox (default: the real interpreter behind the running one).
        ro_paths: Extra host paths mounted read-only at the same place inside the sandbox.
        uid_base: First host uid given to sandboxes; each live workspace gets its own uid from `uid_base` on.
        uid_count: How many uids the pool holds: at most this many workspaces are live at once (a released
            workspace's uid goes to the next new one; past the cap, a new workspace's call is refused).
        preload: Modules the fork server imports once so executions start warm.
        use_cgroups: Put each execution in its own memory and pids cgroup where cgroups are writable.
        loopback: Bring up a private loopback interface in each sandbox (it reaches nothing outside).
        pool_size: Executions run at once (per event loop); more wait for a free place.
        mount_api: Build each sandbox's file system from a prepared mount namespace with `open_tree(2)` and
            `move_mount(2)` where the kernel has them (5.2+); False forces the older pivot_root path.
    """

    limits: Limits = field(default_factory=Limits)
    python: str | None = None
    ro_paths: tuple[str, ...] = ()
    uid_base: int = 200_000
    uid_count: int = 50_000
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    use_cgroups: bool = True
    loopback: bool = True
    pool_size: int = 8
    mount_api: bool = True


class ProcessSandbox(Sandbox):
    """Runs each execution in fresh pid, mount, ipc, uts and network namespaces, forked from a warm interpreter.

    The fork server starts on first use (or with `start()`); `close()` stops it. As root, each workspace gets its
    own uid and cgroups apply; without root, the fork server works in a user namespace of its own (docs/exec.md).

    Example:
        sandbox = ProcessSandbox()
        result = await sandbox.run(Path("ws"), code="print(1 + 1)")
    """

    name = "process"
    preloaded_harness: str | None = JUDGE_MODULE

    def __init__(self, config: ProcessSandboxConfig | None = None) -> None:
        self.config = config or ProcessSandboxConfig()
        self.rootless = os.geteuid() != 0  # then the fork server runs in a user namespace of its own
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._uids: dict[str, int] = {}  # live workspace -> its uid
        self._free_uids: list[int] = []  # uids of released workspaces, given out again first
        self._next_uid = 0  # uids given out so far: uid_base + 0 .. uid_base + _next_uid - 1
        self._running: dict[str, int] = {}  # workspace -> executions in flight
        self._released: set[str] = set()  # released while executions ran: its uid is freed when they end
        self.cgroups: list[str] = []
        self._channel: socket.socket | None = None  # spawn requests to the fork server
        self._tree_sizes: dict[str, int] = {}  # workspace -> entries its last ownership walk visited
        self._nets: supervise.NetNamespaces | None = None
        self._cgroups: supervise.CgroupPool | None = None
        self._gate = LoopGate(self.config.pool_size)  # at most `pool_size` executions at once

    # ------------------------------------------------------------------ fork server

    @property
    def python(self) -> str:
        """The interpreter used inside the sandbox."""
        return self.config.python or _base_python()

    def _zygote_config(self, workdir: str) -> dict[str, Any]:
        python = self.python
        prefix = os.path.dirname(os.path.dirname(python))
        symlinks: dict[str, str] = {}
        binds: list[str] = []
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                symlinks[path] = os.readlink(path)
            elif os.path.isdir(path):
                binds.append(path)
        extra = [prefix] if not any(prefix == b or prefix.startswith(b + "/") for b in binds) else []
        for path in [*extra, *self.config.ro_paths]:
            real = os.path.realpath(path)
            if not os.path.exists(real):
                raise ConfigError(f"sandbox read-only path {path!r} does not exist")
            binds.append(real)
        return {
            "stage_dir": os.path.join(workdir, "root"),
            "ro_binds": binds,
            "symlinks": symlinks,
            "preload": list(self.config.preload),
            "preload_files": {  # (in this order: the judge finds the harness loaded)
                HARNESS_MODULE: str(Path(__file__).resolve().parent.parent / "harness.py"),
                WIRE_MODULE: str(Path(__file__).resolve().parent.parent / "wire.py"),
                JUDGE_MODULE: str(Path(__file__).resolve().parent.parent / "judge.py"),
            },
            "warm_up": [HARNESS_MODULE, JUDGE_MODULE],  # (the judge's warm-up runs the codec)
            "mount_api": self.config.mount_api,
            "env": self.environment(),
        }

    def start(self) -> None:
        """Start the fork server if it is not running.

        Raises:
            BackendError: Not root, not Linux, or the fork server failed to start.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            self._stop_locked()
            if sys.platform != "linux":
                raise BackendError("the process sandbox needs Linux namespaces; use the docker backend elsewhere")
            self._dir = tempfile.mkdtemp(prefix="mcpgym-exec-")
            cfg = self._zygote_config(self._dir)
            if self.rootless:  # the fork server makes a user namespace of its own (see `_nsutil.enter_user_namespace`)
                cfg["userns"] = {"uid": os.geteuid(), "gid": os.getegid()}
                cfg["mount_api"] = False  # /proc mounts need the host's /proc in view there: see `_rootfs.enter_root`
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            cfg["channel"] = theirs.fileno()
            roots = ns.Cgroup.roots() if self.config.use_cgroups and not self.rootless else {}
            owner = f"x-{os.stat('/proc/self/ns/pid').st_ino}-"  # (a server elsewhere may share the hierarchy)
            ns.Cgroup.remove_orphans(roots, owner)  # those of servers killed together with their fork server
            prefix = f"{owner}{os.getpid()}-{next(_STARTS)}"
            cfg["cgroups"] = {"roots": roots, "prefix": prefix}  # the fork server removes them when it exits
            cfg["zygote"] = str(_ZYGOTE)
            env = self.environment()  # the sandbox's own: executions then find it in place
            memfd = os.memfd_create("mcpgym-exec-config", 0)  # (not argv: every sandbox could read it there)
            try:
                os.write(memfd, json.dumps(cfg).encode())
                os.lseek(memfd, 0, os.SEEK_SET)
                self._proc = subprocess.Popen(
                    [self.python, "-I", "-S", "-c", _BOOT.format(fd=memfd)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, env=env, cwd="/", close_fds=True, pass_fds=[theirs.fileno(), memfd],
                )  # fmt: skip
            finally:
                theirs.close()
                os.close(memfd)
            self._channel = ours
            assert self._proc.stdout is not None
            line = self._proc.stdout.readline()
            try:
                ready = json.loads(line)
            except ValueError:
                ready = {"error": "see the server log"}
            if not ready.get("ready"):
                self._stop_locked()
                hint = (
                    "; without root it needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0, "
                    "kernel.unprivileged_userns_clone=1 where it exists): allow them, run the server as root, or use "
                    "the docker backend (--backend docker)"
                    if self.rootless
                    else ""
                )
                raise BackendError(f"the process sandbox's fork server failed to start: {ready.get('error')}{hint}")
            ours.setblocking(False)
            self.cgroups = sorted(roots)
            self._cgroups = supervise.CgroupPool(roots, prefix)
            self._nets = supervise.NetNamespaces(
                self.config.loopback, make=self._fork_server_net_namespace if self.rootless else None
            )
            self.code_magic = bytes.fromhex(ready["magic"]) if ready.get("magic") else None

    def _fork_server_net_namespace(self, loopback: bool) -> int:
        """A network namespace made by the fork server (see `_zygote.send_net_namespace`): without root, only a
        process in its user namespace can make one that its sandboxes may enter."""
        channel = self._channel
        if channel is None:
            raise OSError("the fork server is not running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours, theirs:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))]
            channel.sendmsg([b"netns+lo" if loopback else b"netns"], rights)
            theirs.close()
            ours.settimeout(10)
            msg, fds, _, _ = socket.recv_fds(ours, 4096, 1)
        if not fds:
            raise OSError(f"the fork server could not make a network namespace: {msg.decode(errors='replace')}")
        return fds[0]

    def _stop_locked(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()  # the fork server exits when its stdin closes
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._nets is not None:
            self._nets.close()
            self._nets = None
        if self._cgroups is not None:
            self._cgroups.remove_all()  # the fork server is gone, and with it every sandbox
            self._cgroups = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def shutdown(self) -> None:
        """Stop the fork server (and with it any execution still running)."""
        with self._lock:
            self._stop_locked()

    # ------------------------------------------------------------------ executions

    def uid_for(self, workspace: Path) -> int:
        """The host uid that executions in `workspace` run as (one per workspace, so sessions cannot touch each other)."""
        if self.rootless:
            return os.geteuid()  # the only id there is (workspaces are kept apart by their mount namespaces)
        key = str(workspace)
        with self._lock:
            uid = self._uids.get(key)
            if uid is None:
                if self._free_uids:
                    uid = self._free_uids.pop()
                elif self._next_uid < self.config.uid_count:
                    uid = self.config.uid_base + self._next_uid
                    self._next_uid += 1
                else:
                    raise BackendError(
                        f"all {self.config.uid_count} sandbox uids are held by live workspaces (one each, from "
                        f"uid {self.config.uid_base}): end sessions to release their workspaces, or give the process "
                        "backend a larger uid_count"
                    )
                self._uids[key] = uid
                self._released.discard(key)
            return uid

    async def release(self, workspace: Path) -> None:
        """Free the workspace's uid for another workspace (once its executions in flight have ended)."""
        key = str(Path(workspace).resolve())
        with self._lock:
            if self._running.get(key):
                self._released.add(key)
            else:
                self._free_uid_locked(key)

    def _free_uid_locked(self, key: str) -> None:
        uid = self._uids.pop(key, None)
        self._tree_sizes.pop(key, None)
        self._released.discard(key)
        if uid is not None:
            self._free_uids.append(uid)

    def environment(self) -> dict[str, str]:
        """The whole environment an execution sees (nothing of the server's own)."""
        prefix_bin = os.path.dirname(self.python)
        return {
            "PATH": f"{prefix_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
        }

    async def run(
        self,
        workspace: Path,
        *,
        code: str | None = None,
        argv: Sequence[str] | None = None,
        stdin: str | bytes = b"",
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run Python `code` or `argv` in a fresh sandbox; see `Sandbox.run`."""
        ws = checked_run(workspace, code, argv)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return await self._run(ws, limits, code=code, argv=list(argv) if argv is not None else None, stdin=data)

    async def call_preloaded(
        self,
        workspace: Path,
        function: str,
        args: Sequence[Any],
        *,
        limits: Limits | None = None,
        stdin: bytes = b"",
    ) -> ExecResult:
        """Run `function(*args)` of the preloaded judge in a fresh sandbox; see `Sandbox.call_preloaded`.

        Compiling a program that carries the arguments as literals cost each run_tests call ~0.4 ms and ~80
        copy-on-write faults in the sandbox; here they are part of the request (plain data: str, int, list, dict).
        `stdin` follows the request on the same pipe, which becomes the execution's standard input: unlike a
        request's, it is not in the execution's memory until it reads it.
        """
        ws = checked_run(workspace, "", None)
        return await self._run(ws, limits, call=[JUDGE_MODULE, function, list(args)], tail=stdin)

    async def _run(self, ws: Path, limits: Limits | None, tail: bytes = b"", **what: Any) -> ExecResult:
        lim = limits or self.config.limits
        if self._proc is None or self._proc.poll() is not None:
            await asyncio.to_thread(self.start)
        key = str(ws)
        with self._lock:
            self._running[key] = self._running.get(key, 0) + 1
        try:
            return await self._run_counted(ws, lim, tail, what)
        finally:
            with self._lock:
                self._running[key] -= 1
                if not self._running[key]:
                    del self._running[key]
                    if key in self._released:
                        self._free_uid_locked(key)

    async def _run_counted(self, ws: Path, lim: Limits, tail: bytes, what: dict[str, Any]) -> ExecResult:
        uid = self.uid_for(ws)
        gid = os.getegid() if self.rootless else uid
        wire = {"workspace": str(ws), **what, "uid": uid, "gid": gid, "limits": lim.to_wire(), "userns": self.rootless}
        if tail:
            wire["tail"] = True  # the rest of the control pipe is the execution's stdin
        request = marshal.dumps(wire, 4)
        request = struct.pack(">I", len(request)) + request + tail
        async with self._gate():
            try:  # (the deadline is enforced in `supervise.collect`; this only guards against a hung fork server)
                reply = await asyncio.wait_for(self._execute(ws, uid, lim, request), timeout=lim.timeout_s + 30)
            except TimeoutError:
                raise BackendTimeoutError("process sandbox: the fork server did not answer in time") from None
            except (OSError, EOFError) as exc:
                raise BackendError(f"process sandbox: lost the fork server ({type(exc).__name__}: {exc})") from None
            except RuntimeError as exc:
                raise BackendError(f"process sandbox failed: {exc}") from None
        if reply.get("setup_error"):
            raise BackendError(f"process sandbox set-up failed: {reply['setup_error']}")
        return ExecResult(
            exit_code=reply["exit_code"],
            stdout=reply["stdout"].decode("utf-8", errors="replace"),
            stderr=reply["stderr"].decode("utf-8", errors="replace"),
            stdout_truncated=reply["stdout_truncated"],
            stderr_truncated=reply["stderr_truncated"],
            timed_out=reply["timed_out"],
            memory_exceeded=reply["memory_exceeded"],
            output_limit_exceeded=reply["output_limit_exceeded"],
            duration_s=reply["duration_s"],
            rusage=reply["rusage"],
        )

    async def _execute(self, ws: Path, uid: int, lim: Limits, request: bytes) -> dict[str, Any]:
        """One execution: hand the workspace to its uid, get a sandbox from the fork server, put it in a cgroup,
        send it the request, collect its output and its report (see `supervise`)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        channel, nets, cgroups = self._channel, self._nets, self._cgroups
        assert channel is not None and nets is not None and cgroups is not None
        key = str(ws)
        if self.rootless:
            pass  # the workspace's files are the server's, and so the sandbox's
        elif self._tree_sizes.get(key, 0) > _BIG_TREE:  # a long walk goes to a thread, off the event loop
            self._tree_sizes[key] = await asyncio.to_thread(ns.own_tree, key, uid, uid)
        else:
            self._tree_sizes[key] = ns.own_tree(key, uid, uid)
        cgroup = cgroups.take()
        try:
            if cgroup is not None:
                cgroup.set_limits(lim.memory_mb * 1024 * 1024, lim.processes + 1)
                cgroup.reset()
            ctl_r, ctl_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            setup_r, setup_w = os.pipe()
            try:
                try:
                    pid, reply = await supervise.spawn(channel, [nets.get(key), ctl_r, out_w, err_w, setup_w])
                except BaseException:
                    os.close(ctl_w)
                    raise
                finally:
                    for fd in (ctl_r, out_w, err_w, setup_w):
                        os.close(fd)
                with reply:  # from here `_supervise` closes ctl_w
                    try:
                        pidfd = os.pidfd_open(pid)
                    except ProcessLookupError:  # it failed at once and has been reaped already
                        pidfd = -1
                    try:
                        collected = await self._supervise(pid, pidfd, cgroup, ctl_w, request, (out_r, err_r, setup_r),
                                                          started + lim.timeout_s, lim.output_bytes)  # fmt: skip
                    finally:
                        if pidfd >= 0:
                            os.close(pidfd)
                    report = await loop.sock_recv(reply, 4096)  # written once the fork server has reaped it
                    if len(report) != supervise.REPORT.size:
                        raise EOFError("the fork server went away during the execution")
            finally:
                for fd in (out_r, err_r, setup_r):
                    os.close(fd)
            wstatus, user_s, system_s, max_rss_kb = supervise.REPORT.unpack(report)
            exit_code = signal_no = None
            if not collected["timed_out"] and not collected["output_limit_exceeded"]:
                if os.WIFEXITED(wstatus):
                    exit_code = os.WEXITSTATUS(wstatus)
                elif os.WIFSIGNALED(wstatus):
                    signal_no = os.WTERMSIG(wstatus)
                    exit_code = -signal_no
            collected.update(exit_code=exit_code, signal=signal_no, duration_s=loop.time() - started)
            collected["rusage"] = {"user_s": user_s, "system_s": system_s, "max_rss_kb": max_rss_kb}
            stderr_tail = collected["stderr"][-2000:]
            collected["memory_exceeded"] = exit_code not in (0, None) and b"MemoryError" in stderr_tail
            if cgroup is not None:
                collected["memory_exceeded"] = collected["memory_exceeded"] or cgroup.oom_killed()
                collected["rusage"]["peak_memory_bytes"] = cgroup.peak_memory()
            return collected
        finally:
            cgroups.give(cgroup)

    async def _supervise(
        self,
        pid: int,
        pidfd: int,
        cgroup: Any,
        ctl_w: int,
        request: bytes,
        pipes: tuple[int, int, int],
        deadline: float,
        cap: int,
    ) -> dict[str, Any]:
        """Put the sandbox in its cgroup, write its request, then collect its output; the sandbox is killed if this
        fails or is cancelled (it must never run on unsupervised)."""
        done = False
        try:
            try:
                if cgroup is not None:
                    cgroup.add(pid)  # before the request: the sandbox waits for it before running anything
                os.set_blocking(ctl_w, False)
                await supervise.write_all(ctl_w, request)
            except (BrokenPipeError, ProcessLookupError):
                pass  # it failed before reading its request: its set-up error is in its pipe
            finally:
                os.close(ctl_w)
            collected = await supervise.collect(pidfd, *pipes, deadline, cap)
            done = True
            return collected
        finally:
            if not done and pidfd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
