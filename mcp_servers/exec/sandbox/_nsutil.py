"""Linux primitives of the process sandbox (namespaces, mounts, cgroups) over ctypes; stdlib only, run by the zygote."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4

_SIGCHLD = int(signal.SIGCHLD)  # the signal a cloned child sends its parent at exit
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

_MACHINE = os.uname().machine  # (not `platform`: its import costs every fork of the fork server a third of a MB)
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442, "clone": 56, "open_tree": 428, "move_mount": 429},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442, "clone": 220, "open_tree": 428, "move_mount": 429},
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long
_pylibc = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL held across the call, as fork(2) needs
_pylibc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (`unshare(2)`)."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """Move the calling process into the namespace that `fd` refers to (`setns(2)`)."""
    _check(_libc.setns(fd, nstype), "setns")


def new_net_namespace(loopback: bool) -> int:
    """Create a network namespace holding only a loopback interface (up or down) and return an fd that keeps it.

    The caller's own network namespace is left unchanged: it enters the new one to set it up, then goes back.
    """
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare(CLONE_NEWNET)
        try:
            if loopback:
                loopback_up()
            return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """Call `mount(2)`; raise OSError naming the target on failure."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """Call `umount2(2)`."""
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def _syscall_no(name: str) -> int | None:
    return _SYSCALLS.get(_MACHINE, {}).get(name)


def pivot_root(new_root: str, put_old: str) -> None:
    """Call `pivot_root(2)`."""
    number = _syscall_no("pivot_root")
    if number is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unsupported architecture {_MACHINE}")
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root")


def clone(flags: int, fork_hooks: bool = True) -> int:
    """Fork into new namespaces in one step (`clone(2)` without a new stack), like `os.fork` for the interpreter.

    Args:
        flags: `CLONE_NEW*` flags.
        fork_hooks: Run the interpreter's fork protocol (`PyOS_BeforeFork` and `PyOS_AfterFork_*`: the at-fork
            hooks of `os.register_at_fork`, re-made locks). A single-threaded caller with no at-fork hook registered
            may skip it: it halves the cost of a fork and exit (each re-made lock and hook writes to pages the child
            must then copy).

    Returns:
        0 in the child, the child's pid in the parent.
    """
    number = _syscall_no("clone")
    if number is None:
        raise OSError(errno.ENOSYS, f"clone: unsupported architecture {_MACHINE}")
    api = ctypes.pythonapi
    if fork_hooks:
        api.PyOS_BeforeFork()
    zero = ctypes.c_ulong(0)
    pid = _pylibc.syscall(ctypes.c_long(number), ctypes.c_ulong(flags | _SIGCHLD), zero, zero, zero, zero)
    if pid == 0:
        if fork_hooks:
            api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    if fork_hooks:
        api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone: {os.strerror(err)}")
    return int(pid)


def open_tree_clone(path: str) -> int:
    """A detached copy of the mount at `path` (not its submounts), as an fd for `move_mount` (`open_tree(2)`).

    It lets a process bind a host directory into a mount namespace in which the host's file system is not visible.
    """
    number = _syscall_no("open_tree")
    if number is None:
        raise OSError(errno.ENOSYS, f"open_tree: unsupported architecture {_MACHINE}")
    fd = _libc.syscall(number, ctypes.c_long(AT_FDCWD), _b(path), ctypes.c_long(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC))
    _check(fd, f"open_tree {path}")
    return int(fd)


def set_mount_attrs(fd: int, attrs: int) -> None:
    """Set mount attributes (MOUNT_ATTR_*) on the mount that `fd` refers to (`mount_setattr(2)`)."""
    number = _syscall_no("mount_setattr")
    if number is None:
        raise OSError(errno.ENOSYS, f"mount_setattr: unsupported architecture {_MACHINE}")
    attr = _MountAttr(attrs, 0, 0, 0)
    ret = _libc.syscall(
        number,
        ctypes.c_long(fd),
        b"",
        ctypes.c_long(AT_EMPTY_PATH),
        ctypes.byref(attr),
        ctypes.c_long(ctypes.sizeof(attr)),
    )
    _check(ret, "mount_setattr")


def move_mount(fd: int, target: str) -> None:
    """Attach the detached mount `fd` at `target` (`move_mount(2)`)."""
    number = _syscall_no("move_mount")
    if number is None:
        raise OSError(errno.ENOSYS, f"move_mount: unsupported architecture {_MACHINE}")
    ret = _libc.syscall(
        number, ctypes.c_long(fd), b"", ctypes.c_long(AT_FDCWD), _b(target), ctypes.c_long(MOVE_MOUNT_F_EMPTY_PATH)
    )
    _check(ret, f"move_mount {target}")


def make_readonly(path: str, nodev: bool = True) -> None:
    """Make the mount at `path` and every mount below it read-only and nosuid (and nodev unless told otherwise)."""
    number = _syscall_no("mount_setattr")
    if number is not None:
        attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | (MOUNT_ATTR_NODEV if nodev else 0), 0, 0, 0)
        ret = _libc.syscall(number, AT_FDCWD, _b(path), AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
        if ret == 0:
            return
    mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (MS_NODEV if nodev else 0))


def sethostname(name: str) -> None:
    """Set the host name of the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg: int) -> None:
    """Call `prctl(2)` with one argument."""
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


