"""Fork server of the process sandbox: a preloaded interpreter that clones each execution into fresh namespaces.

Run by `ProcessSandbox` as ``python -I -S -c BOOT`` (`process._BOOT` reads this file's path and the configuration from a
memfd, so that no host path or configuration is in the command line that every sandbox inherits and can read in
/proc/self/cmdline), with a scrubbed environment; stdlib only:

    template (this process: preloaded modules, the static read-only root, never sees a request)
      └── sandbox pid 1, one per call: clone(new pid, mount, ipc and uts namespaces) of the template, asked for by
          the server over a SOCK_SEQPACKET channel with the call's descriptors (its reply socket, the workspace's
          network namespace, the sandbox's ends of four pipes); it enters that network namespace (only a
          loopback), reads the request from the server (which has put it in a cgroup by then), enters a copy of
          the prepared root (a fresh /tmp, the workspace and /proc attached), drops to the workspace's uid with
          seccomp and rlimits, then runs the code (warm) or execs the argv.

The server supervises each execution from its event loop (output, caps, deadline, cgroup); the template only
clones, then reaps each sandbox and writes its exit status and resource use to the call's reply socket. When pid 1
exits (or the server kills it on timeout or output overflow), the kernel kills every process left in its pid
namespace, so nothing outlives a call. The file system is `_rootfs.py`'s. Without root, the template first makes a
user namespace of its own, and each execution a nested one (see `_nsutil.enter_user_namespace`).
"""

from __future__ import annotations

import _signal
import contextlib
import io
import json
import marshal
import os
import resource
import select
import signal
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Any


def load_module(name: str, path: str) -> Any:
    """Import the stdlib-only module at `path` under `name`, its code named ``<name>``: no host path appears in a
    sandbox (not in `__file__`, not in code objects or tracebacks)."""
    import types

    module = types.ModuleType(name)
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our own helper module
    return module


_HERE = os.path.dirname(os.path.abspath(__file__))
ns = load_module("_nsutil", os.path.join(_HERE, "_nsutil.py"))
rootfs = load_module("_rootfs", os.path.join(_HERE, "_rootfs.py"))
del _HERE

NS_FLAGS = ns.CLONE_NEWNS | ns.CLONE_NEWPID | ns.CLONE_NEWIPC | ns.CLONE_NEWUTS
Json = dict[str, Any]


# ---------------------------------------------------------------- inside the namespaces


def set_limits(lim: Json) -> None:
    """Apply the rlimits of one execution."""
    cpu = int(lim["cpu_s"])
    pairs = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (lim["address_bytes"], lim["address_bytes"]),
        resource.RLIMIT_FSIZE: (lim["file_bytes"], lim["file_bytes"]),
        resource.RLIMIT_NOFILE: (lim["open_files"], lim["open_files"]),
        resource.RLIMIT_NPROC: (lim["processes"], lim["processes"]),
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, value in pairs.items():
        resource.setrlimit(which, value)


def run_execution(req: Json, setup_fd: int) -> None:
    """Become the execution: drop privileges, apply limits, then run the Python code or exec the argv. Never returns.

    A failure before the user's code starts is written to `setup_fd` (closed once the code runs) and exits 127.
    """
    try:
        os.setsid()
        os.chdir("/workspace")
        uid, gid = req["uid"], req["gid"]
        if req.get("userns"):  # already the server's ids; a user namespace per execution counts its processes
            ns.enter_user_namespace(uid, gid)  # (RLIMIT_NPROC) apart from other executions'
            ns.drop_capabilities()  # (no change of uid from root does it here)
        else:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)  # from root: the kernel clears every capability
        ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)  # again: a change of uid clears it
        ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
        if req.get("seccomp", True):
            ns.install_seccomp()
        set_limits(req["limits"])
        for sig in RESET_SIGNALS:
            _signal.signal(sig, _signal.SIG_DFL)  # (not `signal.signal`: its enum wrapping costs every fork)
        if req.get("argv"):
            try:
                os.execvp(req["argv"][0], req["argv"])  # the environment is the fork server's: the sandbox's
            except OSError as exc:  # like a shell: a missing command is the command's failure, not the sandbox's
                os.close(setup_fd)
                os.write(2, f"{req['argv'][0]}: {exc.strerror}\n".encode())
                os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    except BaseException as exc:  # noqa: BLE001 - reported to the supervisor as a set-up failure
        _setup_failed(setup_fd, exc)
    os.close(setup_fd)
    os._exit(run_python(req.get("code"), req.get("call")))


