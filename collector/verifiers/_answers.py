"""Verifiers of the final answer's text: exact, contains, numeric, math, regex.

exact, contains, numeric and math read the answer value the reply declares (its last `Answer:` line, see
`_extract.answer_value`), and fail an answer value that names more than one candidate: a list of names, two
different numbers, two different values, so that hedging cannot pass. regex searches the whole reply, as written.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction
from typing import Any

from collector.errors import VerifierError
from collector.types import Verdict
from collector.verifiers._extract import Ambiguous, answer_value, find_math_answer, list_items, normalize, pick_number
from collector.verifiers._safe_math import MathParseError, Number, to_number
from collector.verifiers.spec import VerifierSpec

__all__ = ["accepted_strings", "check_contains", "check_exact", "check_math", "check_numeric", "check_regex"]


def verdict(passed: bool, score: float | None = None, **details: Any) -> Verdict:
    """Build a Verdict; `score` defaults to 1.0 / 0.0 from `passed`."""
    value = (1.0 if passed else 0.0) if score is None else max(0.0, min(1.0, float(score)))
    return {"passed": passed, "score": value, "details": details}


def accepted_strings(spec: VerifierSpec) -> list[str]:
    """The accepted answers of an exact/contains spec (`expected` as one string or a list of strings).

    Raises:
        VerifierError: `expected` is missing, empty, or not strings.
    """
    expected = spec.expected
    if isinstance(expected, str):
        expected = [expected]
    if not isinstance(expected, list) or not expected or not all(isinstance(e, str) and e.strip() for e in expected):
        raise VerifierError(
            f"{spec.type} verifier: 'expected' must be a non-empty string or a list of non-empty strings, "
            f"got {spec.expected!r}"
        )
    return list(expected)


def check_exact(spec: VerifierSpec, answer: str) -> Verdict:
    """Pass when the answer value (the last `Answer:` line, or the whole reply) equals one of the accepted strings
    once normalized (case-insensitive unless `case_sensitive`; whitespace collapsed; surrounding quotes, markdown
    emphasis and final punctuation ignored)."""
    accepted = accepted_strings(spec)
    value = answer_value(answer)
    got = normalize(value, case_sensitive=spec.case_sensitive)
    for option in accepted:
        if got == normalize(option, case_sensitive=spec.case_sensitive):
            return verdict(True, matched=option, answer=got)
    if list_items(value):
        return verdict(False, answer=got[:200], accepted=accepted, reason="the answer names more than one candidate")
    return verdict(False, answer=got[:200], accepted=accepted)


_MARK = "\ue000"  # stands for an accepted phrase while an answer is split into items


def check_contains(spec: VerifierSpec, answer: str) -> Verdict:
    """Pass when one of the accepted strings occurs in the answer value (the last `Answer:` line, or the whole
    reply) as a whole word or phrase (so "Lima" is not found in "Limassol"), and the answer value is not a list of
    short alternatives ("London, Berlin, Madrid, Paris" fails for Paris); case-insensitive unless
    `case_sensitive`."""
    accepted = accepted_strings(spec)
    value = answer_value(answer)
    text = normalize(value, case_sensitive=spec.case_sensitive)
    needles = [normalize(option, case_sensitive=spec.case_sensitive) for option in accepted]
    flags = 0 if spec.case_sensitive else re.IGNORECASE
    for option, needle in zip(accepted, needles, strict=True):
        if re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", text):
            # each accepted phrase counts as one item, even one with a comma in it ("5, 11")
            marked = unicodedata.normalize("NFKC", value)
            for other in sorted(needles, key=len, reverse=True):
                words = r"\s+".join(re.escape(w) for w in other.split())
                marked = re.sub(r"(?<!\w)" + words + r"(?!\w)", _MARK, marked, flags=flags)
            items = list_items(marked) or []
            others = [i for i in items if i != _MARK]
            if others:
                return verdict(
                    False,
                    accepted=accepted,
                    answer_excerpt=text[:200],
                    reason="the answer names more than one candidate: "
                    + ", ".join(i.replace(_MARK, option) for i in items[:5]),
                )
            return verdict(True, matched=option)
    return verdict(False, accepted=accepted, answer_excerpt=text[:200])


def _check_spec_tolerances(spec: VerifierSpec) -> None:
    if spec.tolerance < 0 or spec.rel_tolerance < 0 or not math.isfinite(spec.tolerance + spec.rel_tolerance):
        raise VerifierError(
            f"{spec.type} verifier: 'tolerance' and 'rel_tolerance' must be finite and >= 0, "
            f"got {spec.tolerance!r} and {spec.rel_tolerance!r}"
        )


def _expected_number(spec: VerifierSpec) -> Number:
    if spec.expected is None:
        raise VerifierError(f"{spec.type} verifier: 'expected' is required (a number or an expression such as '12/5')")
    try:
        return to_number(spec.expected)
    except MathParseError as exc:
        raise VerifierError(
            f"{spec.type} verifier: 'expected' must be a number or an arithmetic expression, got "
            f"{spec.expected!r} ({exc})"
        ) from None


def _close(got: Number, want: Number, spec: VerifierSpec) -> bool:
    if isinstance(got, Fraction) and isinstance(want, Fraction) and got == want:
        return True
    diff = abs(float(got) - float(want))
    return diff <= spec.tolerance or diff <= spec.rel_tolerance * abs(float(want))


def check_numeric(spec: VerifierSpec, answer: str) -> Verdict:
    """Pass when the one number the answer value states is within `tolerance` (absolute) or `rel_tolerance`
    (relative) of `expected`. The answer value is the last `Answer:` line, or the whole reply; asides in parentheses
    are not read ("19.1 °C (feels like 17 °C)" states 19.1). With a `unit`, the numbers followed by it are the
    candidates (with a bare number offered as their alternative or range, "19 or 20 °C"); an answer that states
    several different numbers fails."""
    _check_spec_tolerances(spec)
    want = _expected_number(spec)
    try:
        found = pick_number(answer_value(answer), spec.unit)
    except Ambiguous as exc:
        return verdict(False, expected=float(want), reason=str(exc))
    if found is None:
        return verdict(False, expected=float(want), reason="no number in the answer")
    passed = _close(Fraction(str(found.value)), want, spec)
    return verdict(passed, expected=float(want), got=found.value, error=abs(found.value - float(want)))


def check_math(spec: VerifierSpec, answer: str) -> Verdict:
    """Pass when the answer's value is mathematically equal to `expected` (`12/5`, `2.4`, `240%` of 1, and
    `\\frac{12}{5}` are the same), within `tolerance` for irrational values. The value is the reply's `\\boxed{}`,
    or its answer value (the last `Answer:` line, or the whole reply); a reply that gives several different values
    ("The answer is 3, not 12/5") fails. Expressions are evaluated by a safe arithmetic parser, never by `eval`."""
    _check_spec_tolerances(spec)
    want = _expected_number(spec)
    try:
        found = find_math_answer(answer)
    except Ambiguous as exc:
        return verdict(False, expected=str(spec.expected), reason=str(exc))
    if found is None:
        return verdict(False, expected=str(spec.expected), reason="no arithmetic value found in the answer")
    text, got = found
    return verdict(_close(got, want, spec), expected=str(spec.expected), got=text, value=float(got))


def check_regex(spec: VerifierSpec, answer: str) -> Verdict:
    """Pass when `pattern` matches somewhere in the answer (re.search; DOTALL and MULTILINE; IGNORECASE unless
    `case_sensitive`)."""
    if not spec.pattern:
        raise VerifierError("regex verifier: 'pattern' is required (a Python regular expression)")
    flags = re.DOTALL | re.MULTILINE | (0 if spec.case_sensitive else re.IGNORECASE)
    try:
        compiled = re.compile(spec.pattern, flags)
    except re.error as exc:
        raise VerifierError(f"regex verifier: 'pattern' {spec.pattern!r} is not a valid regular expression: {exc}")
    match = compiled.search(answer)
    if match is None:
        return verdict(False, pattern=spec.pattern)
    return verdict(True, pattern=spec.pattern, matched=match.group(0)[:200])
