"""Start `mcpgym serve ... --transport http` as a subprocess on a free loopback port and wait until it is healthy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from mcp_servers.errors import BackendError

__all__ = ["GatewayProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now.

    Args:
        host: The address to probe.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """A gateway subprocess; use as a context manager.

    Example:
        >>> with GatewayProcess(["files"], workspace=Path("/tmp/ws")) as gw:  # doctest: +SKIP
        ...     print(gw.url("files"))
        http://127.0.0.1:41234/files/mcp
    """

    def __init__(
        self,
        servers: Sequence[str] = ("all",),
        *,
        workspace: Path | None = None,
        token: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 30.0,
        python: str | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        """Describe the gateway to start.

        Args:
            servers: ["all"] or exactly one server name.
            workspace: Workspace root (default: the settings' default).
            token: Bearer token to require.
            extra_args: More `mcpgym serve` options (e.g. ["--session-idle-timeout", "5"]).
            env: Environment for the subprocess (default: this process's).
            startup_timeout_s: How long to wait for /healthz.
            python: The interpreter to run (default: this one).
            launcher: A command the gateway runs under, e.g. ["setpriv", "--reuid=65534", ...] for another user.

        Raises:
            BackendError: More than one server name given without "all".
        """
        if len(servers) != 1:
            raise BackendError("servers: give ['all'] or exactly one server name")
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.base_url = f"http://{self.host}:{self.port}"
        self.token = token
        self._args = [
            *launcher,
            python or sys.executable,
            "-m",
            "mcpgym.cli",
            "serve",
            servers[0],
            "--transport",
            "http",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *extra_args,
        ]
        if workspace is not None:
            self._args += ["--workspace", os.fspath(workspace)]
        if token:
            self._args += ["--token", token]
        self._env = env
        self._timeout = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the subprocess; closed in stop()

    def url(self, server: str) -> str:
        """The MCP endpoint URL of one mounted server."""
        return f"{self.base_url}/{server}/mcp"

    def start(self) -> GatewayProcess:
        """Start the subprocess and wait until `/healthz` answers.

        Returns:
            self.

        Raises:
            BackendError: The process exited or did not become healthy in time (with its stderr).
        """
        self.proc = subprocess.Popen(self._args, env=self._env, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.stderr_text()
                raise BackendError(f"gateway exited with status {self.proc.returncode}: {err.strip()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise BackendError(f"gateway did not answer /healthz within {self._timeout:g} s")

    def stderr_text(self) -> str:
        """What the subprocess wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self) -> None:
        """Terminate the subprocess (kill it if it does not exit within 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()

    def __enter__(self) -> GatewayProcess:  # noqa: PYI034
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