def _setup_failed(setup_fd: int, exc: BaseException) -> None:
    try:
        os.write(setup_fd, f"{type(exc).__name__}: {exc}".encode()[:4000])
    finally:
        os._exit(127)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: S110, BLE001
        pass
    return 1


AT_FORK_HOOKS: list[dict[str, Any]] = []  # `os.register_at_fork` calls made while preloading (see `track_at_fork`)
RESET_SIGNALS: list[int] = []  # signals the interpreter handles or ignores; an execution gets their defaults
STREAMS: list[io.TextIOWrapper] = []  # stdin, stdout and stderr of an execution, made by `prepare_streams`
KEPT: list[object] = []  # objects an execution drops but must not free (see `prepare_streams`)


def reset_signals() -> list[int]:
    """The signals whose disposition in this interpreter is not the default (an execution restores the default)."""
    wanted = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
    return [int(sig) for sig in wanted if _signal.getsignal(sig) != _signal.SIG_DFL]


def prepare_streams() -> list[io.TextIOWrapper]:
    """Make, once, the stdin, stdout and stderr objects every execution installs as `sys.std*`.

    Made per execution, they cost each one about 70 copy-on-write faults (codec look-ups, encoder objects). They
    refer to descriptors 0, 1 and 2 by number, which in a sandbox are its own memfd and pipes; each is made while
    its descriptor is, for a moment, the same kind of file (the objects remember whether it is seekable). Nothing
    is ever read or written through them here. The interpreter's own std streams are kept referenced, so that an
    execution replacing them does not free them (a free writes to their pages: more faults).
    """
    made: list[io.TextIOWrapper] = []
    KEPT.extend((sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__))
    for fd in (0, 1, 2):
        saved = os.dup(fd)
        if fd == 0:
            stand_in = os.memfd_create("stdin", 0)
        else:
            stand_in_r, stand_in = os.pipe()
            os.close(stand_in_r)
        os.dup2(stand_in, fd)
        os.close(stand_in)
        try:
            if fd == 0:
                made.append(io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8"))
            else:
                made.append(io.TextIOWrapper(
                    io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                    write_through=False, line_buffering=fd == 2,
                ))  # fmt: skip
        finally:
            os.dup2(saved, fd)
            os.close(saved)
    return made


def run_python(code: str | None, call: list[Any] | None = None) -> int:
    """Run `code` as `__main__` in this fresh fork of the preloaded interpreter, or `call` = [module, function,
    args], a call of a preloaded module's function; return the exit status."""
    import builtins
    import types

    sys.stdin, sys.stdout, sys.stderr = STREAMS
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = STREAMS  # type: ignore[misc]  # (as the interpreter's are)
    sys.argv = ["-c"]
    sys.path[:] = ["/workspace"] + [p for p in sys.path if p]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    status = 0
    try:
        if call is not None:
            module, function, args = call
            getattr(sys.modules[module], function)(*args)
        else:
            exec(compile(code or "", "<code>", "exec"), main.__dict__)  # noqa: S102 - intended
    except SystemExit as exc:
        status = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - the user's exception, printed like the interpreter would
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: S110, BLE001
            pass
    return status


def sandbox_main(cfg: Json, req: Json, fds: Json) -> None:
    """Pid 1 of a fresh sandbox (already in new namespaces): build the file system, then become the execution."""
    setup_fd = fds["setup_w"]
    try:
        ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)
        if cfg.get("root_ns") is not None:
            rootfs.enter_fresh_root(req, cfg["root_ns"])
        else:
            rootfs.enter_root(cfg, req)
        ns.sethostname("sandbox")
        os.dup2(fds["stdin"], 0)
        os.dup2(fds["out_w"], 1)
        os.dup2(fds["err_w"], 2)
        os.dup2(setup_fd, 3)
        os.closerange(4, 65536)
        os.set_inheritable(3, False)
    except BaseException as exc:  # noqa: BLE001
        _setup_failed(setup_fd, exc)
    run_execution(req, 3)


