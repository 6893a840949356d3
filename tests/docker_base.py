"""Docker helpers for tests: start a local engine, and build a Python base image from host files (no registry).

`start_engine()` uses the engine that answers, or starts `dockerd` (as root); the session fixture `docker_engine`
(tests/conftest.py) calls it once per test session and, at its end, `Engine.release()`: the last test session using
the engine removes the images the tests built (`remove_test_images`) and stops the daemon, with the containerd it
started, if a test session started it (an engine that was already running is left running). Set `MCPGYM_KEEP_TEST_IMAGES=1` to keep the images for the next run; remove them later with
`docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(mcpgym-test-base|mcpgym-exec-test|mcpgym-smoke):'
| xargs -r docker image rm`.

`local_python_base()` writes a root file system holding this interpreter, the installed distributions mcpgym needs
(without its model-side extra) and the shared libraries they link, then `docker import`s it. The Dockerfile builds on
it with `--build-arg BASE_IMAGE=<tag> --build-arg PIP_ARGS="--no-index --no-build-isolation"`, so nothing is fetched.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata as md
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from packaging.requirements import Requirement

__all__ = ["BASE_TAG", "STATE_DIR", "TEST_IMAGE_REPOS", "Engine", "EngineUnavailable", "docker_available",
           "local_python_base", "remove_test_images", "start_engine"]

BASE_TAG = "mcpgym-test-base:py311"
# Image repositories only the tests use: every tag in them is removed at the end of a test session.
TEST_IMAGE_REPOS = ("mcpgym-test-base", "mcpgym-exec-test", "mcpgym-smoke")
_SHELL_TOOLS = ("sh", "dash", "bash", "mkdir", "cat", "ls", "rm", "grep", "env", "sleep", "echo", "id", "unshare",
                "mount", "true", "test", "chmod", "cp", "mv", "ln", "date")
_DIST_EXTRAS = ("pip", "setuptools", "wheel", "packaging")


class EngineUnavailable(Exception):
    """No Docker engine can be used; the message says why (the docker tests skip with it)."""


# Test sessions that use the engine at once (several pytest runs on one machine) share it: each registers its pid
# here, and the last one to leave removes the test images and stops a daemon a test session started (its pid is in
# `dockerd.pid`). A daemon found running without that file is someone else's and is never stopped.
STATE_DIR = Path(tempfile.gettempdir()) / "mcpgym-test-docker"


@contextmanager
def _locked() -> Iterator[None]:
    (STATE_DIR / "users").mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _daemon_pid() -> int | None:
    """The dockerd a test session started, if it still runs."""
    try:
        pid = int((STATE_DIR / "dockerd.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        is_dockerd = Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    except OSError:
        is_dockerd = False
    return pid if is_dockerd and _alive(pid) else None


def _other_users() -> list[int]:
    users = []
    for entry in (STATE_DIR / "users").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else -1
        if pid == os.getpid():
            continue
        if pid > 0 and _alive(pid):
            users.append(pid)
        else:
            entry.unlink(missing_ok=True)  # a session that ended without leaving
    return users


def _stop_daemon(pid: int, process: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    """SIGTERM a test-started dockerd (it stops its containers and its managed containerd), then wait for its
    process group (dockerd leads it: started with start_new_session) to be gone; SIGKILL what is left."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.pid == pid:
            process.poll()  # reap our own child so that it does not linger as a zombie
        if not _alive(pid) and not _group_alive(pid):
            return
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Engine:
    """The Docker engine a test session uses: one found running, or a `dockerd` started by `start_engine`.

    Attributes:
        process: the dockerd this session started, or None when an engine was already running.
    """

    def __init__(self, process: subprocess.Popen[bytes] | None = None) -> None:
        self.process = process

    @property
    def started_here(self) -> bool:
        """Whether this session started the daemon."""
        return self.process is not None

    def release(self, *, remove_images: bool = True) -> None:
        """Leave the engine. The last test session to leave removes the test images (`remove_images`) and stops a
        daemon a test session started, with its containerd; an engine that was running before is left running."""
        with _locked():
            (STATE_DIR / "users" / str(os.getpid())).unlink(missing_ok=True)
            if _other_users():
                return
            if remove_images and docker_available():
                remove_test_images()
            pid = _daemon_pid()
            if pid is not None:
                _stop_daemon(pid, self.process)
            (STATE_DIR / "dockerd.pid").unlink(missing_ok=True)


