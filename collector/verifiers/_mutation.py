"""The mutation_score verifier: a test file written by the agent, scored by the mutants it kills.

`expected` holds the module's name (`module`), the test file's workspace path (`tests_path`), the correct source
(`source`), the names of its top-level functions (`names`), the held-out mutants' sources (`mutants`) and the share
of them that must fail (`min_kill`). The test file is read from the workspace's final files and run, in one sandbox
execution through the exec server's `run_python`, by `collector.verifiers._mutation_driver` (which explains how the
untrusted tests are kept from telling a mutant from the module other than by its behaviour).

Score: the share of mutants on which the tests fail, or 0 when they fail on the correct module in any of its runs
(a test file that fails, crashes, hangs, finds no test or is flaky on the correct module scores 0). Passed: the
tests pass on every run of the correct module and the score is at least `min_kill`.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from collector.errors import VerifierError
from collector.types import Verdict
from collector.verifiers._answers import verdict
from collector.verifiers.spec import VerifierSpec, VerifyContext

__all__ = ["DEFAULT_MIN_KILL", "check_mutation_score", "program", "validate_mutation"]

DEFAULT_MIN_KILL = 0.6
_TIMEOUT_S = 60.0
_FIELDS = ("module", "tests_path", "source", "names", "mutants")


@lru_cache(maxsize=1)
def _driver() -> str:
    return Path(__file__).with_name("_mutation_driver.py").read_text(encoding="utf-8")


def validate_mutation(spec: VerifierSpec) -> dict[str, Any]:
    """The checked `expected` of a mutation_score spec.

    Raises:
        VerifierError: a field is missing or of the wrong type.
    """
    cfg = spec.expected
    if not isinstance(cfg, dict) or any(k not in cfg for k in _FIELDS):
        raise VerifierError(f"mutation_score verifier: 'expected' must be an object with {', '.join(_FIELDS)} "
                            "(and optionally min_kill)")
    if not all(isinstance(cfg[k], str) and cfg[k] for k in ("module", "tests_path", "source")):
        raise VerifierError("mutation_score verifier: 'module', 'tests_path' and 'source' must be non-empty strings")
    if not cfg["module"].isidentifier():
        raise VerifierError(f"mutation_score verifier: module {cfg['module']!r} is not a Python identifier")
    if not isinstance(cfg["names"], list) or not cfg["names"] or not all(
            isinstance(n, str) and n.isidentifier() for n in cfg["names"]):
        raise VerifierError("mutation_score verifier: 'names' must be a non-empty list of function names")
    if not isinstance(cfg["mutants"], list) or not cfg["mutants"] or not all(isinstance(m, str) for m in cfg["mutants"]):
        raise VerifierError("mutation_score verifier: 'mutants' must be a non-empty list of module sources")
    min_kill = cfg.get("min_kill", DEFAULT_MIN_KILL)
    if not isinstance(min_kill, (int, float)) or not 0 < min_kill <= 1:
        raise VerifierError(f"mutation_score verifier: min_kill must be in (0, 1], got {min_kill!r}")
    return cfg


def program(cfg: dict[str, Any], tests: str, marker: str) -> str:
    """The run_python program that scores `tests` against the module and its mutants."""
    run = {**{k: cfg[k] for k in _FIELDS}, "tests": tests, "marker": marker}
    return _driver() + f"\n\nmain(json.loads({json.dumps(json.dumps(run))}))\n"


def _report(result: dict[str, Any], marker: str) -> dict[str, Any] | None:
    for line in str(result.get("stdout") or "").splitlines():
        if line.startswith(marker + " "):
            try:
                report = json.loads(line[len(marker) + 1:])
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) and isinstance(report.get("runs"), list) else None
    return None


async def check_mutation_score(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Score the workspace's test file by the mutants it kills (see the module docstring)."""
    cfg = validate_mutation(spec)
    if ctx.run_python is None:
        raise VerifierError("mutation_score verifier: the context has no run_python (attach the exec server)")
    if ctx.files is None:
        return verdict(False, reason="no snapshot of the workspace files (is the files server attached?)")
    tests = ctx.files.get(cfg["tests_path"])
    if tests is None or not tests.strip():
        return verdict(False, reason=f"no test file {cfg['tests_path']!r} in the workspace")
    marker = "MCPGYM-MUTATION-" + secrets.token_hex(8)
    try:
        result = await ctx.run_python(program(cfg, tests, marker), _TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the sandbox failed: a failed verdict, reported
        return {"passed": False, "score": 0.0, "details": {"reason": "running the tests failed"},
                "error": f"{type(exc).__name__}: {exc}"}
    report = _report(result, marker)
    if report is None:
        stderr = str(result.get("stderr") or result.get("error") or "")[-500:]
        return verdict(False, reason="the scoring run ended without a report", stderr=stderr)
    runs = report["runs"]
    correct = [r for r in runs if r.get("variant") == "correct"]
    mutants = [r for r in runs if r.get("variant") != "correct"]
    killed = sum(1 for r in mutants if not r.get("passed"))
    clean = bool(correct) and all(r.get("passed") for r in correct) and report.get("protected") is True
    share = killed / len(mutants) if mutants else 0.0
    min_kill = float(cfg.get("min_kill", DEFAULT_MIN_KILL))
    failure = next((r.get("detail", "") for r in correct if not r.get("passed")), "")
    details: dict[str, Any] = {
        "passes_on_correct": clean,
        "correct_runs": len(correct),
        "mutants": len(mutants),
        "killed": killed,
        "kill_share": round(share, 4),
        "min_kill": min_kill,
        "isolated": report.get("protected") is True,
    }
    if failure:
        details["failure_on_correct"] = failure[-800:]
    return verdict(clean and share >= min_kill, share if clean else 0.0, **details)
