"""Verifiers of what the episode did: file_state (final workspace), unit_tests (sandboxed tests), expected_calls."""

from __future__ import annotations

import math
import posixpath
from typing import Any

from collector.errors import VerifierError
from collector.types import Verdict
from collector.verifiers._answers import verdict
from collector.verifiers._extract import Ambiguous, extract_code
from collector.verifiers.spec import VerifierSpec, VerifyContext

__all__ = ["calls_match", "check_expected_calls", "check_file_state", "check_unit_tests", "validate_calls"]


def _norm_path(path: str) -> str:
    p = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
    return "" if p == "." else p


def _same_text(got: str, want: str) -> bool:
    # a missing or extra final newline is not a difference; CRLF equals LF
    return got.replace("\r\n", "\n").rstrip("\n") == want.replace("\r\n", "\n").rstrip("\n")


def check_file_state(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Compare the workspace's final files with `files` {path: content, or None for "must not exist"}: equality
    (ignoring a final newline and CRLF) or, with `contains`, substring. Score: the fraction of files that are right.
    """
    if not spec.files:
        raise VerifierError("file_state verifier: 'files' is required: {relative path: expected text or null}")
    for path in spec.files:
        if not _norm_path(path) or _norm_path(path).startswith(".."):
            raise VerifierError(f"file_state verifier: path {path!r} must be relative and inside the workspace")
    if ctx.files is None:
        return verdict(False, reason="no snapshot of the workspace files (is the files server attached?)")
    actual = {_norm_path(p): text for p, text in ctx.files.items()}
    per_file: dict[str, str] = {}
    right = 0
    for path, want in spec.files.items():
        got = actual.get(_norm_path(path))
        if want is None:
            ok = got is None
            per_file[path] = "ok: absent" if ok else "should not exist"
        elif got is None:
            ok = False
            per_file[path] = "missing"
        else:
            ok = (want in got) if spec.contains else _same_text(got, want)
            per_file[path] = "ok" if ok else ("expected text not found" if spec.contains else "content differs")
        right += ok
    return verdict(right == len(spec.files), right / len(spec.files), files=per_file)


async def check_unit_tests(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Run `test_code` against the solution (the final answer's last ```python block, or the workspace file
    `solution_path`) in the sandbox through `ctx.run_tests`. Score: passed / total."""
    if not spec.test_code:
        raise VerifierError("unit_tests verifier: 'test_code' is required (Python test code, e.g. def check(...))")
    if ctx.run_tests is None:
        raise VerifierError("unit_tests verifier: the context has no run_tests (attach the exec server)")
    if spec.solution_path:
        code = (ctx.files or {}).get(_norm_path(spec.solution_path))
        if code is None:
            return verdict(False, reason=f"solution file {spec.solution_path!r} not found in the workspace")
    else:
        try:
            code = extract_code(ctx.final_answer, entry_point=spec.entry_point)
        except Ambiguous as exc:  # two candidate solutions: the answer does not say which one it gives
            return verdict(False, reason=str(exc))
    if not code.strip():
        return verdict(False, reason="no code in the final answer (put it in a ```python block)")
    try:
        result = await ctx.run_tests(code, spec.test_code, spec.entry_point)
    except Exception as exc:  # noqa: BLE001 - the sandbox failed: a failed verdict, reported, not a crash
        return {
            "passed": False,
            "score": 0.0,
            "details": {"reason": "running the tests failed"},
            "error": f"{type(exc).__name__}: {exc}",
        }
    total = int(result.get("total") or 0)
    passed_n = int(result.get("passed") or 0)
    details = {
        "tests_passed": passed_n,
        "tests_total": total,
        "timed_out": bool(result.get("timed_out")),
        "failures": list(result.get("failures") or [])[:5],
        "error": result.get("error"),
        "trusted": result.get("trusted") is True,  # judged outside the solution's process (an old server: False)
    }
    if total <= 0:
        return verdict(False, 0.0, **details)
    all_ok = passed_n == total and not result.get("timed_out") and not result.get("error")
    return verdict(all_ok, passed_n / total, **details)


def validate_calls(spec: VerifierSpec) -> list[dict[str, Any]]:
    """The expected calls of a spec, checked: a non-empty list of {"name": str, "arguments": dict}.

    Raises:
        VerifierError: the list is missing or malformed.
    """
    calls = spec.calls
    if not calls:
        raise VerifierError('expected_calls verifier: \'calls\' is required: [{"name": ..., "arguments": {...}}]')
    for i, call in enumerate(calls):
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise VerifierError(f"expected_calls verifier: calls[{i}] needs a 'name' (string)")
        if not isinstance(call.get("arguments", {}), dict):
            raise VerifierError(f"expected_calls verifier: calls[{i}].arguments must be an object")
        if not isinstance(call.get("defaults", {}), dict):
            raise VerifierError(f"expected_calls verifier: calls[{i}].defaults must be an object")
    return calls


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _bare(name: str) -> str:
    return name.rsplit("__", 1)[-1]


def calls_match(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Whether an actual call is the expected one: same (un-namespaced) name and equal arguments (1 == 1.0).

    An expected call may carry `defaults` (the schema defaults of the arguments it omits): an argument left out
    and the same argument given its default value are then the same call.
    """
    if _bare(str(actual.get("name", ""))) != _bare(expected["name"]):
        return False
    args = actual.get("arguments")
    if not isinstance(args, dict):
        return False
    defaults = expected.get("defaults") or {}
    return _same_value({**defaults, **args}, {**defaults, **(expected.get("arguments") or {})})


def check_expected_calls(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Match the calls made against `calls` (name and arguments; any order unless `ordered`). Score: matched
    calls / max(expected, made), so missing and extra calls both cost; passed only when they are the same set."""
    expected = validate_calls(spec)
    actual = list(ctx.tool_calls)
    matched: list[int] = []  # indexes of expected calls matched
    if spec.ordered:
        pos = 0
        for i, want in enumerate(expected):
            for j in range(pos, len(actual)):
                if calls_match(want, actual[j]):
                    matched.append(i)
                    pos = j + 1
                    break
    else:
        used: set[int] = set()
        for i, want in enumerate(expected):
            for j, got in enumerate(actual):
                if j not in used and calls_match(want, got):
                    used.add(j)
                    matched.append(i)
                    break
    denominator = max(len(expected), len(actual))
    missing = [expected[i] for i in range(len(expected)) if i not in matched]
    passed = len(matched) == len(expected) == len(actual)
    return verdict(
        passed,
        len(matched) / denominator,
        matched=len(matched),
        expected=len(expected),
        made=len(actual),
        missing=missing[:5],
    )
