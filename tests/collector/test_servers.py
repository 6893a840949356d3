"""The MCP client config file: accepted shapes and clear errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from collector import servers
from collector.errors import ConfigError
from collector.servers import load_server_config, parse_server_config

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_and_json_configs(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "mcpServers:\n  files:\n    command: mcpgym\n    args: [serve, files, --transport, stdio]\n"
        "    env: {MCPGYM_X: '1'}\n  remote:\n    url: http://127.0.0.1:9/mcp\n    headers: {Authorization: Bearer t}\n")
    specs = load_server_config(tmp_path / "s.yaml")
    assert specs["files"].transport == "stdio" and specs["files"].args[0] == "serve"
    assert specs["files"].env == {"MCPGYM_X": "1"}
    assert specs["remote"].transport == "http" and specs["remote"].headers["Authorization"] == "Bearer t"
    (tmp_path / "s.json").write_text(json.dumps({"mcpServers": {"w": {"url": "http://127.0.0.1:1/w/mcp"}}}))
    assert load_server_config(tmp_path / "s.json")["w"].url == "http://127.0.0.1:1/w/mcp"


@pytest.mark.parametrize(("data", "message"), [
    ({}, "mcpServers"),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, "exactly one"),
    ({"mcpServers": {"a": {}}}, "exactly one"),
    ({"mcpServers": {"a": {"url": "ftp://h"}}}, "http://"),
    ({"mcpServers": {"a": {"command": "x", "args": "no"}}}, "'args' must be a list"),
    ({"mcpServers": {"a__b": {"command": "x"}}}, "without '__'"),
    ({"mcpServers": {"a": {"command": "x", "bogus": 1}}}, "unknown keys"),
])
def test_bad_configs_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_server_config(data)


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_server_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_server_config(tmp_path / "bad.json")


_OWNER = r'''
import sys, time
from collector.servers import ManagedGateway
gateway = ManagedGateway()
gateway.start()
print(gateway.pid, gateway.port, flush=True)
time.sleep(600)
'''


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: it waits for a parent that is no longer there
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z")


def test_a_managed_gateway_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the owner no chance to stop its gateway: the gateway notices and stops by itself."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert owner.stdout is not None
        pid, port = (int(v) for v in owner.stdout.readline().split())
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 401)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(pid), "the gateway outlived the process that started it"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        owner.kill()
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(pid, signal.SIGKILL)


def test_the_owner_variable_must_name_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_servers.errors import ConfigError as ServerConfigError
    from mcp_servers.gateway.serve import EXIT_WITH_PARENT_ENV, exit_with_parent

    assert EXIT_WITH_PARENT_ENV == servers.EXIT_WITH_PARENT_ENV
    monkeypatch.setenv(EXIT_WITH_PARENT_ENV, "abc")
    with pytest.raises(ServerConfigError, match="must be a process id"):
        exit_with_parent()
    monkeypatch.setenv(EXIT_WITH_PARENT_ENV, str(os.getpid()))  # this process, not its parent
    with pytest.raises(ServerConfigError, match="is not this process's parent"):
        exit_with_parent()