def enter_user_namespace(uid: int, gid: int) -> None:
    """Move this (single-threaded) process into a new user namespace where `uid` and `gid`, its own ids outside,
    are the only ids, mapped to themselves; it then holds every capability over the namespaces it creates, and
    none over anything of the host. How the process sandbox works without root (no extra ids: supplementary groups
    are denied, as the kernel requires of an unprivileged mapping)."""
    unshare(CLONE_NEWUSER)
    for name, line in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(line)


PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPSET = {"x86_64": 126, "aarch64": 91}


def drop_capabilities() -> None:
    """Give up every capability for good: the bounding and ambient sets, then the effective, permitted and
    inheritable ones. (A change of uid from root does this by itself; inside a user namespace nothing does.)"""
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl PR_CAPBSET_DROP")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl PR_CAP_AMBIENT")
    number = _CAPSET.get(_MACHINE)
    if number is None:
        raise OSError(errno.ENOSYS, f"capset: unsupported architecture {_MACHINE}")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two (effective, permitted, inheritable) triples, all zero
    _check(_libc.syscall(number, header, data), "capset")


def loopback_up() -> None:
    """Bring up `lo` in the current (new) network namespace: a private loopback, no route anywhere else."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), siocgifflags, ifreq))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags, struct.pack("16sh14x", b"lo", flags | iff_up))


class Cgroup:
    """One execution's cgroup (v1: memory and pids hierarchies; v2: one unified directory) with its limits."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    @staticmethod
    def roots() -> dict[str, str]:
        """Find writable parent directories for our cgroups: {"memory": dir, "pids": dir} or {"unified": dir}."""
        found: dict[str, str] = {}
        try:
            with open("/proc/self/cgroup") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return found
        own: dict[str, str] = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for ctl in controllers.split(",") if controllers else ["unified"]:
                own[ctl] = path
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # pure v2
            with open("/sys/fs/cgroup/cgroup.controllers") as fh:
                ctls = fh.read().split()
            if "memory" in ctls and "pids" in ctls:
                found["unified"] = "/sys/fs/cgroup" + own.get("unified", "/")
        else:
            for ctl in ("memory", "pids"):
                base = f"/sys/fs/cgroup/{ctl}"
                if os.path.isdir(base) and ctl in own:
                    found[ctl] = base + own[ctl]
        usable: dict[str, str] = {}
        for ctl, parent in found.items():
            target = os.path.join(parent.rstrip("/"), "mcpgym")
            try:
                os.makedirs(target, exist_ok=True)
                if ctl == "unified":
                    with open(os.path.join(parent, "cgroup.subtree_control"), "w") as fh:
                        fh.write("+memory +pids")
                    with open(os.path.join(target, "cgroup.subtree_control"), "w") as fh:
                        fh.write("+memory +pids")
            except OSError:
                continue
            if os.access(target, os.W_OK):
                usable[ctl] = target
        return usable

    @classmethod
    def create(cls, roots: dict[str, str], name: str) -> Cgroup:
        """Create the cgroup directories `name` under each root."""
        dirs: list[str] = []
        for parent in roots.values():
            path = os.path.join(parent, name)
            os.makedirs(path, exist_ok=True)
            dirs.append(path)
        return cls(dirs)

    def _files(self, *names: str) -> list[str]:
        """The paths of those control files that exist in our directories (looked up once, then remembered)."""
        key = "|".join(names)
        cache: dict[str, list[str]] = self.__dict__.setdefault("_found", {})
        if key not in cache:
            cache[key] = [os.path.join(d, n) for d in self.dirs for n in names if os.path.exists(os.path.join(d, n))]
        return cache[key]

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        """Write the memory (without swap) and pids limits (nothing to do when they are those already set)."""
        if getattr(self, "_limits", None) == (memory_bytes, pids):
            return
        for path in self.dirs:
            if os.path.exists(os.path.join(path, "memory.limit_in_bytes")):  # v1 memory
                # memory <= memory+swap must hold at every step: raise memsw first, lower memory first
                try:
                    _write(path, "memory.memsw.limit_in_bytes", str(memory_bytes), optional=True)
                    _write(path, "memory.limit_in_bytes", str(memory_bytes))
                except OSError:
                    _write(path, "memory.limit_in_bytes", str(memory_bytes))
                _write(path, "memory.memsw.limit_in_bytes", str(memory_bytes), optional=True)
            if os.path.exists(os.path.join(path, "memory.max")):  # v2
                _write(path, "memory.max", str(memory_bytes))
                _write(path, "memory.swap.max", "0", optional=True)
            if os.path.exists(os.path.join(path, "pids.max")):
                _write(path, "pids.max", str(pids))
        self._limits = (memory_bytes, pids)

    @staticmethod
    def remove_orphans(roots: dict[str, str], prefix: str) -> int:
        """Remove the cgroups named `prefix` + "<pid>-<start>-<n>" whose pid (the server that made them, in this pid
        namespace) is gone. A fork server removes its server's cgroups when it exits, unless it was killed too.
        Busy cgroups and those of a live pid stay. Returns how many were removed."""
        removed = 0
        for parent in roots.values():
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                parts = name[len(prefix) :].split("-")  # <pid>-<fork server>-<n>
                if not (name.startswith(prefix) and len(parts) == 3 and all(p.isdigit() for p in parts)):
                    continue
                if os.path.exists(f"/proc/{parts[0]}"):
                    continue
                try:
                    os.rmdir(os.path.join(parent, name))
                    removed += 1
                except OSError:
                    pass
        return removed

    @staticmethod
    def remove_named(roots: dict[str, str], name: str) -> bool:
        """Remove the cgroup `name` under each root; False when one is still busy (retry later)."""
        done = True
        for parent in roots.values():
            try:
                os.rmdir(os.path.join(parent, name))
            except FileNotFoundError:
                continue
            except OSError:
                done = False
        return done

    def add(self, pid: int) -> None:
        """Move process `pid` into this cgroup (in every hierarchy)."""
        for path in self._files("cgroup.procs"):
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)

    def reset(self) -> None:
        """Start a new execution's accounting: clear the peak-memory mark and remember the OOM count so far."""
        for path in self._files("memory.max_usage_in_bytes"):
            _write(os.path.dirname(path), "memory.max_usage_in_bytes", "0", optional=True)
        self._oom_base = self._oom_count()

    def _oom_count(self) -> int:
        total = 0
        for path in self._files("memory.oom_control", "memory.events"):
            try:
                for line in _read(path).splitlines():
                    key, _, value = line.partition(" ")
                    if key in ("oom_kill", "oom"):
                        total += int(value)
            except (OSError, ValueError):
                continue
        return total

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer fired in this cgroup since the last `reset`."""
        return self._oom_count() > getattr(self, "_oom_base", 0)

    def peak_memory(self) -> int | None:
        """Peak memory use in bytes, where the kernel reports it."""
        for path in self._files("memory.max_usage_in_bytes", "memory.peak"):
            try:
                return int(_read(path).strip())
            except (OSError, ValueError):
                continue
        return None


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _write(directory: str, name: str, value: str, optional: bool = False) -> None:
    try:
        fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError:
        if not optional:
            raise


# ---------------------------------------------------------------- workspace ownership (host side)


def own_tree(root: str, uid: int, gid: int) -> int:
    """Give the workspace tree to the sandbox uid without ever following a symlink (fd-relative walk).

    Files the server (root) created there become writable by the sandbox; a symlink planted in the workspace
    cannot redirect the hand-over to a host file, even if swapped in during the walk.

    Returns:
        How many entries the walk visited.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(root, flags)
    try:
        st = os.fstat(top)
        if st.st_uid != uid or st.st_gid != gid:
            os.fchown(top, uid, gid)
        return _own_dir(top, uid, gid, flags, depth=0)
    finally:
        os.close(top)


