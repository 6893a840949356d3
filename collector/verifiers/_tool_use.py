"""The `tool_use` verifier: which tools the episode called (and with what), and the answer it gave.

An expected call is `{"name", "arguments", "accept"?, "defaults"?, "free"?, "optional"?}`:

- `arguments`: values the call must carry (JSON equality, 1 == 1.0; strings compared without case and surrounding
  spaces);
- `accept`: for some arguments, every accepted value (`{"location": ["Munich", "Munich, Germany"]}`);
- `defaults`: arguments the call may spell out, but only with these values (a schema's defaults);
- `free`: arguments whose value does not matter (given or not);
- `optional`: the call may be absent (a first attempt that a tool error corrects, for instance);
- `together`: the calls marked so are independent and must come in one assistant turn (checked when the calls
  made carry their `turn`, as the episode loop's do).

Any other argument in a call, a call that matches no expected call, or a missing required call fails. An empty
`calls` list means the episode must make no call at all. `answer` (a nested spec of any type) judges the final
answer; both must pass.
"""

from __future__ import annotations

import math
from typing import Any

from collector.errors import VerifierError
from collector.types import Verdict
from collector.verifiers._answers import verdict
from collector.verifiers.spec import VerifierSpec, VerifyContext

__all__ = ["check_tool_use", "tool_call_matches", "validate_tool_use"]

_CALL_KEYS = {"name", "arguments", "accept", "defaults", "free", "optional", "together"}


def validate_tool_use(spec: VerifierSpec) -> list[dict[str, Any]]:
    """The expected calls of a tool_use spec, checked.

    Raises:
        VerifierError: `calls` is missing, or an expected call is malformed (the message names it).
    """
    if spec.calls is None:
        raise VerifierError(
            'tool_use verifier: \'calls\' is required: [{"name": ..., "arguments": {...}}], or [] for "no call"'
        )
    for i, call in enumerate(spec.calls):
        where = f"tool_use verifier: calls[{i}]"
        unknown = set(call) - _CALL_KEYS
        if unknown:
            raise VerifierError(f"{where}: unknown keys {sorted(unknown)}; accepted: {', '.join(sorted(_CALL_KEYS))}")
        if not isinstance(call.get("name"), str) or not call["name"]:
            raise VerifierError(f"{where} needs a 'name' (string)")
        for key in ("arguments", "accept", "defaults"):
            if not isinstance(call.get(key, {}), dict):
                raise VerifierError(f"{where}.{key} must be an object")
        if any(not isinstance(v, list) or not v for v in (call.get("accept") or {}).values()):
            raise VerifierError(f"{where}.accept must map argument names to non-empty lists of accepted values")
        if not isinstance(call.get("free", []), list):
            raise VerifierError(f"{where}.free must be a list of argument names")
        for flag in ("optional", "together"):
            if not isinstance(call.get(flag, False), bool):
                raise VerifierError(f"{where}.{flag} must be true or false")
    return list(spec.calls)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _bare(name: str) -> str:
    return name.rsplit("__", 1)[-1]


def tool_call_matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Whether a call made (`{"name", "arguments"}`) is the expected call (see the module docstring)."""
    if _bare(str(actual.get("name", ""))) != _bare(expected["name"]):
        return False
    args = actual.get("arguments")
    if not isinstance(args, dict):
        return False
    want: dict[str, Any] = expected.get("arguments") or {}
    accept: dict[str, list[Any]] = expected.get("accept") or {}
    defaults: dict[str, Any] = expected.get("defaults") or {}
    free = set(expected.get("free") or [])
    for key in {*want, *accept}:
        if key not in args:
            return False
        options = accept.get(key, [want[key]] if key in want else [])
        if not any(_same(args[key], option) for option in options):
            return False
    for key, value in args.items():
        if key in want or key in accept or key in free:
            continue
        if key not in defaults or not _same(value, defaults[key]):
            return False
    return True


def _match(
    expected: list[dict[str, Any]], actual: list[dict[str, Any]], ordered: bool
) -> tuple[dict[int, int], set[int]]:
    """({expected index: actual index} of the matches, indexes of actual calls matched)."""
    used_e: dict[int, int] = {}
    used_a: set[int] = set()
    if ordered:
        i = 0
        for j, call in enumerate(actual):
            k = i
            while k < len(expected) and not tool_call_matches(expected[k], call):
                if not expected[k].get("optional"):
                    break
                k += 1
            if k < len(expected) and tool_call_matches(expected[k], call):
                used_e[k] = j
                used_a.add(j)
                i = k + 1
        return used_e, used_a
    for j, call in enumerate(actual):
        for i, want in enumerate(expected):
            if i not in used_e and tool_call_matches(want, call):
                used_e[i] = j
                used_a.add(j)
                break
    return used_e, used_a


async def check_tool_use(spec: VerifierSpec, ctx: VerifyContext) -> Verdict:
    """Judge the calls made (exactly the expected ones, optional ones aside) and the final answer (`answer`).

    Score: the calls' share (calls matched / max(required calls, calls made), 1.0 for "no call" and none made) times
    the answer's score.
    """
    from collector.verifiers import verify

    expected = validate_tool_use(spec)
    actual = list(ctx.tool_calls)
    used_e, used_a = _match(expected, actual, spec.ordered)
    required = [i for i, c in enumerate(expected) if not c.get("optional")]
    missing = [expected[i]["name"] for i in required if i not in used_e]
    unexpected = [str(actual[j].get("name")) for j in range(len(actual)) if j not in used_a]
    together = [actual[j].get("turn") for i, j in used_e.items() if expected[i].get("together")]
    split_turns = None not in together and len(set(together)) > 1
    calls_ok = not missing and not unexpected and not split_turns
    denominator = max(len(required), len(actual))
    calls_score = 1.0 if denominator == 0 else len(used_a) / denominator
    details: dict[str, Any] = {
        "calls_ok": calls_ok,
        "made": len(actual),
        "expected": len(required),
        "missing": missing[:5],
        "unexpected": unexpected[:5],
        "independent_calls_in_one_turn": not split_turns,
    }
    if spec.answer is None:
        return verdict(calls_ok, calls_score, **details)
    answer = await verify(spec.answer, ctx)
    details["answer"] = {"passed": answer["passed"], **(answer.get("details") or {})}
    return verdict(calls_ok and bool(answer["passed"]), calls_score * float(answer["score"]), **details)
