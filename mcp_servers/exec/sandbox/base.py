"""The sandbox interface: `Limits` in, `ExecResult` out, and the `Sandbox` protocol every backend implements."""

from __future__ import annotations

import abc
import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcp_servers.errors import BackendError, ToolInputError

__all__ = ["SANDBOX_WORKDIR", "ExecResult", "Limits", "Sandbox"]

SANDBOX_WORKDIR = "/workspace"  # where every backend mounts the session's workspace


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution.

    Attributes:
        timeout_s: Wall-clock limit; the whole process tree is killed when it passes.
        memory_mb: Memory limit (cgroup where writable; the address-space rlimit adds `address_slack_mb`).
        processes: Most processes/threads at once (RLIMIT_NPROC and the pids cgroup).
        output_bytes: Cap on each of stdout and stderr; past it the execution is stopped and the stream truncated.
        file_bytes: Largest file the execution may write (RLIMIT_FSIZE).
        open_files: Most open file descriptors (RLIMIT_NOFILE).
        tmp_mb: Size of the private /tmp (and /dev/shm).
        address_slack_mb: Virtual address space allowed above `memory_mb` (the interpreter maps more than it uses).
    """

    timeout_s: float = 10.0
    memory_mb: int = 512
    processes: int = 64
    output_bytes: int = 65_536
    file_bytes: int = 64 * 1024 * 1024
    open_files: int = 256
    tmp_mb: int = 64
    address_slack_mb: int = 256

    def __post_init__(self) -> None:
        checks = {
            "timeout_s": self.timeout_s > 0,
            "memory_mb": self.memory_mb >= 16,
            "processes": self.processes >= 1,
            "output_bytes": self.output_bytes >= 0,
            "file_bytes": self.file_bytes >= 0,
            "open_files": self.open_files >= 16,
            "tmp_mb": self.tmp_mb >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ToolInputError(
                f"invalid sandbox limits {bad}: timeout_s must be > 0, memory_mb >= 16, processes >= 1, "
                "output_bytes and file_bytes >= 0, open_files >= 16, tmp_mb >= 1"
            )

    def to_wire(self) -> dict[str, Any]:
        """The limits in bytes and seconds, as the process backend's zygote expects them."""
        mib = 1024 * 1024
        return {
            "timeout_s": self.timeout_s,
            "cpu_s": int(self.timeout_s) + 1,
            "memory_bytes": self.memory_mb * mib,
            "address_bytes": (self.memory_mb + self.address_slack_mb) * mib,
            "processes": self.processes,
            "output_bytes": self.output_bytes,
            "file_bytes": self.file_bytes,
            "open_files": self.open_files,
            "tmp_bytes": self.tmp_mb * mib,
        }


@dataclass
class ExecResult:
    """What one execution produced.

    Attributes:
        exit_code: The process's exit status; negative `-N` when killed by signal N; None when it never finished.
        stdout: Standard output (UTF-8, undecodable bytes replaced), at most `Limits.output_bytes`.
        stderr: Standard error, likewise capped.
        stdout_truncated: True when stdout was cut at the cap.
        stderr_truncated: True when stderr was cut at the cap.
        timed_out: True when the wall-clock limit killed the execution.
        memory_exceeded: True when the memory limit was hit (OOM kill or a MemoryError).
        output_limit_exceeded: True when the execution was stopped for writing more than the output cap.
        duration_s: Wall-clock time of the whole execution, sandbox set-up included.
        rusage: CPU seconds (`user_s`, `system_s`), `max_rss_kb`, and `peak_memory_bytes` where known.
    """

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    memory_exceeded: bool = False
    output_limit_exceeded: bool = False
    duration_s: float = 0.0
    rusage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the execution finished by itself with exit status 0."""
        return self.exit_code == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


class LoopGate:
    """A limit of `size` concurrent holders per event loop (an `asyncio.Semaphore` belongs to the loop it is used on,
    and a backend or server may serve several loops in turn)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> asyncio.Semaphore:
        """The running loop's semaphore (use as `async with gate():`)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.size)
        return gate


class Sandbox(abc.ABC):
    """A backend that runs code or a command in isolation against one workspace directory."""

    name: str = "sandbox"
    preloaded_harness: str | None = None  # module name under which the backend preloads the run_tests judge
    code_magic: bytes | None = None  # bytecode format (`importlib.util.MAGIC_NUMBER`) of the sandbox's interpreter

    @abc.abstractmethod
    async def run(
        self,
        workspace: Path,
        *,
        code: str | None = None,
        argv: Sequence[str] | None = None,
        stdin: str | bytes = b"",
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run Python `code`, or the command `argv`, with the workspace mounted at /workspace as working directory.

        Args:
            workspace: Host directory of the caller's workspace (the only writable place besides a private /tmp).
            code: Python source to run as `__main__` (exactly one of `code` and `argv`).
            argv: A command and its arguments, looked up on the sandbox's PATH.
            stdin: Data for standard input.
            limits: Resource limits; the backend's defaults when None.

        Returns:
            The execution's result.

        Raises:
            ToolInputError: Neither or both of `code` and `argv`, or an empty argv.
            BackendError: The sandbox itself failed (not the code inside it).
        """

    async def call_preloaded(
        self,
        workspace: Path,
        function: str,
        args: Sequence[Any],
        *,
        limits: Limits | None = None,
        stdin: bytes = b"",
    ) -> ExecResult:
        """Run `function(*args)` of the preloaded judge module (`preloaded_harness`) as an execution: like
        `run(code=..., stdin=...)` with the call as its program, but the arguments travel as data and nothing is
        compiled. `stdin` reaches the execution only through its standard input (never its memory before it reads).

        Only backends that set `preloaded_harness` implement it.

        Raises:
            BackendError: The sandbox itself failed.
        """
        raise NotImplementedError(f"the {self.name} backend preloads no harness")

    async def release(self, workspace: Path) -> None:
        """Free what the backend holds for `workspace` (e.g. its container) when the session ends."""

    async def close(self) -> None:
        """Stop the backend's helpers (fork server, containers)."""
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the backend's helpers synchronously (also safe at interpreter exit)."""


def checked_run(workspace: Path, code: str | None, argv: Sequence[str] | None) -> Path:
    """Validate the arguments of `Sandbox.run` (see `check_command`) and return the resolved workspace.

    Raises:
        ToolInputError: A bad (code, argv) pair.
        BackendError: The workspace directory does not exist.
    """
    check_command(code, argv)
    ws = Path(workspace).resolve()
    if not ws.is_dir():
        raise BackendError(f"workspace directory {str(workspace)!r} does not exist")
    return ws


def check_command(code: str | None, argv: Sequence[str] | None) -> None:
    """Validate the (code, argv) pair of `Sandbox.run`.

    Raises:
        ToolInputError: Neither or both given, an empty argv, or a NUL byte.
    """
    if (code is None) == (argv is None):
        raise ToolInputError("give exactly one of 'code' (Python source) and 'argv' (a command list)")
    if argv is not None:
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ToolInputError("'argv' must be a non-empty list of strings, e.g. ['ls', '-l']")
        if any("\0" in a for a in argv):
            raise ToolInputError("'argv' must not contain NUL bytes")
    if code is not None and "\0" in code:
        raise ToolInputError("'code' must not contain NUL bytes")
