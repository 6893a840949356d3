"""Run a solution against unit tests in a sandbox and turn the harness's report into a `TestReport`."""

from __future__ import annotations

import importlib.util
import json
import marshal
import secrets
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

from mcp_servers.errors import ToolInputError
from mcp_servers.exec import harness
from mcp_servers.exec.models import TestFailure, TestReport
from mcp_servers.exec.sandbox.base import Limits, Sandbox

__all__ = ["judge_input", "judge_program", "run_tests"]

HARNESS_MODULE = "mcpgym_harness"  # the module names under which the judge finds its helpers in a sandbox
WIRE_MODULE = "mcpgym_wire"

MAX_FAILURES = 20


@lru_cache(maxsize=1)
def _judge_sources() -> tuple[dict[str, str], str]:
    """({module name in the sandbox: source} of the judge's helpers, the judge's source)."""
    here = Path(harness.__file__).parent
    helpers = {HARNESS_MODULE: "harness.py", WIRE_MODULE: "wire.py"}
    return (
        {name: (here / file).read_text(encoding="utf-8") for name, file in helpers.items()},
        (here / "judge.py").read_text(encoding="utf-8"),
    )


def judge_program(code: str, entry_point: str | None) -> str:
    """The Python program that judges `code` in a sandbox without the preloaded judge (the process backend calls
    the preloaded one instead: `Sandbox.call_preloaded`). The tests are not part of it: the program reads them
    from stdin (`judge_input`) after it has started the solution's process, so they are never in that process.

    Args:
        code: The solution's source.
        entry_point: The function `check(candidate)` receives, for HumanEval-style tests.

    Returns:
        Python source: the judge's helper modules made, the judge, and a call of its entry function.
    """
    helpers, judge_source = _judge_sources()
    lines = ["from __future__ import annotations", "import sys as _sys, types as _types"]
    for name, source in helpers.items():
        lines += [
            f"_m = _sys.modules[{name!r}] = _types.ModuleType({name!r})",
            f"exec(compile({source!r}, '<{name}>', 'exec'), _m.__dict__)",
        ]
    judge_source = judge_source.replace("from __future__ import annotations\n", "", 1)
    return "\n".join(lines) + f"\n{judge_source}\n_judge_main({code!r}, {entry_point!r})\n"


def judge_input(test_code: str, plan: dict[str, Any], nonce: str) -> bytes:
    """What the judge reads from stdin: the tests, the sandbox's part of their plan and the result marker."""
    return marshal.dumps((test_code, plan, nonce), 4)


@lru_cache(maxsize=512)
def _plan(test_code: str, entry_point: str | None) -> dict[str, Any]:
    """`harness.plan_tests`, remembered: RL scores many solutions against the same tests (read-only result).

    The plan also carries, under "sandbox", what the harness needs of it (`harness.sandbox_plan`).
    """
    plan = harness.plan_tests(test_code, entry_point)
    return {**plan, "sandbox": harness.sandbox_plan(plan)}


@lru_cache(maxsize=512)
def _compiled(test_code: str, entry_point: str | None) -> bytes | None:
    """`harness.compile_tests` of the test code, remembered (see `_plan`)."""
    return harness.compile_tests(test_code, _plan(test_code, entry_point))


_SEEN: OrderedDict[tuple[str, str | None], None] = OrderedDict()  # test codes run once (most recent last)


def _compiled_if_repeated(test_code: str, entry_point: str | None) -> bytes | None:
    """The compiled tests, from the second run of the same test code on (None on the first).

    Compiling in the server pays off when the same tests score many solutions (RL: a group of samples per
    problem); for tests run once it would only move the compiler's work from the sandbox to the server.
    """
    key = (test_code, entry_point)
    if key in _SEEN:
        _SEEN.move_to_end(key)
        return _compiled(test_code, entry_point)
    _SEEN[key] = None
    if len(_SEEN) > 4096:
        _SEEN.popitem(last=False)
    return None


