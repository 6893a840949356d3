"""What a verifier reads: the spec of how to judge an episode, and the episode's context.

These types live with the verifiers (not with the tasks) so that `tasks`, `verifiers` and `policies` import each
other in one direction only: tasks -> verifiers.spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["VERIFIER_TYPES", "VerifierSpec", "VerifyContext"]

VERIFIER_TYPES = (
    "exact", "contains", "numeric", "math", "regex", "file_state", "unit_tests", "expected_calls", "tool_use",
    "mutation_score",
)


class VerifierSpec(BaseModel):
    """How to judge an episode. Which fields matter depends on `type`:

    - exact / contains: `expected` (str or list of accepted str), `case_sensitive`
    - numeric / math: `expected` (number or expression such as "12/5"), `tolerance` (absolute), `rel_tolerance`;
      numeric may name a `unit` ("°F", "km/h") to pick the number stated with that unit out of a free-text answer
    - regex: `pattern`
    - file_state: `files` {relative path: expected content or null for "must not exist"}, `contains` (substring
      match instead of equality)
    - unit_tests: `test_code`, `entry_point` (the solution is the final answer's code, or `solution_path` in the
      workspace)
    - expected_calls: `calls` [{"name", "arguments"}], `ordered`
    - tool_use: `calls` (expected calls with `accept`, `defaults`, `free`, `optional`; [] means no call), `ordered`,
      and `answer` (a nested spec the final answer must pass); see `collector.verifiers._tool_use`
    - mutation_score: `expected` {"module", "tests_path", "source", "names", "mutants", "min_kill"}: the
      workspace's test file must pass on the module and fail on at least `min_kill` of the mutants; see
      `collector.verifiers._mutation`
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal[
        "exact", "contains", "numeric", "math", "regex", "file_state", "unit_tests", "expected_calls", "tool_use",
        "mutation_score",
    ]
    expected: Any = None
    case_sensitive: bool = False
    tolerance: float = 1e-6
    rel_tolerance: float = 0.0
    unit: str | None = None
    pattern: str | None = None
    files: dict[str, str | None] | None = None
    contains: bool = False
    test_code: str | None = None
    entry_point: str | None = None
    solution_path: str | None = None
    calls: list[dict[str, Any]] | None = None
    ordered: bool = False
    answer: VerifierSpec | None = None


@dataclass
class VerifyContext:
    """What a verifier may look at: the final answer, the workspace's final files, the calls made, and (for
    unit_tests) a way to run tests in the sandbox through the exec server.

    Attributes:
        final_answer: the last assistant message's text ("" when the episode ended without one).
        files: relative path -> text of every file in the workspace at the end (None when no files server).
        tool_calls: the calls made, in order: {"name": un-namespaced tool name, "arguments": dict or None when
            the arguments were not valid JSON, "turn": the assistant turn that made it (optional)}.
        run_tests: async (code, test_code, entry_point) -> {"passed", "total", "failures", "timed_out", "error"}.
        run_python: async (code, timeout_s) -> the exec server's run_python result (mutation_score).
    """

    final_answer: str = ""
    files: dict[str, str] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    run_tests: Callable[[str, str, str | None], Awaitable[dict[str, Any]]] | None = None
    run_python: Callable[[str, float], Awaitable[dict[str, Any]]] | None = None