# ---------------------------------------------------------------- the template (the fork server's main process)


SPAWN_FDS = 5  # server -> template: the workspace's network namespace, then the sandbox's four pipe ends
FDS_SPACE = socket.CMSG_SPACE((SPAWN_FDS + 1) * 4)  # (after the call's reply socket)
PID = struct.Struct("=i")  # template -> server: the sandbox's pid
REPORT = struct.Struct("=iddq")  # template -> server: wait status, user and system seconds, max RSS in kB


def spawn_sandbox(cfg: Json, fds: list[int]) -> int:
    """Clone a fresh sandbox pid 1 with `fds` (network namespace, control pipe's read end, write ends of stdout,
    stderr and set-up pipes); returns the sandbox's pid (the caller closes `fds`).

    The template never sees a request: the clone is a copy of pristine memory, so nothing of one execution (code,
    input, output) can be found in the next one's address space. The server made the pipes and moves the sandbox
    into its cgroup: the less the template does between clones, the fewer of its pages it copies (each clone
    shares them all with the new child again).
    """
    flags = NS_FLAGS if cfg.get("root_ns") is None else NS_FLAGS & ~ns.CLONE_NEWNS  # see enter_fresh_root
    pid: int = ns.clone(flags, fork_hooks=bool(AT_FORK_HOOKS))
    if pid == 0:
        try:
            net, ctl_r, out_w, err_w, setup_w = fds
            sandbox_child(cfg, {"ctl_r": ctl_r, "out_w": out_w, "err_w": err_w, "setup_w": setup_w, "net": net})
        finally:
            os._exit(127)
    return pid


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors passed in a message's ancillary data."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"={len(data) // 4}i", data[: len(data) - len(data) % 4]))
    return fds


def sandbox_child(cfg: Json, fds: Json) -> None:
    """The cloned pid 1: read the request (the server has put it in its cgroup by then), then set up and run it.
    Never returns."""
    setup_fd = fds["setup_w"]
    try:
        ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)
        ns.setns(fds["net"], ns.CLONE_NEWNET)
        os.close(fds["net"])
        head = os.read(fds["ctl_r"], 4)
        if len(head) < 4:
            os._exit(0)  # the server went away
        size = struct.unpack(">I", head)[0]
        chunks = []
        while size > 0:
            chunk = os.read(fds["ctl_r"], size)
            if not chunk:
                os._exit(0)
            chunks.append(chunk)
            size -= len(chunk)
        req = marshal.loads(b"".join(chunks))
        if req.get("tail"):  # what follows on the pipe is the execution's stdin, read only when it wants it
            fds["stdin"] = fds["ctl_r"]
        else:
            os.close(fds["ctl_r"])
            stdin_fd = os.memfd_create("stdin", 0)
            data = req.get("stdin")
            if data:
                os.write(stdin_fd, data)
                os.lseek(stdin_fd, 0, os.SEEK_SET)
            fds["stdin"] = stdin_fd
    except BaseException as exc:  # noqa: BLE001
        _setup_failed(setup_fd, exc)
    sandbox_main(cfg, req, fds)


# ---------------------------------------------------------------- the fork server


