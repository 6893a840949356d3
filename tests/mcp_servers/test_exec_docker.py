"""The Docker backend against a real engine (started here if needed) and a locally built image (no registry)."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

docker = pytest.importorskip("docker")

from docker_base import Engine, local_python_base
from mcp.client import Client

from mcp_servers.exec.sandbox import Limits
from mcp_servers.exec.sandbox.docker_backend import LABEL, DockerSandbox, DockerSandboxConfig
from mcp_servers.exec.server import build_exec_server
from mcp_servers.settings import ExecSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

pytestmark = pytest.mark.docker

IMAGE = "mcpgym-exec-test:py311"
SECRET = "docker-secret-71be"


@pytest.fixture(scope="module")
def image(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test image; removed with the engine's other test images when the session ends (tests/conftest.py)."""
    work = tmp_path_factory.mktemp("docker")
    base = local_python_base(work)
    # The base keeps the host's interpreter under /root (mode 700): open that path to the unprivileged user.
    dockerfile = f"FROM {base}\nRUN chmod 755 /root\n".encode()
    docker.from_env().images.build(fileobj=io.BytesIO(dockerfile), tag=IMAGE, rm=True)
    return IMAGE


@pytest.fixture(scope="module")
def sandbox(image: str) -> Iterator[DockerSandbox]:
    os.environ["MCPGYM_TOKEN"] = SECRET
    box = DockerSandbox(DockerSandboxConfig(image=image, limits=Limits(timeout_s=10, memory_mb=128, output_bytes=4096)))
    yield box
    asyncio.run(box.close())
    os.environ.pop("MCPGYM_TOKEN", None)


def our_containers(workspace: Path | None = None) -> list[Any]:
    labels = [f"{LABEL}=1"] + ([f"{LABEL}.workspace={workspace.resolve()}"] if workspace else [])
    return docker.from_env().containers.list(all=True, filters={"label": labels})


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


async def test_one_container_per_workspace_with_its_files(sandbox: DockerSandbox, ws: Path, tmp_path: Path) -> None:
    first = await sandbox.run(
        ws, code="import sys\nopen('a.txt', 'w').write(sys.stdin.read())\nprint('ok')", stdin="hello"
    )
    second = await sandbox.run(ws, argv=["cat", "a.txt"])
    assert first.ok and first.stdout == "ok\n" and second.stdout == "hello"
    assert (ws / "a.txt").read_text() == "hello"
    assert len(our_containers(ws)) == 1
    other = tmp_path / "other"
    other.mkdir()
    assert (await sandbox.run(other, argv=["ls"])).stdout == ""
    assert len(our_containers(other)) == 1 and our_containers(other)[0].id != our_containers(ws)[0].id
    await sandbox.release(other)
    assert our_containers(other) == []


async def test_container_is_locked_down(sandbox: DockerSandbox, ws: Path) -> None:
    code = (
        "import os, socket, json\nres = {'uid': os.getuid(), 'ifaces': [n for _, n in socket.if_nameindex()]}\n"
        "for path in ('/etc/x', '/tmp/t'):\n"
        "    try:\n        open(path, 'w').write('x')\n        res[path] = 'ok'\n"
        "    except OSError as exc:\n        res[path] = exc.strerror\n"
        "res['env'] = dict(os.environ)\nprint(json.dumps(res))"
    )
    result = await sandbox.run(ws, code=code)
    seen = json.loads(result.stdout)
    assert seen["uid"] == 65534 and seen["ifaces"] == ["lo"]
    assert seen["/etc/x"] == "Read-only file system" and seen["/tmp/t"] == "ok"
    assert SECRET not in result.stdout and "MCPGYM_TOKEN" not in seen["env"]
    container = our_containers(ws)[0]
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["Memory"] == 128 * 1024 * 1024 and host["PidsLimit"] > 0 and host["CapDrop"] == ["ALL"]


async def test_limits_are_enforced(sandbox: DockerSandbox, ws: Path) -> None:
    loop = await sandbox.run(ws, code="while True:\n    pass", limits=Limits(timeout_s=1, memory_mb=128))
    assert loop.timed_out and loop.exit_code is None
    memory = await sandbox.run(ws, code="x = bytearray(10 * 1024 ** 3)")
    assert memory.memory_exceeded and memory.exit_code != 0
    flood = await sandbox.run(ws, code="import sys\nfor _ in range(64):\n    sys.stdout.write('x' * (1 << 20))")
    assert flood.output_limit_exceeded and len(flood.stdout) == 4096
    background = await sandbox.run(ws, argv=["sh", "-c", "(sleep 60; echo x > late) > /dev/null 2>&1 & echo bg"])
    assert background.stdout == "bg\n"
    survivors = await sandbox.run(  # everything but the container's init, its keeper and this lister
        ws, code="import os\nme = os.getpid()\nprint([open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc')"
        " if p.isdigit() and int(p) not in (1, me) and b'mcpgym-keeper' not in open(f'/proc/{p}/cmdline', 'rb').read()])",
    )  # fmt: skip
    assert survivors.stdout == "[]\n"  # the call's leftovers were killed when it returned
    assert (await sandbox.run(ws, code="print('still fine')")).stdout == "still fine\n"


async def test_exec_server_with_the_docker_backend(image: str, ws: Path) -> None:
    settings = ServerSettings(exec=ExecSettings(backend="docker", docker_image=image, timeout_s=10))
    server = build_exec_server(WorkspaceManager(ws, per_session=False), settings)
    async with Client(server) as client:
        report = await client.call_tool(
            "run_tests",
            {"code": "def inc(x):\n    return x + 1", "test_code": "def check(c):\n    assert c(1) == 2\n    assert c(2) == 4",
             "entry_point": "inc"},
        )  # fmt: skip
        out = await client.call_tool("run_python", {"code": "import socket\nprint(socket.gethostname())"})
    assert report.structured_content is not None
    assert (report.structured_content["passed"], report.structured_content["total"]) == (1, 2)
    assert out.structured_content is not None and out.structured_content["stdout"] == "sandbox\n"
    for container in our_containers(ws):
        container.remove(force=True)
