"""Reward components: pure functions with the documented weights."""

from __future__ import annotations

from collector.rewards import reward_components, total_reward


def test_perfect_episode() -> None:
    c = reward_components(score=1.0, passed=True, tool_calls=2, ok_tool_calls=2, malformed_calls=0,
                          has_final_answer=True, optimal_steps=2)
    assert c == {"success": 10.0, "efficiency": 2.0, "tool_use": 1.0, "format": 1.0}
    assert total_reward(c) == 14.0


def test_inefficient_and_malformed_episode() -> None:
    c = reward_components(score=1.0, passed=True, tool_calls=4, ok_tool_calls=3, malformed_calls=1,
                          has_final_answer=True, optimal_steps=1)
    assert c["efficiency"] == 0.5  # 2 * 1/4
    assert c["tool_use"] == 0.5  # capped at optimal_steps
    assert c["format"] == 0.0


def test_failed_episode_gets_no_efficiency_and_partial_score() -> None:
    c = reward_components(score=0.25, passed=False, tool_calls=0, ok_tool_calls=0, malformed_calls=0,
                          has_final_answer=False, optimal_steps=1)
    assert c == {"success": 2.5, "efficiency": 0.0, "tool_use": 0.0, "format": 0.0}
