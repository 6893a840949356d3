"""Deployment: docker-compose.yml validates; where an engine runs, the image builds from a local base and the tools,
collector and viewer services work end to end (a tool called through MCP, a collection job, the viewer)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
import yaml
from docker_base import Engine, local_python_base
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TOKEN = "deploy-test-token-4f1c"
IMAGE = "mcpgym-smoke:test"


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = ["docker", "compose", "version"]
    if shutil.which("docker") and subprocess.run(plugin, capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return None


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGYM_")}
    return {**env, **extra}


def test_compose_file_shape() -> None:
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    services = spec["services"]
    assert set(services) == {"tools", "collector", "viewer", "vllm"}
    assert services["vllm"]["profiles"] == ["gpu"]
    vllm_cmd = services["vllm"]["command"]
    assert "--enable-auto-tool-choice" in vllm_cmd and vllm_cmd[vllm_cmd.index("--tool-call-parser") + 1] == "hermes"
    for name in ("tools", "viewer", "vllm"):
        assert "healthcheck" in services[name], name
    assert {"SYS_ADMIN", "NET_ADMIN"} <= set(services["tools"]["cap_add"])
    assert "seccomp=unconfined" in services["tools"]["security_opt"]
    assert services["collector"]["depends_on"]["tools"]["condition"] == "service_healthy"
    assert {"db", "workspaces"} <= set(spec["volumes"])
    for name in ("tools", "viewer", "vllm"):  # published on loopback only
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), name


def test_compose_config_validates() -> None:
    compose = _compose_cmd()
    if compose is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed (scripts/setup-system.sh)")
    ok = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT, capture_output=True,
                        text=True, env=_env(MCPGYM_TOKEN=TOKEN), check=False)
    assert ok.returncode == 0, ok.stderr
    full = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "--profile", "gpu", "config"], cwd=ROOT,
                          capture_output=True, text=True, env=_env(MCPGYM_TOKEN=TOKEN), check=False)
    assert full.returncode == 0, full.stderr
    assert TOKEN in full.stdout and "hermes" in full.stdout
    missing = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT, capture_output=True,
                             text=True, env=_env(), check=False)
    assert missing.returncode != 0 and "set MCPGYM_TOKEN" in missing.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=3)
            if response.status_code == 200:
                return response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {seconds} s ({last})")


@pytest.fixture(scope="module")
def stack(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The tools and viewer services up from a locally built image (removed at the session's end by conftest)."""
    compose = _compose_cmd()
    if compose is None:
        print("SKIP docker smoke test: no docker-compose to bring the services up")
        pytest.skip("no docker-compose to bring the services up")
    base = local_python_base(tmp_path_factory.mktemp("rootfs"))
    build = subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, "--build-arg", f"BASE_IMAGE={base}",
         "--build-arg", "PIP_ARGS=--no-index --no-build-isolation", str(ROOT)],
        capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    project = f"mcpgymsmoke{os.getpid()}"
    ports = {"tools": str(_free_port()), "viewer": str(_free_port())}
    env = _env(MCPGYM_TOKEN=TOKEN, MCPGYM_IMAGE=IMAGE, MCPGYM_TOOLS_PORT=ports["tools"],
               MCPGYM_VIEWER_PORT=ports["viewer"])
    cmd = [*compose, "-p", project, "-f", str(COMPOSE_FILE)]
    try:
        up = subprocess.run([*cmd, "up", "-d", "--no-build", "tools", "viewer"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
        assert up.returncode == 0, up.stderr[-3000:]
        yield {"tools": f"http://127.0.0.1:{ports['tools']}", "viewer": f"http://127.0.0.1:{ports['viewer']}",
               "project": project, **{f"cmd{i}": c for i, c in enumerate(cmd)}, "ncmd": str(len(cmd))}
    finally:
        logs = subprocess.run([*cmd, "logs", "--no-color"], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        print(logs.stdout[-4000:])
        subprocess.run([*cmd, "down", "-v", "--remove-orphans"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120, check=False)


def _compose(stack: dict[str, str]) -> list[str]:
    return [stack[f"cmd{i}"] for i in range(int(stack["ncmd"]))]


async def _call(url: str, server: str, tool: str, args: dict[str, object]) -> tuple[list[str], object]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}", "Mcpgym-Workspace": "smoke"}, timeout=60)
    async with http, Client(streamable_http_client(f"{url}/{server}/mcp", http_client=http)) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool(tool, args)
        return names, result


@pytest.mark.docker
@pytest.mark.slow
def test_tools_collector_and_viewer_in_containers(stack: dict[str, str]) -> None:
    health = _wait_http(f"{stack['tools']}/healthz").json()
    assert "weather" in health["servers"]
    assert httpx.get(f"{stack['tools']}/weather/mcp", timeout=5).status_code == 401  # the token is required

    names, result = anyio.run(_call, stack["tools"], "weather", "get_current_weather", {"location": "Paris"})
    assert "get_current_weather" in names
    assert not result.is_error and "Paris" in result.content[0].text

    if "exec" in health["servers"]:  # the process sandbox, with the privileges the compose file grants
        _, ran = anyio.run(_call, stack["tools"], "exec", "run_python",
                           {"code": "import os; print('pid', os.getpid(), 'uid', os.getuid())"})
        assert not ran.is_error, ran.content
        text = ran.content[0].text
        assert "pid 1 uid" in text and "uid 0" not in text, text  # own pid namespace, unprivileged uid

    # A collection job (scripted experts on two weather tasks) writes into the db volume the viewer reads.
    env = _env(MCPGYM_TOKEN=TOKEN, MCPGYM_IMAGE=IMAGE, MCPGYM_TASKS="weather", MCPGYM_LIMIT="2",
               MCPGYM_RUN="smoke", MCPGYM_TOOLS_PORT=stack["tools"].rsplit(":", 1)[1],
               MCPGYM_VIEWER_PORT=stack["viewer"].rsplit(":", 1)[1])
    job = subprocess.run([*_compose(stack), "run", "--rm", "--no-deps", "collector"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-3000:]

    _wait_http(f"{stack['viewer']}/healthz")
    assert httpx.get(f"{stack['viewer']}/api/runs", timeout=10).status_code == 401  # bound to 0.0.0.0: token only
    auth = {"Authorization": f"Bearer {TOKEN}"}  # the viewer's token is the tools' one
    runs = httpx.get(f"{stack['viewer']}/api/runs", headers=auth, timeout=10).json()["runs"]
    assert [(r["id"], r["policy"], r["done"]) for r in runs] == [("smoke", "scripted", 2)]
    page = httpx.get(f"{stack['viewer']}/runs", headers=auth, timeout=10)
    assert page.status_code == 200 and "smoke" in page.text and "scripted" in page.text
    episodes = httpx.get(f"{stack['viewer']}/api/episodes?run=smoke", headers=auth, timeout=10).json()
    assert episodes["total"] == 2
    first = episodes["episodes"][0]["id"]
    detail = httpx.get(f"{stack['viewer']}/api/episodes/{first}", headers=auth, timeout=10).json()
    calls = [c["name"] for t in detail["turns"] for c in t["calls"]]
    assert calls and set(calls) <= {"get_current_weather", "get_forecast", "geocode", "weather__get_current_weather",
                                    "weather__get_forecast", "weather__geocode"}, calls
    assert detail["episode"]["passed"] is True
    assert json.dumps(detail)  # the JSON twin is plain JSON
