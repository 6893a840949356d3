"""Which MCP servers the collector talks to: the client config file, and the collector-managed gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from collector.errors import ConfigError, ToolSessionError

EXIT_WITH_PARENT_ENV = "MCPGYM_EXIT_WITH_PARENT"
"""The gateway's variable (`mcp_servers.gateway.serve.EXIT_WITH_PARENT_ENV`; the collector imports nothing of the
servers): a managed gateway stops by itself when the process that started it is gone."""

__all__ = ["GATEWAY_SERVERS", "ManagedGateway", "ServerSpec", "load_server_config", "parse_server_config"]

GATEWAY_SERVERS = ("files", "search", "weather", "exec", "almanac", "shop")


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MCP server: a stdio command or a streamable-HTTP URL."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        """`stdio` or `http`."""
        return "http" if self.url else "stdio"


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise ConfigError(f"{where} must be a mapping of names to strings")
    return {str(k): str(v) for k, v in value.items()}


def parse_server_config(data: Any, *, source: str = "server config") -> dict[str, ServerSpec]:
    """Parse the common MCP client config shape into server specs.

    Accepted shape: `{"mcpServers": {"name": {"command": "...", "args": [...], "env": {...}, "cwd": "..."}}}` for a
    stdio server or `{"mcpServers": {"name": {"url": "http://...", "headers": {...}}}}` for streamable HTTP.

    Raises:
        ConfigError: naming the server and field that is wrong, and what is accepted.
    """
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict) or not data["mcpServers"]:
        raise ConfigError(
            f"{source}: expected a top-level 'mcpServers' mapping of server names to "
            "{'command': ..., 'args': [...]} or {'url': 'http://...'} entries"
        )
    specs: dict[str, ServerSpec] = {}
    for name, entry in data["mcpServers"].items():
        where = f"{source}: server {name!r}"
        if not isinstance(name, str) or not name or "__" in name or not name.replace("-", "_").isidentifier():
            raise ConfigError(f"{where}: names must be identifiers (letters, digits, '_' or '-') without '__'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with 'command' or 'url'")
        unknown = set(entry) - {"command", "args", "env", "cwd", "url", "headers", "type", "transport"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; accepted: command, args, env, cwd, url, headers")
        has_cmd, has_url = "command" in entry, "url" in entry
        if has_cmd == has_url:
            raise ConfigError(f"{where}: give exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        if has_url:
            url = entry["url"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ConfigError(f"{where}: 'url' must be an http:// or https:// URL, got {url!r}")
            specs[name] = ServerSpec(name=name, url=url, headers=_str_map(entry.get("headers"), f"{where}: 'headers'"))
        else:
            command, args = entry["command"], entry.get("args", [])
            if not isinstance(command, str) or not command:
                raise ConfigError(f"{where}: 'command' must be a non-empty string")
            if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
                raise ConfigError(f"{where}: 'args' must be a list of strings")
            cwd = entry.get("cwd")
            specs[name] = ServerSpec(
                name=name, command=command, args=tuple(str(a) for a in args),
                env=_str_map(entry.get("env"), f"{where}: 'env'"), cwd=str(cwd) if cwd else None,
            )
    return specs


def load_server_config(path: str | Path) -> dict[str, ServerSpec]:
    """Read a YAML or JSON MCP client config file (see `parse_server_config`).

    Raises:
        ConfigError: the file is missing, unparsable, or has a bad entry.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read server config {p}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"server config {p} is not valid {'JSON' if p.suffix == '.json' else 'YAML/JSON'}: {exc}") from exc
    return parse_server_config(data, source=str(p))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedGateway:
    """`mcpgym serve all --transport http` run by the collector on a free loopback port, restarted if it dies.

    Args:
        workspace_root: parent directory for the run's workspaces (a temporary directory when None).
        start_timeout_s: how long to wait for `/healthz`.
        keep_workspaces: keep a temporary workspace root at the end.
    """

    def __init__(self, workspace_root: Path | None = None, *, start_timeout_s: float = 60.0,
                 keep_workspaces: bool = False) -> None:
        self._own_root = workspace_root is None
        self.root = Path(workspace_root) if workspace_root else Path(tempfile.mkdtemp(prefix="mcpgym-ws-"))
        self.start_timeout_s = start_timeout_s
        self.keep_workspaces = keep_workspaces
        self.port = 0
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.headers: dict[str, str] = {}
        self.paths: dict[str, str] = {n: f"/{n}/mcp" for n in GATEWAY_SERVERS}  # what /healthz says is mounted
        token = os.environ.get("MCPGYM_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    def specs(self) -> dict[str, ServerSpec]:
        """The gateway's mounted servers as specs (URLs under the current port)."""
        return {n: ServerSpec(name=n, url=f"{self.base_url}{p}", headers=self.headers) for n, p in self.paths.items()}

    def alive(self) -> bool:
        """The gateway process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the gateway and wait until `/healthz` answers.

        Raises:
            ToolSessionError: the process exited or did not become healthy in time (its log is quoted).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        log_path = self.root / "gateway.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "mcpgym.cli", "serve", "all", "--transport", "http", "--host", "127.0.0.1",
               "--port", str(self.port), "--workspace", str(self.root / "workspaces")]
        # the gateway stops by itself if this process dies without stopping it (SIGKILL, an unhandled SIGTERM)
        env = {**os.environ, EXIT_WITH_PARENT_ENV: str(os.getpid())}
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                health = httpx.get(f"{self.base_url}/healthz", timeout=1.0, headers=self.headers)
                if health.status_code == 200:
                    served = health.json().get("servers")
                    if isinstance(served, dict) and served:
                        self.paths = {str(k): str(v) for k, v in served.items()}
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        tail = log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise ToolSessionError(f"the managed MCP server ({' '.join(cmd[2:])}) did not become healthy:\n{tail}")

    def healthy(self) -> bool:
        """The gateway process runs and answers `/healthz`."""
        if not self.alive():
            return False
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2.0, headers=self.headers).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure_running(self, *, check_health: bool = False) -> bool:
        """Restart the gateway if it died (or, with `check_health`, stopped answering). True when restarted."""
        if self.healthy() if check_health else self.alive():
            return False
        self.stop()
        self.restarts += 1
        self.start()
        return True

    def stop(self) -> None:
        """Stop the gateway (and remove a temporary workspace root unless kept)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Stop, then delete a temporary workspace root."""
        self.stop()
        if self._own_root and not self.keep_workspaces:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        """The gateway's process id while it runs."""
        return self._proc.pid if self.alive() and self._proc is not None else None