def _own_dir(dfd: int, uid: int, gid: int, flags: int, depth: int) -> int:
    if depth > 64:
        return 0
    visited = 0
    with os.scandir(dfd) as entries:
        for entry in entries:
            visited += 1
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid != uid or st.st_gid != gid:
                    os.chown(entry.name, uid, gid, dir_fd=dfd, follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    sub = os.open(entry.name, flags, dir_fd=dfd)
                    try:
                        visited += _own_dir(sub, uid, gid, flags, depth + 1)
                    finally:
                        os.close(sub)
            except OSError:
                continue
    return visited


# ---------------------------------------------------------------- seccomp

_SECCOMP = {
    # arch: (AUDIT_ARCH, {name: number})
    "x86_64": (0xC000003E, {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
                            "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
                            "userfaultfd": 323, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsmount": 432,
                            "mount_setattr": 442, "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {"unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41,
                             "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
                             "userfaultfd": 282, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsmount": 432,
                             "mount_setattr": 442, "clone": 220, "clone3": 435}),
}  # fmt: skip
_NS_CLONE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def install_seccomp() -> bool:
    """Refuse (EPERM) the system calls that open kernel surface the sandbox never needs: new namespaces (user
    namespaces included), mounts, keyrings, bpf, perf events, userfaultfd; `clone3` answers ENOSYS so that libc
    falls back to `clone`, whose namespace flags are checked. Needs no_new_privs set first.

    The filter is built once per process (the fork server builds it before it forks), so an execution only
    installs it.

    Returns:
        False on an architecture without a table here (the sandbox then relies on its other layers).
    """
    fprog = seccomp_program()
    if fprog is None:
        return False
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    _check(_libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.addressof(fprog), 0, 0), "seccomp")
    return True


