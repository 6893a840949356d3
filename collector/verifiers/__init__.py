"""Verifiers: judge an episode from its final answer, final workspace and calls; `verify(spec, ctx) -> Verdict`."""

from __future__ import annotations

from collector.errors import VerifierError
from collector.types import Verdict
from collector.verifiers._answers import (
    accepted_strings,
    check_contains,
    check_exact,
    check_math,
    check_numeric,
    check_regex,
)
from collector.verifiers._mutation import check_mutation_score, validate_mutation
from collector.verifiers._state import check_expected_calls, check_file_state, check_unit_tests
from collector.verifiers._tool_use import check_tool_use, validate_tool_use
from collector.verifiers.spec import VERIFIER_TYPES, VerifierSpec, VerifyContext

__all__ = ["VERIFIER_TYPES", "validate_spec", "verify"]

_PROBE = VerifyContext(final_answer="", files={}, tool_calls=[])


def validate_spec(spec: VerifierSpec) -> None:
    """Check that a spec is usable (required fields present and well-formed) without judging any answer.

    Args:
        spec: the verifier spec.

    Raises:
        VerifierError: the spec is invalid; the message names the field and what it accepts.
    """
    if spec.type in ("exact", "contains"):
        accepted_strings(spec)
    elif spec.type == "numeric":
        check_numeric(spec, "")
    elif spec.type == "math":
        check_math(spec, "")
    elif spec.type == "regex":
        check_regex(spec, "")
    elif spec.type == "file_state":
        check_file_state(spec, _PROBE)
    elif spec.type == "unit_tests":
        if not spec.test_code:
            raise VerifierError("unit_tests verifier: 'test_code' is required (Python test code, e.g. def check(...))")
    elif spec.type == "expected_calls":
        check_expected_calls(spec, _PROBE)
    elif spec.type == "mutation_score":
        validate_mutation(spec)
    elif spec.type == "tool_use":
        validate_tool_use(spec)
        if spec.answer is not None:
            validate_spec(spec.answer)


async def verify(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Judge one episode.

    Args:
        spec: what to check (see VerifierSpec for the fields of each type).
        ctx: the episode's final answer, final files, calls, and a way to run tests.

    Returns:
        `{"passed", "score", "details"}`; a wrong or unparseable answer is a failed Verdict, never an exception.

    Raises:
        VerifierError: the spec itself is invalid (a missing field, a bad regex, an unknown type).
    """
    answer = ctx.final_answer or ""
    if spec.type == "exact":
        return check_exact(spec, answer)
    if spec.type == "contains":
        return check_contains(spec, answer)
    if spec.type == "numeric":
        return check_numeric(spec, answer)
    if spec.type == "math":
        return check_math(spec, answer)
    if spec.type == "regex":
        return check_regex(spec, answer)
    if spec.type == "file_state":
        return check_file_state(spec, ctx)
    if spec.type == "unit_tests":
        return await check_unit_tests(spec, ctx)
    if spec.type == "expected_calls":
        return check_expected_calls(spec, ctx)
    if spec.type == "tool_use":
        return await check_tool_use(spec, ctx)
    if spec.type == "mutation_score":
        return await check_mutation_score(spec, ctx)
    raise VerifierError(f"unknown verifier type {spec.type!r}; accepted: {', '.join(VERIFIER_TYPES)}")