@contextlib.contextmanager
def track_at_fork() -> Iterator[None]:
    """Record in `AT_FORK_HOOKS` the at-fork hooks that modules register while preloading.

    Sandboxes are cloned without the interpreter's fork protocol (see `_nsutil.clone`), which is only right for a
    single-threaded template without at-fork hooks: the default preload registers none (no `random`, `threading` or
    `logging`), but a configured module may, e.g. `random`, which re-seeds each child. Then every clone runs them.
    """
    register = os.register_at_fork

    def tracked(**hooks: Any) -> None:
        AT_FORK_HOOKS.append(hooks)
        register(**hooks)

    os.register_at_fork = tracked
    try:
        yield
    finally:
        os.register_at_fork = register


def preload(modules: list[str]) -> None:
    """Import the modules every execution may use, so a fork finds them in memory.

    The fork server runs without `site` (its start-up imports modules, such as `random`, whose at-fork hooks every
    execution would pay for); the interpreter's site-packages directories are put on the path directly instead.
    """
    import importlib
    import sysconfig

    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path and path not in sys.path and os.path.isdir(path):
            sys.path.append(path)

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112, BLE001 - a missing optional module is not an error
            continue


def preload_files(files: dict[str, str]) -> None:
    """Import stdlib-only helper modules by file path under the given names (the run_tests harness and judge)."""
    for name, path in files.items():
        load_module(name, path)


WARM_UP_RUNS = 12  # more than the interpreter's threshold for specializing a function's bytecode (8 calls)
WARM_UP_SOLUTION = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n"
WARM_UP_TESTS = (
    "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
    "    assert candidate([5]) == 6, 'a failing test'\n"
)


def warm_up(module_name: str) -> None:
    """Run the preloaded run_tests harness (or the judge's codec) a few times on a fixed, made-up problem, output
    to /dev/null.

    The interpreter then has their bytecode specialized and its caches (attribute lookups, interned names) filled
    in the template, so an execution writes fewer of the template's pages: each first write to a shared page costs
    a copy-on-write fault. Only this constant problem ever runs here: the template still never sees a request.
    """
    module = sys.modules.get(module_name)
    if module is None:
        return
    if hasattr(module, "_warm_up"):
        module._warm_up()
        return
    saved_fd, saved_stdout = os.dup(1), sys.stdout
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        plan = module.sandbox_plan(module.plan_tests(WARM_UP_TESTS, "total"))  # as the server sends it
        for _ in range(WARM_UP_RUNS):
            module._run(WARM_UP_SOLUTION, WARM_UP_TESTS, "total", "0" * 32, devnull, plan)
    finally:
        os.close(devnull)
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        sys.stdout = saved_stdout