def docker_available() -> bool:
    """Whether `docker info` answers (an engine is running and reachable)."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


def start_engine(log: Path) -> Engine:
    """The engine that answers, or a `dockerd` started in the background (as root) when it is installed; either way
    this session is registered as a user until `Engine.release()`.

    Returns:
        The engine.

    Raises:
        EngineUnavailable: no engine answers and none can be started (the message says why).
    """
    with _locked():
        if docker_available():
            (STATE_DIR / "users" / str(os.getpid())).touch()
            return Engine()
        dockerd = shutil.which("dockerd")
        if not dockerd or not shutil.which("docker"):
            raise EngineUnavailable("no Docker engine: dockerd/docker are not installed (scripts/setup-system.sh "
                                    "installs docker.io)")
        if os.geteuid() != 0:
            raise EngineUnavailable("no Docker engine running and not root, so dockerd cannot be started")
        with open(log, "ab") as out:
            process = subprocess.Popen([dockerd], stdout=out, stderr=out, start_new_session=True)
        (STATE_DIR / "dockerd.pid").write_text(str(process.pid))
        for _ in range(60):
            if docker_available():
                (STATE_DIR / "users" / str(os.getpid())).touch()
                return Engine(process)
            if process.poll() is not None:
                break
            time.sleep(0.5)
        _stop_daemon(process.pid, process)
        (STATE_DIR / "dockerd.pid").unlink(missing_ok=True)
    raise EngineUnavailable(f"dockerd did not come up within 30 s (see {log})")


def remove_test_images() -> list[str]:
    """Remove every image of the tests' own repositories (`TEST_IMAGE_REPOS`), with the layers only they used.

    An image a container still uses (another test session's, on a shared engine) is left to that session.

    Returns:
        The tags removed.
    """
    listed = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True, timeout=60, check=False).stdout.split()
    removed = []
    for tag in (t for t in listed if t.split(":", 1)[0] in TEST_IMAGE_REPOS):
        done = subprocess.run(["docker", "image", "rm", tag], capture_output=True, timeout=300, check=False)
        if done.returncode == 0:
            removed.append(tag)
    return removed


def _dist_closure(root: str, skip: Iterable[str] = ("mcpgym",)) -> list[md.Distribution]:
    seen: dict[str, md.Distribution] = {}
    visited: set[tuple[str, frozenset[str]]] = set()

    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    def walk(name: str, extras: frozenset[str] = frozenset()) -> None:
        k = key(name)
        if (k, extras) in visited:
            return
        visited.add((k, extras))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        seen[k] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                continue
            walk(req.name, frozenset(req.extras))

    for name in (root, *_DIST_EXTRAS):
        walk(name)
    return [d for k, d in seen.items() if k not in {key(s) for s in skip}]


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _needed_libs(elves: Iterable[Path]) -> set[Path]:
    libs: set[Path] = set()
    for elf in elves:
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            match = re.search(r"(/\S+) \(0x", line)
            if match:
                libs.add(Path(match.group(1)))
    return libs


def _add(tar: tarfile.TarFile, path: Path, done: set[str]) -> None:
    """Add a host path at the same place in the image, following its symlink chain."""
    path = Path(os.path.realpath(path.parent)) / path.name  # /lib/x.so -> /usr/lib/x.so on merged-/usr systems
    for parent in reversed(path.parents):
        p = str(parent)
        if p != "/" and p not in done:
            done.add(p)
            tar.add(p, arcname=p.lstrip("/"), recursive=False)
    name = str(path)
    if name in done:
        return
    done.add(name)
    tar.add(name, arcname=name.lstrip("/"), recursive=False)
    if path.is_symlink():
        target = Path(os.path.normpath(path.parent / os.readlink(path)))
        _add(tar, target, done)


def _mkdirs(tar: tarfile.TarFile, path: Path, done: set[str]) -> None:
    for p in [*reversed(path.parents), path]:
        if str(p) != "/" and str(p) not in done:
            done.add(str(p))
            info = tarfile.TarInfo(str(p).lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)


def _write_rootfs(target: Path) -> None:
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for sub in ("bin",):
        files.extend(p for p in (prefix / sub).iterdir() if p.name.startswith("python"))
    files.extend((prefix / "lib").glob("libpython*"))
    for path in stdlib.rglob("*"):
        rel = path.relative_to(stdlib).parts
        if rel and rel[0] in ("test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip"):
            continue
        if path.is_file() or path.is_symlink():
            files.append(path)
    site = stdlib / "site-packages"
    extra: dict[Path, Path] = {}  # venv file -> place in the image
    for dist in _dist_closure("mcpgym"):
        for rel in dist.files or []:
            src = Path(str(dist.locate_file(rel))).resolve()
            if src.is_file() and "__pycache__" not in src.parts:
                try:
                    inner = src.relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
                except ValueError:
                    continue  # console scripts and data outside site-packages
                extra[src] = site / inner
    tools = [Path(shutil.which(t) or "") for t in _SHELL_TOOLS if shutil.which(t)]
    elves = [p for p in [*files, *extra, *tools] if _is_elf(p)]
    libs = _needed_libs(elves)
    done: set[str] = set()
    with tarfile.open(target, "w") as tar:
        for link in ("bin", "sbin", "lib", "lib64"):
            if Path(f"/{link}").is_symlink():
                info = tarfile.TarInfo(link)
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(f"/{link}")
                tar.addfile(info)
                done.add(f"/{link}")
        for path in [*files, *tools, *libs, Path("/etc/passwd"), Path("/etc/group"), Path("/etc/nsswitch.conf")]:
            if path.exists() or path.is_symlink():
                _add(tar, path, done)
        for src, dest in extra.items():
            _mkdirs(tar, dest.parent, done)
            tar.add(str(src), arcname=str(dest).lstrip("/"), recursive=False)
        for name, mode in (("tmp", 0o1777), ("root", 0o700), ("var/tmp", 0o1777)):
            if f"/{name}" not in done:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
        for name in ("proc", "sys", "dev", "etc"):
            if f"/{name}" not in done:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
        hosts = b"127.0.0.1 localhost\n::1 localhost\n"
        info = tarfile.TarInfo("etc/hosts")
        info.size = len(hosts)
        tar.addfile(info, io.BytesIO(hosts))


def _contents_digest() -> str:
    """A short hash of the interpreter and the distributions the image would hold: a new set means a new image."""
    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in _dist_closure("mcpgym"))
    return hashlib.sha256("\n".join([sys.version, *names]).encode()).hexdigest()[:12]


def local_python_base(workdir: Path, tag: str | None = None) -> str:
    """Build (once per engine and set of installed distributions) the base image described in the module docstring
    and return its tag. An image left by an earlier run with other distributions is not reused."""
    tag = tag or f"{BASE_TAG}-{_contents_digest()}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        return tag
    tarball = workdir / "rootfs.tar"
    _write_rootfs(tarball)
    bindir = Path(sys.base_prefix) / "bin"
    subprocess.run(
        ["docker", "import",
         "--change", f"ENV PATH={bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--change", "ENV LANG=C.UTF-8", str(tarball), tag],
        check=True, capture_output=True,
    )
    tarball.unlink()
    return tag
