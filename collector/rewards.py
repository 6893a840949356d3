"""Reward components of an episode: plain, pure functions shared by collection and training (GRPO)."""

from __future__ import annotations

__all__ = [
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


def success_reward(score: float) -> float:
    """10 x the verifier's score (clamped to [0, 1])."""
    return SUCCESS_WEIGHT * min(max(float(score), 0.0), 1.0)


def efficiency_reward(passed: bool, tool_calls: int, optimal_steps: int) -> float:
    """Up to 2 for a passed episode, scaled by optimal_steps / tool calls made (0 when not passed).

    An episode that needed no tools and made none, or made at most `optimal_steps` calls, gets the full 2.
    """
    if not passed:
        return 0.0
    if tool_calls <= max(optimal_steps, 0):
        return EFFICIENCY_WEIGHT
    return EFFICIENCY_WEIGHT * max(optimal_steps, 0) / tool_calls


def tool_use_reward(ok_tool_calls: int, optimal_steps: int) -> float:
    """0.5 per correct tool use (well-formed call that did not error), counted up to `optimal_steps` calls."""
    return TOOL_USE_WEIGHT * min(max(ok_tool_calls, 0), max(optimal_steps, 0))


def format_reward(malformed_calls: int, has_final_answer: bool) -> float:
    """1 when every call was well formed and the episode ended with a final text answer, else 0."""
    return FORMAT_WEIGHT if malformed_calls == 0 and has_final_answer else 0.0


def reward_components(*, score: float, passed: bool, tool_calls: int, ok_tool_calls: int, malformed_calls: int,
                      has_final_answer: bool, optimal_steps: int) -> dict[str, float]:
    """All components of an episode's reward.

    Args:
        score: the verifier's score in [0, 1].
        passed: the verifier's verdict.
        tool_calls: calls the model emitted (malformed ones included).
        ok_tool_calls: calls that were well formed and returned without error.
        malformed_calls: unknown tool, invalid JSON or schema-violating calls.
        has_final_answer: the episode ended with a final assistant text.
        optimal_steps: the task's hint of how many calls a good solution needs.

    Returns:
        `{"success", "efficiency", "tool_use", "format"}`.
    """
    return {
        "success": success_reward(score),
        "efficiency": efficiency_reward(passed, tool_calls, optimal_steps),
        "tool_use": tool_use_reward(ok_tool_calls, optimal_steps),
        "format": format_reward(malformed_calls, has_final_answer),
    }


def total_reward(components: dict[str, float]) -> float:
    """The sum of the components."""
    return float(sum(components.values()))