def serve(cfg: Json) -> None:
    """Clone sandboxes on the server's request and report each one's exit; exit on stdin EOF."""
    if cfg.get("env") is not None and dict(os.environ) != cfg["env"]:  # started with it; executions inherit it
        os.environ.clear()
        os.environ.update(cfg["env"])
    if cfg.get("userns"):  # a server without root: this process becomes root of a user namespace of its own
        try:
            ns.enter_user_namespace(cfg["userns"]["uid"], cfg["userns"]["gid"])
            ns.unshare(ns.CLONE_NEWNET)  # one of its own, to come back to after making one (`send_net_namespace`)
        except OSError as exc:
            sys.stdout.write(json.dumps({"ready": False, "error": f"cannot create a user namespace: {exc}"}) + "\n")
            sys.stdout.flush()
            sys.exit(1)
    with track_at_fork():
        preload(cfg.get("preload", []))
        preload_files(cfg.get("preload_files", {}))
        for name in cfg.get("warm_up", []):
            warm_up(name)
    ns.FORK_HOOKS = bool(AT_FORK_HOOKS)  # the run_tests judge forks its solution's process like a clone (see above)
    ns.seccomp_program()  # built once here: every execution only installs it
    RESET_SIGNALS[:] = reset_signals()
    STREAMS[:] = prepare_streams()
    import gc

    gc.collect()
    gc.freeze()  # the preloaded objects are never scanned again, so forks do not copy their pages for the GC
    os.makedirs(cfg["stage_dir"], exist_ok=True)
    rootfs.build_static_root(cfg)
    cfg["root_ns"] = rootfs.root_namespace(cfg) if cfg.get("mount_api", True) else None
    channel = socket.socket(fileno=cfg["channel"])  # spawn requests from the server (SOCK_SEQPACKET)
    import importlib.util

    magic = importlib.util.MAGIC_NUMBER.hex()  # the server sends compiled test code when it is its own
    sys.stdout.write(json.dumps({"ready": True, "magic": magic}) + "\n")
    sys.stdout.flush()
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(channel.fileno(), select.POLLIN)
    sandboxes: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, the call's reply socket)
    running = True
    while running:
        for fd, _ in poller.poll():
            if fd == 0:
                running = False
            elif fd == channel.fileno():
                try:
                    msg, ancdata, _, _ = channel.recvmsg(64, FDS_SPACE)
                    fds = received_fds(ancdata)
                except OSError:
                    msg, fds = b"", []
                if not msg:
                    running = False  # the server went away
                    break
                if msg.startswith(b"netns") and len(fds) == 1:
                    send_net_namespace(fds[0], loopback=msg == b"netns+lo")
                    continue
                if len(fds) != SPAWN_FDS + 1:
                    for extra in fds:
                        os.close(extra)
                    continue
                reply, passed = fds[0], fds[1:]
                try:
                    pid = spawn_sandbox(cfg, passed)
                except OSError as exc:
                    _send(reply, f"{type(exc).__name__}: {exc}".encode())
                    os.close(reply)
                    continue
                finally:
                    for fd_ in passed:
                        os.close(fd_)
                _send(reply, PID.pack(pid))
                pidfd = os.pidfd_open(pid)
                sandboxes[pidfd] = (pid, reply)
                poller.register(pidfd, select.POLLIN)
            elif fd in sandboxes:
                pid, reply = sandboxes.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, wstatus, usage = os.wait4(pid, 0)
                _send(reply, REPORT.pack(wstatus, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))
                os.close(reply)
    for pidfd, (pid, _) in sandboxes.items():  # stop what still runs before removing its cgroup
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
    remove_cgroups(cfg.get("cgroups") or {})
    try:  # leave nothing behind, even when the server died without closing us
        ns.umount(cfg["stage_dir"], ns.MNT_DETACH)
        os.rmdir(cfg["stage_dir"])
        os.rmdir(os.path.dirname(cfg["stage_dir"]))  # the server's work directory (empty by now)
    except OSError:
        pass


def send_net_namespace(reply: int, loopback: bool) -> None:
    """Make a network namespace (only a loopback) and send it on `reply`, for a server that cannot make one itself
    (without root: it must belong to this process's user namespace); an error is sent as text."""
    with socket.socket(fileno=reply) as sock:
        try:
            fd = ns.new_net_namespace(loopback)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sock.send(f"{type(exc).__name__}: {exc}".encode())
            return
        try:
            with contextlib.suppress(OSError):
                socket.send_fds(sock, [b"netns"], [fd])
        finally:
            os.close(fd)


def remove_cgroups(spec: Json) -> None:
    """Remove the server's execution cgroups (named `prefix-N` under each root), now that no sandbox is left."""
    prefix = spec.get("prefix", "") + "-"
    for root in spec.get("roots", {}).values():
        try:
            names = [n for n in os.listdir(root) if n.startswith(prefix)]
        except OSError:
            continue
        for name in names:
            try:
                os.rmdir(os.path.join(root, name))
            except OSError:
                pass


def _send(reply: int, data: bytes) -> None:
    """Write one message to a call's reply socket; a call that has gone away is not an error."""
    try:
        os.write(reply, data)
    except OSError:
        pass


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
