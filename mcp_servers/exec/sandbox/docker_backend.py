"""The Docker backend: one locked-down container per workspace session, commands run in it with `exec`."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from mcp_servers.errors import BackendError, ConfigError
from mcp_servers.exec.sandbox._nsutil import own_tree
from mcp_servers.exec.sandbox.base import SANDBOX_WORKDIR, ExecResult, Limits, Sandbox, checked_run

__all__ = ["DockerSandbox", "DockerSandboxConfig"]

LABEL = "mcpgym.exec"
KEEPER = "import time  # mcpgym-keeper\nwhile True:\n    time.sleep(3600)"
# Reads "<n>\n" and n bytes of code from stdin with raw reads (so the rest of stdin stays for the code), then runs it.
BOOT = (
    "import os, sys\nhead = b''\nwhile not head.endswith(b'\\n'):\n    head += os.read(0, 1)\nn = int(head)\n"
    "src = b''\nwhile len(src) < n:\n    chunk = os.read(0, n - len(src))\n    if not chunk:\n        break\n"
    "    src += chunk\ndel head, n, chunk\nsys.argv = ['-c']\n"
    "exec(compile(src.decode('utf-8'), '<code>', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})"
)
# Kills every process of the container but its init and the keeper (run after each call: nothing outlives it).
REAPER = (
    "import os\nme = os.getpid()\nfor p in os.listdir('/proc'):\n    if not p.isdigit() or int(p) in (1, me):\n"
    "        continue\n    try:\n        cmd = open(f'/proc/{p}/cmdline', 'rb').read()\n"
    "        if b'mcpgym-keeper' not in cmd:\n            os.kill(int(p), 9)\n    except OSError:\n        pass"
)


@dataclass(frozen=True)
class DockerSandboxConfig:
    """Configuration of the Docker backend.

    Attributes:
        image: Image of the containers (needs `python3` on its PATH); pulled by the engine only if the user has it.
        limits: Default limits of an execution (memory, processes and /tmp size apply per container).
        cpus: CPUs per container.
        user: uid:gid the commands run as (the workspace is handed to it).
        ro_mounts: Extra host paths mounted read-only at the same place in the containers.
        python: The interpreter inside the image.
        base_url: Docker engine address (default: the environment's, e.g. DOCKER_HOST or the local socket).
    """

    image: str = "python:3.11-slim"
    limits: Limits = field(default_factory=Limits)
    cpus: float = 1.0
    user: str = "65534:65534"
    ro_mounts: tuple[str, ...] = ()
    python: str = "python3"
    base_url: str | None = None


class DockerSandbox(Sandbox):
    """Runs executions with `docker exec` in one container per workspace (created on first use).

    Containers have no network, a read-only root file system, a private /tmp, memory, pids and CPU limits, all
    capabilities dropped and no-new-privileges; only the workspace is writable. After each call every process the
    call left behind is killed. Calls in the same workspace run one at a time.

    Example:
        sandbox = DockerSandbox(DockerSandboxConfig(image="python:3.11-slim"))
        result = await sandbox.run(Path("ws"), code="print(1)")
    """

    name = "docker"

    def __init__(self, config: DockerSandboxConfig | None = None) -> None:
        self.config = config or DockerSandboxConfig()
        self._client: docker.DockerClient | None = None
        self._containers: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        uid, _, gid = self.config.user.partition(":")
        if not uid.isdigit() or not (gid or uid).isdigit():
            raise ConfigError(f"docker user {self.config.user!r}: give numeric 'uid:gid', e.g. '65534:65534'")
        self._uid, self._gid = int(uid), int(gid or uid)

    @property
    def client(self) -> docker.DockerClient:
        """The engine client (connects on first use)."""
        if self._client is None:
            try:
                client = (
                    docker.DockerClient(base_url=self.config.base_url) if self.config.base_url else docker.from_env()
                )
                client.ping()
            except docker.errors.DockerException as exc:
                raise BackendError(f"docker backend: no Docker engine answers ({exc})") from None
            self._client = client
        return self._client

    def container_for(self, workspace: Path) -> Any:
        """The running container of `workspace`, created on first use."""
        key = str(workspace)
        with self._guard:
            container = self._containers.get(key)
            if container is not None:
                return container
            lim = self.config.limits
            mounts = {key: {"bind": SANDBOX_WORKDIR, "mode": "rw"}}
            mounts.update({p: {"bind": p, "mode": "ro"} for p in self.config.ro_mounts})
            try:
                container = self.client.containers.run(
                    self.config.image, [self.config.python, "-I", "-S", "-c", KEEPER], detach=True, init=True,
                    network_mode="none", read_only=True, user=self.config.user, working_dir=SANDBOX_WORKDIR,
                    mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m", pids_limit=lim.processes + 2,
                    nano_cpus=int(self.config.cpus * 1e9), cap_drop=["ALL"], security_opt=["no-new-privileges"],
                    tmpfs={"/tmp": f"size={lim.tmp_mb}m,mode=1777,nosuid,nodev"}, volumes=mounts,
                    environment={"HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
                    ulimits=[docker.types.Ulimit(name="fsize", soft=lim.file_bytes, hard=lim.file_bytes),
                             docker.types.Ulimit(name="nofile", soft=lim.open_files, hard=lim.open_files)],
                    labels={LABEL: "1", f"{LABEL}.workspace": key}, hostname="sandbox",
                )  # fmt: skip
            except docker.errors.ImageNotFound:
                raise BackendError(
                    f"docker backend: image {self.config.image!r} is not available locally; "
                    "pull or build it first (nothing is fetched at run time)"
                ) from None
            except docker.errors.DockerException as exc:
                raise BackendError(f"docker backend: cannot start a container ({exc})") from None
            self._containers[key] = container
            self._locks[key] = threading.Lock()
            return container

    async def run(
        self,
        workspace: Path,
        *,
        code: str | None = None,
        argv: Sequence[str] | None = None,
        stdin: str | bytes = b"",
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run Python `code` or `argv` in the workspace's container; see `Sandbox.run`."""
        ws = checked_run(workspace, code, argv)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return await asyncio.to_thread(self._run_sync, ws, code, argv, data, limits or self.config.limits)

    def _run_sync(self, ws: Path, code: str | None, argv: Sequence[str] | None, data: bytes, lim: Limits) -> ExecResult:
        if os.geteuid() == 0:
            own_tree(str(ws), self._uid, self._gid)
        container = self.container_for(ws)
        with self._locks[str(ws)]:
            t0 = time.monotonic()
            if code is not None:
                raw = code.encode("utf-8")
                cmd = [self.config.python, "-I", "-c", BOOT]
                payload = f"{len(raw)}\n".encode() + raw + data
            else:
                cmd, payload = list(argv or []), data
            api = self.client.api
            try:
                try:
                    exec_id = api.exec_create(container.id, cmd, stdin=True, workdir=SANDBOX_WORKDIR)["Id"]
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                    container = self._replace(ws, container)  # a call killed its keeper: the container stopped
                    exec_id = api.exec_create(container.id, cmd, stdin=True, workdir=SANDBOX_WORKDIR)["Id"]
                sock = api.exec_start(exec_id, socket=True)
            except docker.errors.DockerException as exc:
                raise BackendError(f"docker backend: exec failed ({exc})") from None
            raw_sock: socket.socket = getattr(sock, "_sock", sock)
            try:
                out, err, timed_out, overflow = _pump(
                    raw_sock, payload, t0 + lim.timeout_s, lim.output_bytes,
                    lambda: bool(api.exec_inspect(exec_id).get("Running")),
                )  # fmt: skip
            finally:
                sock.close()
            exit_code: int | None = None
            if not timed_out and not overflow:
                for _ in range(50):  # the stream can close a moment before the engine records the exit
                    info = api.exec_inspect(exec_id)
                    if not info.get("Running"):
                        exit_code = info.get("ExitCode")
                        break
                    time.sleep(0.02)
            local = (self.config.base_url or os.environ.get("DOCKER_HOST") or "unix://").startswith("unix://")
            if (overflow or timed_out) and local:
                _kill_exec(api, exec_id)
            self._reap(container)
            stderr = err[: lim.output_bytes].decode("utf-8", "replace")
            if exit_code is not None and exit_code > 128:
                exit_code = -(exit_code - 128)  # killed by a signal, as the process backend reports it
            return ExecResult(
                exit_code=exit_code,
                stdout=out[: lim.output_bytes].decode("utf-8", "replace"),
                stderr=stderr,
                stdout_truncated=len(out) > lim.output_bytes,
                stderr_truncated=len(err) > lim.output_bytes,
                timed_out=timed_out,
                memory_exceeded=(exit_code == -9 and not timed_out) or "MemoryError" in stderr[-2000:],
                output_limit_exceeded=overflow,
                duration_s=time.monotonic() - t0,
            )

    def _replace(self, ws: Path, stopped: Any) -> Any:
        """A new container for `ws` in place of `stopped` (a call can kill every process of its container, the
        keeper included: the container then stops, and only files in the workspace are kept anyway)."""
        key = str(ws)
        with self._guard:
            if self._containers.get(key) is stopped:
                del self._containers[key]
        _remove(stopped)
        lock = self._locks[key]
        container = self.container_for(ws)
        self._locks[key] = lock  # (held by this call)
        return container

    def _reap(self, container: Any) -> None:
        """Kill what the call left running in the container, and wait (briefly) until that is done."""
        api = self.client.api
        try:
            exec_id = api.exec_create(container.id, [self.config.python, "-I", "-S", "-c", REAPER])["Id"]
            api.exec_start(exec_id, detach=True)
            for _ in range(250):
                if not api.exec_inspect(exec_id).get("Running"):
                    return
                time.sleep(0.02)
        except docker.errors.DockerException:
            pass

    async def release(self, workspace: Path) -> None:
        """Remove the container of `workspace` (its session ended)."""
        key = str(Path(workspace).resolve())
        with self._guard:
            container = self._containers.pop(key, None)
            self._locks.pop(key, None)
        if container is not None:
            await asyncio.to_thread(_remove, container)

    async def close(self) -> None:
        """Remove every container this backend started."""
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        """Remove every container this backend started (synchronously)."""
        with self._guard:
            containers = list(self._containers.values())
            self._containers.clear()
            self._locks.clear()
        for container in containers:
            _remove(container)


def _kill_exec(api: Any, exec_id: str) -> None:
    """Kill a stopped-early exec's process from the host at once (the engine runs on this host; needs root)."""
    try:
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
        if pid > 1 and os.geteuid() == 0:
            os.kill(pid, 9)
    except (OSError, docker.errors.DockerException):
        pass


def _remove(container: Any) -> None:
    import requests  # docker's HTTP client

    try:
        container.remove(force=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass  # already gone, or the engine stopped (at exit, after a test stopped dockerd): nothing left to remove


def _pump(
    sock: socket.socket, payload: bytes, deadline: float, cap: int, running: Callable[[], bool]
) -> tuple[bytes, bytes, bool, bool]:
    """Send stdin, then read Docker's multiplexed stdout/stderr frames until EOF, the deadline or the cap.

    A background process can keep the stream open after the command itself ended; `running` (polled while the
    stream is quiet) tells when the command is done, and the call ends then, as with the process backend.
    """
    sock.setblocking(True)
    if payload:
        sock.sendall(payload)
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    buf = bytearray()
    streams = {1: bytearray(), 2: bytearray()}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(streams[1]), bytes(streams[2]), True, False
        ready, _, _ = select.select([sock], [], [], min(remaining, 0.25))
        if not ready:
            if not running():
                ready, _, _ = select.select([sock], [], [], 0.05)  # output still in flight
                if not ready:
                    return bytes(streams[1]), bytes(streams[2]), False, False
            continue
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(streams[1]), bytes(streams[2]), False, False
        buf += chunk
        while len(buf) >= 8:
            kind, size = struct.unpack(">BxxxL", bytes(buf[:8]))
            if len(buf) < 8 + size:
                break
            if kind in streams:
                streams[kind] += buf[8 : 8 + size]
            del buf[: 8 + size]
        if len(streams[1]) > cap or len(streams[2]) > cap:
            return bytes(streams[1]), bytes(streams[2]), False, True
