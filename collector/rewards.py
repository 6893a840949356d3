"""Reward components of an episode: plain, pure functions shared by collection and training (GRPO).

The formulas (docs/architecture.md, "The reward"):

- success: 10 when the verifier passed the episode, else 0 (the verdict; partial credit of code tasks is the code
  component's, so it is not counted twice);
- efficiency: `2 * max(0, 1 - (actual - optimal) / optimal)` clamped to [0, 2], where actual is the number of calls
  emitted (malformed ones included) and optimal the task's `optimal_steps`; only for passed episodes (a fast wrong
  answer earns nothing); with optimal 0, 2 for an episode without calls and 0 otherwise;
- tool_use: 0.5 per correct call (well formed, ran without error), counted up to `optimal_steps` calls (a guard
  against call spamming);
- format: 1 when every call was well formed and the episode ended with a final answer;
- code (unit-test tasks only): the mean over tests of 1 (passed), 0 (failed an assertion), -0.5 (raised anything
  else); every test counts -0.5 when the whole run crashed or timed out (`collector.episode.code_reward`).
"""

from __future__ import annotations

__all__ = [
    "CODE_CRASH",
    "CODE_PASS",
    "CODE_WEIGHT",
    "EFFICIENCY_WEIGHT",
    "FORMAT_WEIGHT",
    "SUCCESS_WEIGHT",
    "TOOL_USE_WEIGHT",
    "efficiency_reward",
    "format_reward",
    "reward_components",
    "success_reward",
    "tool_use_reward",
    "total_reward",
]

SUCCESS_WEIGHT = 10.0
EFFICIENCY_WEIGHT = 2.0
TOOL_USE_WEIGHT = 0.5
FORMAT_WEIGHT = 1.0
CODE_WEIGHT = 1.0
CODE_PASS = 1.0
"""A test that passed."""
CODE_CRASH = -0.5
"""A test that raised something other than an assertion error (every test, when the whole run crashed)."""


def success_reward(passed: bool) -> float:
    """10 when the verifier passed the episode, else 0."""
    return SUCCESS_WEIGHT if passed else 0.0


def efficiency_reward(passed: bool, tool_calls: int, optimal_steps: int) -> float:
    """`2 * max(0, 1 - (actual - optimal) / optimal)` clamped to [0, 2], for a passed episode (0 when not passed).

    At or under `optimal_steps` calls the episode gets the full 2; at twice the optimal it gets 0.
    """
    if not passed:
        return 0.0
    actual = max(int(tool_calls), 0)
    optimal = max(int(optimal_steps), 0)
    if optimal == 0:
        return EFFICIENCY_WEIGHT if actual == 0 else 0.0
    value = EFFICIENCY_WEIGHT * max(0.0, 1.0 - (actual - optimal) / optimal)
    return min(max(value, 0.0), EFFICIENCY_WEIGHT)


def tool_use_reward(ok_tool_calls: int, optimal_steps: int) -> float:
    """0.5 per correct tool call (well formed, ran without error), counted up to `optimal_steps` calls."""
    return TOOL_USE_WEIGHT * min(max(ok_tool_calls, 0), max(optimal_steps, 0))


def format_reward(malformed_calls: int, has_final_answer: bool) -> float:
    """1 when every call was well formed and the episode ended with a final text answer, else 0."""
    return FORMAT_WEIGHT if malformed_calls == 0 and has_final_answer else 0.0


def reward_components(*, passed: bool, tool_calls: int, ok_tool_calls: int, malformed_calls: int,
                      has_final_answer: bool, optimal_steps: int, code: float | None = None) -> dict[str, float]:
    """All components of an episode's reward.

    Args:
        passed: the verifier's verdict.
        tool_calls: calls the model emitted (malformed ones included).
        ok_tool_calls: calls that were well formed and returned without error.
        malformed_calls: calls the model wrote wrongly (`collector.tools.MALFORMED_KINDS`), each counted once.
        has_final_answer: the episode ended with a final assistant text.
        optimal_steps: the task's hint of how many calls a good solution needs.
        code: the code reward in [-0.5, 1] of a unit-test task (None for other tasks: no "code" component).

    Returns:
        `{"success", "efficiency", "tool_use", "format"}`, plus `"code"` for unit-test tasks.
    """
    out = {
        "success": success_reward(passed),
        "efficiency": efficiency_reward(passed, tool_calls, optimal_steps),
        "tool_use": tool_use_reward(ok_tool_calls, optimal_steps),
        "format": format_reward(malformed_calls, has_final_answer),
    }
    if code is not None:
        out["code"] = CODE_WEIGHT * float(code)
    return out


def total_reward(components: dict[str, float]) -> float:
    """The sum of the components."""
    return float(sum(components.values()))
