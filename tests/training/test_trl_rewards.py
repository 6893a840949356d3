"""The TRL reward functions on hand-made completions (tests/training/test_trl_rewards.py mirrors training/rewards.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from episode_factory import WEATHER_TOOL

from training import rewards
from training.rewards import (
    RewardWeights,
    code_tests_reward,
    efficiency_reward,
    format_reward,
    reward_functions,
    success_reward,
    summarize,
    tool_use_reward,
    total_reward,
)

TASK = {
    "id": "weather-paris", "family": "weather", "split": "train", "optimal_steps": 1, "servers": ["weather", "files"],
    "messages": [{"role": "user", "content": "Temperature in Paris?"}],
    "verifier": {"type": "numeric", "expected": 21, "tolerance": 0.5},
}
TOOLS = [WEATHER_TOOL]


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": arguments}}]}


def tool(content: str) -> dict[str, Any]:
    return {"role": "tool", "name": "weather__get_weather", "content": content}


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


PERFECT = [call("weather__get_weather", {"city": "Paris"}), tool('{"temperature_c": 21}'), answer("It is 21 °C.")]
WRONG = [call("weather__get_weather", {"city": "Paris"}), tool('{"temperature_c": 21}'), answer("It is 30 °C.")]
SLOW = [call("weather__get_weather", {"city": "Paris"}), tool('{"temperature_c": 21}'),
        call("weather__get_weather", {"city": "Paris", "units": "metric"}), tool('{"temperature_c": 21}'),
        answer("21 degrees.")]
UNOFFERED = [call("get_forecast", {"city": "Paris"}), tool("{'error': 'Tool get_forecast not found.'}"),
             answer("It is 21 °C.")]
RAW_TAG = [answer('<tool_call>{"name": "weather__get_weather", "arguments": {"city": "Par</tool_call>')]
ERRORED = [call("weather__get_weather", {"city": "Paris"}), tool("Error: upstream weather service timed out"),
           answer("I could not find out.")]


def score(fn: Any, *completions: list[dict[str, Any]]) -> list[float | None]:
    n = len(completions)
    result: list[float | None] = fn(list(completions), task=[TASK] * n, tools=[TOOLS] * n)
    return result


def test_success_reads_the_verifier() -> None:
    assert score(success_reward, PERFECT, WRONG, "The answer is 21.") == [1.0, 0.0, 1.0]


def test_efficiency_against_optimal_steps() -> None:
    assert score(efficiency_reward, PERFECT, SLOW, WRONG) == [1.0, 0.0, 0.0]  # SLOW: twice the optimal steps


def test_tool_use_counts_correct_calls_up_to_optimal() -> None:
    assert score(tool_use_reward, PERFECT, SLOW, UNOFFERED, ERRORED, RAW_TAG) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_format_validity() -> None:
    no_answer = PERFECT[:2]
    bad_schema = [call("weather__get_weather", {"town": "Paris"}), tool("{}"), answer("21")]
    assert score(format_reward, PERFECT, SLOW, UNOFFERED, RAW_TAG, no_answer, bad_schema) == [1, 1, 0, 0, 0, 0]


def test_summary_of_a_completion() -> None:
    rollout = summarize(SLOW, TOOLS, task=TASK)
    assert [c.name for c in rollout.calls] == ["weather__get_weather"] * 2
    assert [(c.server, c.tool) for c in rollout.calls] == [("weather", "get_weather")] * 2
    assert rollout.ok_calls == 2 and rollout.malformed == 0 and rollout.final_answer == "21 degrees."
    assert summarize(ERRORED, TOOLS, task=TASK).calls[0].error_kind == "tool_error"
    raw = summarize(RAW_TAG, TOOLS, task=TASK)
    assert [c.error_kind for c in raw.calls] == ["invalid_json"] and raw.final_answer == ""
    assert summarize('{"x": 1}', TOOLS, task=TASK).final_answer == '{"x": 1}'
    unanswered = summarize(PERFECT[:1], TOOLS, task=TASK)  # a call nothing answered never ran
    assert unanswered.calls[0].error_kind == "not_run" and unanswered.ok_calls == 0 and unanswered.malformed == 0


def test_default_weights_compose_into_the_project_reward() -> None:
    funcs, weights = reward_functions(code=False)
    assert [f.__name__ for f in funcs] == ["success_reward", "efficiency_reward", "tool_use_reward", "format_reward"]
    assert weights == [10.0, 2.0, 0.5, 1.0]
    assert total_reward([PERFECT, SLOW, WRONG], task=[TASK] * 3, tools=[TOOLS] * 3) == [13.5, 11.5, 1.5]
    heavy = RewardWeights(success=1.0, efficiency=0.0, tool_use=0.0, format=0.0)
    assert total_reward([PERFECT], heavy, task=[TASK], tools=[TOOLS]) == [1.0]
    funcs, weights = reward_functions(success=False)
    assert [f.__name__ for f in funcs][-1] == "code_tests_reward" and weights == [2.0, 0.5, 1.0, 1.0]


def test_code_tests_reward_applies_to_code_tasks_in_the_environment_only() -> None:
    code_task = {**TASK, "family": "code", "verifier": {"type": "unit_tests", "test_code": "assert f() == 1"}}
    assert score(code_tests_reward, PERFECT) == [None]  # not a code task: this function does not apply
    got = code_tests_reward([[answer("```python\ndef f():\n    return 1\n```")]], task=[code_task], tools=[[]])
    assert got == [None]  # the tests run in the sandbox: without the environment the sample is not scored


def test_a_reward_that_cannot_be_computed_is_logged_and_marked(caplog: pytest.LogCaptureFixture) -> None:
    workspace_task = {**TASK, "verifier": {"type": "file_state", "files": {"a.txt": "x"}}}
    before = rewards.failures["success_reward"]
    with caplog.at_level(logging.WARNING, logger="training.rewards"):
        got = success_reward([PERFECT, PERFECT], task=[workspace_task, TASK], tools=[TOOLS, TOOLS])
    assert got == [None, 1.0]
    assert rewards.failures["success_reward"] == before + 1
    assert "needs the task's workspace" in caplog.text
    assert success_reward([PERFECT], tools=[TOOLS]) == [None]
    assert "no 'task' column" in caplog.text
