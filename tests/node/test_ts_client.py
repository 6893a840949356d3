"""A client in another language (the MCP TypeScript SDK on Node) lists tools and calls one on each server."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.gateway.process import GatewayProcess

HERE = Path(__file__).parent
CLIENT = HERE / "client.mjs"
TOKEN = "node-test-token"

# One representative call per server, and a check of its result.
CALLS: dict[str, list[dict[str, Any]]] = {
    "files": [
        {"name": "write_file", "arguments": {"path": "from-node.txt", "content": "hello from node"}},
        {"name": "read_text_file", "arguments": {"path": "from-node.txt"}},
    ],
    "search": [{"name": "search", "arguments": {"query": "Paris capital of France", "k": 3}}],
    "weather": [{"name": "get_current_weather", "arguments": {"location": "Paris", "units": "metric"}}],
    "exec": [{"name": "run_python", "arguments": {"code": "print(6 * 7)"}}],
}


def check(server: str, out: dict[str, Any]) -> None:
    calls = out["calls"]
    assert all(not c["isError"] for c in calls), calls
    if server == "files":
        assert calls[-1]["text"] == "hello from node"
    elif server == "search":
        assert calls[0]["structured"] and calls[0]["structured"].get("hits"), calls[0]
    elif server == "weather":
        assert "Paris" in calls[0]["text"]
    elif server == "exec":
        assert "42" in calls[0]["text"]


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        return "run `npm install` in tests/node (scripts/setup-system.sh does it)"
    return None


def _available(server: str) -> str | None:
    module = {
        "files": "mcp_servers.files.server",
        "search": "mcp_servers.search.server",
        "weather": "mcp_servers.weather.server",
        "exec": "mcp_servers.exec.server",
    }[server]
    if importlib.util.find_spec(module) is None:
        return f"{module} does not exist yet"
    return None


def run_client(config: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        ["node", str(CLIENT), json.dumps(config)], check=False, capture_output=True, text=True, timeout=300, cwd=HERE
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    reason = _node_ready()
    if reason:
        pytest.skip(reason)
    with GatewayProcess(["all"], workspace=tmp_path_factory.mktemp("gw"), token=TOKEN) as gw:
        yield gw


@pytest.mark.parametrize("server", ["files", "search", "weather", "exec"])
def test_node_client_over_stdio(server: str, tmp_path: Path) -> None:
    reason = _node_ready() or _available(server)
    if reason:
        print(f"skipping {server}: {reason}")
        pytest.skip(reason)
    target = {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "mcpgym.cli", "serve", server, "--transport", "stdio", "--workspace", str(tmp_path)],
    }
    out = run_client({"mode": "smoke", "target": target, "calls": CALLS[server]})
    assert {c["name"] for c in CALLS[server]} <= set(out["tools"])
    check(server, out)
    if server == "files":
        assert (tmp_path / "from-node.txt").read_text() == "hello from node"


@pytest.mark.parametrize("server", ["files", "search", "weather", "exec"])
def test_node_client_over_http(server: str, gateway: GatewayProcess) -> None:
    reason = _available(server)
    if reason:
        print(f"skipping {server}: {reason}")
        pytest.skip(reason)
    target = {"transport": "http", "url": gateway.url(server), "headers": {"Authorization": f"Bearer {TOKEN}"}}
    out = run_client({"mode": "smoke", "target": target, "calls": CALLS[server]})
    assert {c["name"] for c in CALLS[server]} <= set(out["tools"])
    check(server, out)


def test_node_client_over_http_with_two_gateway_processes(tmp_path: Path) -> None:
    """Session-based TypeScript clients against `--workers 2`: a session's requests reach the process that opened it."""
    reason = _node_ready()
    if reason:
        pytest.skip(reason)
    with GatewayProcess(["all"], workspace=tmp_path, token=TOKEN, extra_args=["--workers", "2"]) as gw:
        target = {"transport": "http", "url": gw.url("files"), "headers": {"Authorization": f"Bearer {TOKEN}"}}
        for _ in range(4):  # each client's connections may be accepted by either process
            out = run_client({"mode": "smoke", "target": target, "calls": CALLS["files"]})
            assert out["protocolVersion"] == "2025-11-25"
            check("files", out)
        bench = {"tool": "read_text_file", "arguments": {"path": "from-node.txt"}, "calls": 40, "clients": 8}
        workspace_target = {**target, "headers": {**target["headers"], "Mcpgym-Workspace": "node-shared"}}
        (tmp_path / "w-node-shared").mkdir()
        (tmp_path / "w-node-shared" / "from-node.txt").write_text("shared")
        out = run_client({"mode": "sessions", "target": workspace_target, "bench": bench})
        assert out["errors"] == 0 and out["calls"] == 40
