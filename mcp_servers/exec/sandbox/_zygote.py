"""Fork server of the process sandbox: a preloaded interpreter that clones each execution into fresh namespaces.

Run by `ProcessSandbox` as ``python -I -S _zygote.py CONFIG_JSON`` with a scrubbed environment; stdlib only:

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
namespace, so nothing outlives a call.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _nsutil as ns

del sys.path[0]

NS_FLAGS = ns.CLONE_NEWNS | ns.CLONE_NEWPID | ns.CLONE_NEWIPC | ns.CLONE_NEWUTS
DEV_NODES = ("null", "zero", "full", "random", "urandom")
Json = dict[str, Any]
SECRET_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers")


# ---------------------------------------------------------------- inside the namespaces


def build_static_root(cfg: Json) -> None:
    """Build, once, the read-only part of every sandbox's file system at the stage directory.

    Run by the fork server in its own mount namespace (a slave of the host's, so later host mounts still show):
    a tmpfs root holding read-only binds of the system directories and the interpreter, masked secret files, a
    minimal /dev, and empty mount points for /tmp, /workspace and /proc, which each execution fills in `enter_root`.
    """
    ns.unshare(ns.CLONE_NEWNS)
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_SLAVE)
    new = cfg["stage_dir"]
    ns.mount("sandbox-root", new, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "mode=0755,size=1m")
    ns.mount(None, new, None, ns.MS_PRIVATE)
    for link, target in cfg["symlinks"].items():
        os.symlink(target, new + link)
    for path in cfg["ro_binds"]:
        dest = new + path
        if os.path.isdir(path):
            os.makedirs(dest, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            open(dest, "a").close()
        ns.mount(path, dest, None, ns.MS_BIND | ns.MS_REC)
        ns.make_readonly(dest)
    for path in SECRET_FILES:
        if os.path.exists(new + path):
            ns.mount("/dev/null", new + path, None, ns.MS_BIND)
    # /dev: a few harmless nodes only
    os.makedirs(new + "/dev", exist_ok=True)
    ns.mount("sandbox-dev", new + "/dev", "tmpfs", ns.MS_NOSUID | ns.MS_NOEXEC, "mode=0755,size=64k")
    for node in DEV_NODES:
        if os.path.exists("/dev/" + node):
            open(f"{new}/dev/{node}", "a").close()
            ns.mount("/dev/" + node, f"{new}/dev/{node}", None, ns.MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{new}/dev/{name}")
    os.symlink("/tmp", new + "/dev/shm")  # POSIX shared memory lives in the private /tmp
    ns.make_readonly(new + "/dev", nodev=False)
    for mount_point in ("/tmp", "/workspace", "/proc"):
        os.makedirs(new + mount_point)
    ns.mount(None, new, None, ns.MS_REMOUNT | ns.MS_RDONLY | ns.MS_NOSUID | ns.MS_NODEV)


def enter_root(cfg: Json, req: Json) -> None:
    """In a fresh mount namespace (a copy of the fork server's): add the private /tmp, the workspace and /proc to
    the static root, then pivot into it, leaving the host's file system behind (run by the sandbox's pid 1, as root)."""
    new = cfg["stage_dir"]
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    tmp_opts = f"mode=1777,size={req['limits']['tmp_bytes']}"
    ns.mount("sandbox-tmp", new + "/tmp", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, tmp_opts)
    ns.mount(req["workspace"], new + "/workspace", None, ns.MS_BIND)
    ns.mount(None, new + "/workspace", None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_NOSUID | ns.MS_NODEV)
    ns.mount("proc", new + "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    os.chdir(new)
    ns.pivot_root(".", ".")
    ns.umount(".", ns.MNT_DETACH)
    os.chdir("/")


def root_namespace(cfg: Json) -> int | None:
    """A mount namespace whose whole file system is the static root, with no host mount in it, kept by an fd.

    Each execution enters it and makes its own copy (`enter_fresh_root`): a copy of about 15 mounts, instead of a
    copy of the fork server's namespace (the host's mounts plus the static root) followed by a pivot that detaches
    the host's half. Returns None where the kernel lacks `open_tree(2)` (before 5.2): executions then use
    `enter_root`.
    """
    try:
        os.close(ns.open_tree_clone(cfg["stage_dir"]))
    except OSError:
        return None
    pid = os.fork()
    if pid == 0:
        try:
            ns.unshare(ns.CLONE_NEWNS)
            ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
            os.chdir(cfg["stage_dir"])
            ns.pivot_root(".", ".")
            ns.umount(".", ns.MNT_DETACH)
            os.kill(os.getpid(), signal.SIGSTOP)  # the parent takes hold of the namespace, then kills us
        finally:
            os._exit(1)
    try:
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            return None
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def enter_fresh_root(req: Json, root_ns: int) -> None:
    """Enter a private copy of the static root's namespace (see `root_namespace`) with a fresh /tmp, the workspace
    and /proc (run by the sandbox's pid 1, as root, still in the fork server's mount namespace)."""
    workspace = ns.open_tree_clone(req["workspace"])  # taken while the host's file system is still in view
    try:
        ns.setns(root_ns, ns.CLONE_NEWNS)  # root and working directory become the static root
        ns.unshare(ns.CLONE_NEWNS)
        tmp_opts = f"mode=1777,size={req['limits']['tmp_bytes']}"
        ns.mount("sandbox-tmp", "/tmp", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, tmp_opts)
        ns.move_mount(workspace, "/workspace")
        ns.mount(None, "/workspace", None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_NOSUID | ns.MS_NODEV)
        ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    finally:
        os.close(workspace)
    os.chdir("/")


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
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
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
            enter_fresh_root(req, cfg["root_ns"])
        else:
            enter_root(cfg, req)
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
        os.close(fds["ctl_r"])
        req = marshal.loads(b"".join(chunks))
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
    """Import stdlib-only helper modules by file path under the given names (e.g. the run_tests harness)."""
    import importlib.util

    for name, path in files.items():
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module


WARM_UP_RUNS = 12  # more than the interpreter's threshold for specializing a function's bytecode (8 calls)
WARM_UP_SOLUTION = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n"
WARM_UP_TESTS = (
    "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
    "    assert candidate([5]) == 6, 'a failing test'\n"
)


def warm_up(harness_module: str) -> None:
    """Run the preloaded run_tests harness a few times on a fixed, made-up problem, output to /dev/null.

    The interpreter then has the harness's bytecode specialized and its caches (attribute lookups, interned names)
    filled in the template, so an execution writes fewer of the template's pages: each first write to a shared page
    costs a copy-on-write fault. Only this constant problem ever runs here: the template still never sees a request.
    """
    module = sys.modules.get(harness_module)
    if module is None:
        return
    saved_fd, saved_stdout = os.dup(1), sys.stdout
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        plan = module.sandbox_plan(module.plan_tests(WARM_UP_TESTS, "total"))  # as the server sends it
        for _ in range(WARM_UP_RUNS):
            module._harness_main(WARM_UP_SOLUTION, WARM_UP_TESTS, "total", "0" * 32, plan)
    finally:
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        sys.stdout = saved_stdout


def serve(cfg: Json) -> None:
    """Clone sandboxes on the server's request and report each one's exit; exit on stdin EOF."""
    if cfg.get("env") is not None and dict(os.environ) != cfg["env"]:  # started with it; executions inherit it
        os.environ.clear()
        os.environ.update(cfg["env"])
    with track_at_fork():
        preload(cfg.get("preload", []))
        preload_files(cfg.get("preload_files", {}))
        for name in cfg.get("warm_up", []):
            warm_up(name)
    ns.seccomp_program()  # built once here: every execution only installs it
    RESET_SIGNALS[:] = reset_signals()
    STREAMS[:] = prepare_streams()
    import gc

    gc.collect()
    gc.freeze()  # the preloaded objects are never scanned again, so forks do not copy their pages for the GC
    os.makedirs(cfg["stage_dir"], exist_ok=True)
    build_static_root(cfg)
    cfg["root_ns"] = root_namespace(cfg) if cfg.get("mount_api", True) else None
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