async def run_tests(
    sandbox: Sandbox,
    workspace: Path,
    code: str,
    test_code: str,
    entry_point: str | None = None,
    limits: Limits | None = None,
) -> TestReport:
    """Run `code` against `test_code` in `sandbox` and count passed tests (rule: `mcp_servers.exec.harness`).

    Args:
        sandbox: The sandbox backend.
        workspace: The caller's workspace (the working directory of the run).
        code: Solution source.
        test_code: Test source: asserts, test_* functions, TestCase classes or a check(candidate) function.
        entry_point: Name of the solution's function, for check(candidate) tests.
        limits: Resource limits of the run.

    Returns:
        The report; a solution that fails to import or a timeout is a result, not an exception.

    Raises:
        ToolInputError: The test code has a syntax error or no tests, or entry_point is malformed.
        BackendError: The sandbox failed.
    """
    if entry_point is not None and not entry_point.isidentifier():
        raise ToolInputError(
            f"entry_point {entry_point[:80]!r}: must be a Python identifier, e.g. 'has_close_elements'"
        )
    try:
        plan = _plan(test_code, entry_point)
    except harness.TestPlanError as exc:
        raise ToolInputError(str(exc)) from None
    tests = plan["tests"]
    nonce = secrets.token_hex(16)
    if sandbox.preloaded_harness:
        sandbox_plan = plan["sandbox"]
        if sandbox.code_magic == importlib.util.MAGIC_NUMBER:  # same bytecode: the tests may travel compiled
            sandbox_plan = {**sandbox_plan, "compiled": _compiled_if_repeated(test_code, entry_point)}
        tests_in = judge_input(test_code, sandbox_plan, nonce)
        result = await sandbox.call_preloaded(
            workspace, "_judge_main", [code, entry_point], limits=limits, stdin=tests_in
        )
    else:
        program = judge_program(code, entry_point)
        result = await sandbox.run(workspace, code=program, stdin=judge_input(test_code, plan["sandbox"], nonce),
                                   limits=limits)  # fmt: skip
    outcomes: dict[int, dict[str, object]] = {}
    fatal: str | None = None
    done = False
    untrusted: str | None = None
    for line in result.stdout.splitlines():
        if not line.startswith(nonce + " "):
            continue
        try:
            record = json.loads(line[len(nonce) + 1 :])
        except ValueError:
            continue
        if "untrusted" in record and untrusted is None:  # the judge gave up: what follows ran in-process
            untrusted = str(record["untrusted"])[:300]
            outcomes.clear()
            fatal, done = None, False
        elif "fatal" in record:
            fatal = str(record["fatal"])
        elif record.get("done"):
            done = True
        elif isinstance(record.get("test"), int) and 0 <= record["test"] < len(tests):
            outcomes.setdefault(record["test"], record)
    error = fatal
    if error is None and not done:
        if result.timed_out:
            error = f"timed out after {result.duration_s:.1f}s"
        elif result.memory_exceeded:
            error = "the memory limit was exceeded"
        elif result.output_limit_exceeded:
            error = "the output limit was exceeded"
        else:
            tail = result.stderr.strip().splitlines()[-1:] or [""]
            error = f"the test run ended early (exit code {result.exit_code}) {tail[0][:300]}".rstrip()
    failures: list[TestFailure] = []
    passed = 0
    for number, test in enumerate(tests):
        outcome = outcomes.get(number)
        if outcome is not None and outcome.get("ok") is True:
            passed += 1
            continue
        reason = str(outcome.get("error", "")) if outcome else (error or "not run")
        if len(failures) < MAX_FAILURES:
            failures.append(TestFailure(test=number, name=test["name"], line=test["line"], error=reason or "failed"))
    return TestReport(
        passed=passed,
        total=len(tests),
        failures=failures,
        timed_out=result.timed_out,
        error=error,
        duration_s=result.duration_s,
        trusted=untrusted is None,
        untrusted_reason=untrusted,
    )
