"""Reward components: pure functions with the seed's formulas, pinned on worked examples."""

from __future__ import annotations

import pytest

from collector.episode import code_reward
from collector.rewards import efficiency_reward, reward_components, total_reward


def test_perfect_episode() -> None:
    c = reward_components(passed=True, tool_calls=2, ok_tool_calls=2, malformed_calls=0,
                          has_final_answer=True, optimal_steps=2)
    assert c == {"success": 10.0, "efficiency": 2.0, "tool_use": 1.0, "format": 1.0}
    assert total_reward(c) == 14.0


@pytest.mark.parametrize(("actual", "optimal", "expected"), [
    (2, 1, 0.0),  # twice the optimal steps: 0
    (4, 2, 0.0),
    (3, 2, 1.0),  # 2 * (1 - 1/2)
    (5, 4, 1.5),  # 2 * (1 - 1/4)
    (1, 2, 2.0),  # under the optimal: clamped to 2
    (0, 1, 2.0),
    (9, 2, 0.0),  # far over: clamped to 0, never negative
    (0, 0, 2.0),  # a task that needs no call, and none made
    (1, 0, 0.0),
])
def test_efficiency_follows_the_seed_curve(actual: int, optimal: int, expected: float) -> None:
    assert efficiency_reward(True, actual, optimal) == pytest.approx(expected)


def test_efficiency_is_gated_on_success() -> None:
    assert efficiency_reward(False, 1, 1) == 0.0


def test_inefficient_and_malformed_episode() -> None:
    c = reward_components(passed=True, tool_calls=4, ok_tool_calls=3, malformed_calls=1,
                          has_final_answer=True, optimal_steps=1)
    assert c["efficiency"] == 0.0  # 4 calls for 1: past twice the optimal
    assert c["tool_use"] == 0.5  # capped at optimal_steps
    assert c["format"] == 0.0


def test_failed_episode_gets_neither_success_nor_efficiency() -> None:
    c = reward_components(passed=False, tool_calls=0, ok_tool_calls=0, malformed_calls=0,
                          has_final_answer=False, optimal_steps=1)
    assert c == {"success": 0.0, "efficiency": 0.0, "tool_use": 0.0, "format": 0.0}


def _failure(test: int, error: str) -> dict[str, object]:
    return {"test": test, "name": f"t{test}", "line": test + 1, "error": error}


def test_code_reward_one_crashing_test_of_four() -> None:
    report = {"passed": 3, "total": 4, "failures": [_failure(2, "ZeroDivisionError: division by zero")],
              "timed_out": False, "error": None}
    assert code_reward(report) == pytest.approx(0.625)  # (1 + 1 + 1 - 0.5) / 4


def test_code_reward_failed_assertions_count_zero() -> None:
    report = {"passed": 2, "total": 4, "failures": [_failure(0, "AssertionError"), _failure(3, "AssertionError: 1 != 2")],
              "timed_out": False, "error": None}
    assert code_reward(report) == pytest.approx(0.5)


@pytest.mark.parametrize("report", [
    {"passed": 0, "total": 4, "failures": [], "timed_out": False, "error": "the solution raised SyntaxError: x"},
    {"passed": 2, "total": 4, "failures": [], "timed_out": True, "error": "timed out after 5.0s"},
    {"passed": 0, "total": 0, "failures": [], "timed_out": False, "error": None},
    None,
])
def test_code_reward_a_crashed_run_counts_every_test_minus_half(report: dict[str, object] | None) -> None:
    assert code_reward(report) == -0.5


def test_code_is_its_own_component_not_counted_in_success() -> None:
    c = reward_components(passed=False, tool_calls=0, ok_tool_calls=0, malformed_calls=0, has_final_answer=True,
                          optimal_steps=0, code=0.625)
    assert c == {"success": 0.0, "efficiency": 0.0, "tool_use": 0.0, "format": 1.0, "code": 0.625}
