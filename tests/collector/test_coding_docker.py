"""The code-repair and test-writing verifiers on the exec server's Docker backend (the process backend is covered by
test_code_repair.py and test_test_writing.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

docker = pytest.importorskip("docker")

from docker_base import Engine, local_python_base
from mcp.client import Client

from collector.tasks import code_repair, test_writing
from collector.tasks._mutant_table import module_source
from collector.tasks.code import load_problems
from collector.verifiers import verify
from collector.verifiers.spec import VerifyContext
from mcp_servers.exec.sandbox.docker_backend import LABEL
from mcp_servers.exec.server import build_exec_server
from mcp_servers.settings import ExecSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

pytestmark = [pytest.mark.docker, pytest.mark.asyncio]

IMAGE = "mcpgym-exec-test:py311"


@pytest.fixture(scope="module")
def image(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = local_python_base(tmp_path_factory.mktemp("docker"))
    dockerfile = f"FROM {base}\nRUN chmod 755 /root\n".encode()  # the host's interpreter lives under /root
    docker.from_env().images.build(fileobj=io.BytesIO(dockerfile), tag=IMAGE, rm=True)
    return IMAGE


def context(client: Any, files: dict[str, str]) -> VerifyContext:
    async def run_tests(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        args = {"code": code, "test_code": test_code, **({"entry_point": entry_point} if entry_point else {})}
        return dict((await client.call_tool("run_tests", args)).structured_content or {})

    async def run_python(code: str, timeout_s: float) -> dict[str, Any]:
        result = await client.call_tool("run_python", {"code": code, "timeout_s": timeout_s})
        return dict(result.structured_content or {})

    return VerifyContext(files=files, run_tests=run_tests, run_python=run_python)


async def test_both_coding_verifiers_on_the_docker_backend(image: str, tmp_path: Path) -> None:
    settings = ServerSettings(exec=ExecSettings(backend="docker", docker_image=image, timeout_s=10))
    ws = tmp_path / "ws"
    ws.mkdir()
    repair = code_repair.generate(n=1)[0]
    writing = next(t for t in test_writing.generate() if t.id == "test-writing/humaneval-3")
    problem = next(p for p in load_problems() if p["task_id"] == repair.metadata["source_id"])
    for name, text in writing.setup_files.items():
        (ws / name).write_text(text)
    server = build_exec_server(WorkspaceManager(ws, per_session=False), settings)
    try:
        async with Client(server) as client:
            buggy = {repair.metadata["module"]: repair.setup_files[repair.metadata["module"]]}
            fixed = {repair.metadata["module"]: module_source(problem)}
            assert not (await verify(repair.verifier, context(client, buggy)))["passed"]
            assert (await verify(repair.verifier, context(client, fixed)))["passed"]
            good = {**writing.setup_files, "test_below_zero.py": writing.metadata["expert_tests"]}
            verdict = await verify(writing.verifier, context(client, good))
            assert verdict["passed"] and verdict["score"] == 1.0 and verdict["details"]["isolated"], verdict
            cheat = "import inspect\nfrom below_zero import below_zero\n\n\ndef test_src():\n" \
                    "    assert 'balance += op' in inspect.getsource(below_zero)\n"
            verdict = await verify(writing.verifier, context(client, {**writing.setup_files, "test_below_zero.py": cheat}))
            assert verdict["score"] == 0.0 and not verdict["passed"], verdict
    finally:
        for container in docker.from_env().containers.list(all=True, filters={"label": [f"{LABEL}=1"]}):
            container.remove(force=True)
