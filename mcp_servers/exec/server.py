"""The exec MCP server: run Python, shell commands and unit tests inside the sandbox, in the caller's workspace."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.errors import ToolInputError, tool_errors
from mcp_servers.exec.models import ExecOutput, TestReport
from mcp_servers.exec.runner import run_tests as _run_tests
from mcp_servers.exec.sandbox import Limits, Sandbox, limits_from_settings, make_sandbox
from mcp_servers.exec.sandbox.base import ExecResult, LoopGate
from mcp_servers.settings import ExecSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

__all__ = ["build_exec_server"]

_log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Run code in an isolated sandbox whose working directory is your workspace (/workspace): the same files the "
    "files tools see. No network. Each call starts from a clean process: only files in the workspace persist "
    "between calls. Use run_tests to score a solution against unit tests."
)

RUN = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
TESTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Timeout = Annotated[
    float | None,
    Field(description="Wall-clock limit in seconds (default: the server's; at most its maximum)."),
]


class _Runner:
    """Holds the sandbox, the limits and a per-event-loop concurrency gate."""

    def __init__(self, sandbox: Sandbox, cfg: ExecSettings) -> None:
        self.sandbox = sandbox
        self.cfg = cfg
        self.gate = LoopGate(cfg.max_concurrency)

    def limits(self, timeout_s: float | None) -> Limits:
        if timeout_s is not None and not 0 < timeout_s <= self.cfg.max_timeout_s:
            raise ToolInputError(
                f"timeout_s={timeout_s}: must be greater than 0 and at most {self.cfg.max_timeout_s} seconds"
            )
        return limits_from_settings(self.cfg, timeout_s)

    def check_size(self, name: str, text: str) -> None:
        size = len(text.encode("utf-8", errors="replace"))
        if size > self.cfg.max_code_bytes:
            raise ToolInputError(f"{name}: {size} bytes is over the limit of {self.cfg.max_code_bytes} bytes")


def _output(result: ExecResult) -> ExecOutput:
    return ExecOutput(
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        timed_out=result.timed_out,
        memory_exceeded=result.memory_exceeded,
        output_limit_exceeded=result.output_limit_exceeded,
        duration_s=round(result.duration_s, 4),
    )


def build_exec_server(
    workspaces: WorkspaceManager, settings: ServerSettings, sandbox: Sandbox | None = None
) -> MCPServer:
    """Build the exec server.

    Args:
        workspaces: Gives each call its workspace (shared on stdio, per session over HTTP); when a session's
            workspace is released, the backend frees what it holds for it (e.g. its container).
        settings: Server settings; `settings.exec` picks the backend ("process" or "docker") and the limits.
        sandbox: A ready backend to use instead of building one from the settings (tests, embedding).

    Returns:
        The configured server with the tools run_python, run_shell and run_tests.

    Raises:
        ConfigError: An unknown backend.
        ServerUnavailableError: The docker backend without the docker package.
    """
    cfg = settings.exec
    runner = _Runner(sandbox or make_sandbox(cfg), cfg)
    server: MCPServer = MCPServer("mcpgym-exec", instructions=INSTRUCTIONS, log_level="WARNING")

    def on_release(key: str, path: Path) -> None:
        def release() -> None:
            try:
                asyncio.run(runner.sandbox.release(path))
            except Exception:  # noqa: BLE001 - a failed clean-up is logged, the workspace still goes
                _log.exception("exec: releasing the sandbox of workspace %s failed", key)

        threading.Thread(target=release, name=f"exec-release-{key}", daemon=True).start()

    workspaces.on_release(on_release)
    atexit.register(runner.sandbox.shutdown)

    @server.tool(annotations=RUN)
    @tool_errors
    async def run_python(
        code: Annotated[
            str, Field(description="Python 3 source, run as __main__ with /workspace as working directory.")
        ],
        ctx: Context,
        stdin: Annotated[str, Field(description="Text for standard input.")] = "",
        timeout_s: Timeout = None,
    ) -> ExecOutput:
        """Run a Python program in the sandbox and return its exit code, stdout and stderr. Files it writes in the
        working directory stay in the workspace; nothing else persists. No network; standard library only."""
        runner.check_size("code", code)
        runner.check_size("stdin", stdin)
        limits = runner.limits(timeout_s)
        workspace = workspaces.current(ctx)
        async with runner.gate():
            return _output(await runner.sandbox.run(workspace, code=code, stdin=stdin, limits=limits))

    @server.tool(annotations=RUN)
    @tool_errors
    async def run_shell(
        command: Annotated[str, Field(description="A /bin/sh command line, e.g. 'ls -la && python3 main.py'.")],
        ctx: Context,
        timeout_s: Timeout = None,
    ) -> ExecOutput:
        """Run a shell command (/bin/sh -c) in the sandbox, in the workspace directory, and return its exit code,
        stdout and stderr. No network; background processes end with the call."""
        runner.check_size("command", command)
        if not command.strip():
            raise ToolInputError("command: must not be empty, e.g. 'ls -la'")
        limits = runner.limits(timeout_s)
        workspace = workspaces.current(ctx)
        async with runner.gate():
            return _output(await runner.sandbox.run(workspace, argv=["/bin/sh", "-c", command], limits=limits))

    @server.tool(annotations=TESTS)
    @tool_errors
    async def run_tests(
        code: Annotated[str, Field(description="The solution's Python source.")],
        test_code: Annotated[
            str,
            Field(
                description="Tests: top-level asserts, test_* functions, unittest.TestCase classes, or a "
                "HumanEval-style check(candidate) function (then give entry_point)."
            ),
        ],
        ctx: Context,
        entry_point: Annotated[
            str | None, Field(description="Name of the solution's function that check(candidate) receives.")
        ] = None,
        timeout_s: Timeout = None,
    ) -> TestReport:
        """Run a solution against unit tests in the sandbox and report how many passed ({passed, total, failures,
        timed_out, error}); each assert of a check(candidate) body counts as one test."""
        runner.check_size("code", code)
        runner.check_size("test_code", test_code)
        limits = runner.limits(timeout_s)
        workspace = workspaces.current(ctx)
        async with runner.gate():
            return await _run_tests(runner.sandbox, workspace, code, test_code, entry_point, limits)

    return server