_PROGRAM: list[_SockFprog | None] = []


def seccomp_program() -> _SockFprog | None:
    """The BPF program of `install_seccomp` (built on first use, then kept); None on an unknown architecture."""
    if not _PROGRAM:
        _PROGRAM.append(_build_program())
    return _PROGRAM[0]


def _build_program() -> _SockFprog | None:
    table = _SECCOMP.get(_MACHINE)
    if table is None:
        return None
    arch, nrs = table
    ld_w_abs, jeq, and_k, ret = 0x20, 0x15, 0x54, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    denied = [nr for name, nr in nrs.items() if name not in ("clone", "clone3")]
    prog: list[tuple[int, int, int, int]] = [
        (ld_w_abs, 0, 0, 4),  # arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, eperm),  # a foreign ABI (e.g. 32-bit calls on x86_64): refuse
        (ld_w_abs, 0, 0, 0),  # syscall number
    ]
    for i, nr in enumerate(denied):
        # equal: jump to the EPERM return (the second-to-last instruction)
        prog.append((jeq, len(denied) - i - 1 + 2 + 4, 0, nr))
    prog += [
        (jeq, 2 + 4, 0, nrs["clone3"]),  # -> ENOSYS
        (jeq, 0, 3, nrs["clone"]),  # not clone -> allow
        (ld_w_abs, 0, 0, 16),  # clone flags (low 32 bits of args[0])
        (and_k, 0, 0, _NS_CLONE_FLAGS),
        (jeq, 0, 1, 0),  # no namespace flag -> allow, else -> EPERM
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
        (ret, 0, 0, enosys),
    ]
    filters = (_SockFilter * len(prog))(*[_SockFilter(c, t, f, k) for c, t, f, k in prog])
    fprog = _SockFprog(len(prog), filters)
    return fprog
