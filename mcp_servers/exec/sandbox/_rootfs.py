"""The file system of the process sandbox's executions: a read-only root built once by the fork server, and each
execution's copy of it with a fresh /tmp, its workspace and its own /proc. Stdlib only, run by the fork server."""

from __future__ import annotations

import os
import signal
from typing import Any

import _nsutil as ns

DEV_NODES = ("null", "zero", "full", "random", "urandom")
Json = dict[str, Any]
SECRET_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers")


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
