"""The episode loop with a real MCP server (stdio) and a real local chat-completions server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_openai import FakeOpenAI, last_tool_results, reply, tool_call, turn_index
from toy_fixtures import make_task, toy_stdio_spec

from collector.loop import LoopConfig, run_episode
from collector.policies.openai import OpenAIPolicy
from collector.pool import ToolPool
from collector.tasks.model import Task, VerifierSpec


@pytest.fixture
async def pool() -> AsyncIterator[ToolPool]:
    async with ToolPool({"files": toy_stdio_spec()}) as p:
        yield p


async def _episode(pool: ToolPool, task: Task, responder: Any, **loop: Any) -> Any:
    with FakeOpenAI(responder) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url, max_retries=1, backoff_s=0.01)
        try:
            async with pool.session(task.servers) as s:
                return await run_episode(task, policy, s, config=LoopConfig(**loop)), fake.requests
        finally:
            await policy.aclose()


async def test_parallel_calls_then_final_answer(pool: ToolPool) -> None:
    def responder(body: dict[str, Any]) -> dict[str, Any]:
        if turn_index(body) == 0:
            return reply(tool_calls=[tool_call("a", "add", '{"a": 2, "b": 3}'), tool_call("b", "add", '{"a": 10, "b": 1}')])
        return reply(content=f"results: {', '.join(last_tool_results(body))}")

    task = make_task("par", "add things", expected=["5, 11"], optimal_steps=2)
    result, requests = await _episode(pool, task, responder)
    assert result.status == "done" and result.final_answer == "results: 5, 11"
    assert result.verdict["passed"] and result.reward == 14.0  # 10 + 2 + 2*0.5 + 1
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m["tool_call_id"] for m in result.messages[2:4]] == ["a", "b"]
    assert (result.turns, result.tool_calls, result.tool_errors, result.prompt_tokens) == (2, 2, 0, 20)
    assert requests[0]["tools"] and all("latency_s" not in m for m in requests[1]["messages"])


async def test_malformed_calls_are_answered_counted_and_kept_verbatim(pool: ToolPool) -> None:
    bad = [tool_call("j", "add", '{"a": 1, "b":'), tool_call("u", "multiply", "{}"),
           tool_call("s", "add", '{"a": "one", "b": 2}')]

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        if turn_index(body) == 0:
            return reply(tool_calls=bad)
        return reply(content="I could not compute it")

    result, requests = await _episode(pool, make_task("bad", "add", expected="3"), responder)
    assert result.status == "done" and result.malformed_calls == 3 and result.tool_errors == 3
    assistant = result.messages[1]
    assert result.records[1].malformed and "malformed" not in assistant  # beside the message, not in it
    assert result.store_messages()[1]["malformed"] is True
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == ['{"a": 1, "b":', "{}",
                                                                             '{"a": "one", "b": 2}']
    kinds = [r["error_kind"] for r in result.tool_call_rows]
    assert kinds == ["invalid_json", "unknown_tool", "invalid_arguments"]
    seen = [m["content"] for m in requests[1]["messages"] if m["role"] == "tool"]
    assert "not valid JSON" in seen[0] and "unknown tool 'multiply'" in seen[1] and "integer" in seen[2]
    assert result.reward_components["format"] == 0.0 and not result.verdict["passed"]


async def test_policy_errors_fail_the_episode_as_data(pool: ToolPool) -> None:
    result, requests = await _episode(pool, make_task("p", "x", expected="y"), lambda b: (500, {"error": "down"}))
    assert result.status == "failed" and result.error_type == "policy_error" and "HTTP 500" in result.error_message
    assert len(requests) == 2 and result.verdict is None and result.reward is None


async def test_step_timeout(pool: ToolPool) -> None:
    def slow(body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(1.0)
        return reply(content="late")

    result, _ = await _episode(pool, make_task("slow", "x", expected="late"), slow, step_timeout_s=0.2)
    assert result.status == "failed" and result.error_type == "policy_timeout"


async def test_max_turns_without_answer(pool: ToolPool) -> None:
    result, requests = await _episode(
        pool, make_task("loop", "x", expected="y"),
        lambda b: reply(tool_calls=[tool_call(f"c{turn_index(b)}", "echo", '{"text": "again"}')]), max_turns=3)
    assert result.status == "done" and result.error_type == "max_turns" and len(requests) == 3
    assert result.tool_calls == 3 and result.final_answer == "" and not result.verdict["passed"]


async def test_server_death_fails_the_episode(pool: ToolPool) -> None:
    result, _ = await _episode(pool, make_task("die", "x", expected="y"),
                               lambda b: reply(tool_calls=[tool_call("d", "die", "{}")]))
    assert result.status == "failed" and result.error_type == "server_error" and "server died" in result.error_message
    assert result.messages[-1]["role"] == "assistant"  # what happened before the death is kept


async def test_file_state_task_uses_setup_files_and_snapshot(pool: ToolPool) -> None:
    task = Task(id="fs", family="toy", messages=[{"role": "user", "content": "copy a.txt to b.txt"}],
                servers=["files"], setup_files={"a.txt": "payload"}, optimal_steps=2,
                verifier=VerifierSpec(type="file_state", files={"a.txt": "payload", "b.txt": "payload"}))

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        turn = turn_index(body)
        if turn == 0:
            return reply(tool_calls=[tool_call("r", "read_text_file", '{"path": "a.txt"}')])
        if turn == 1:
            text = last_tool_results(body)[0]
            return reply(tool_calls=[tool_call("w", "write_file", json.dumps({"path": "b.txt", "content": text}))])
        return reply(content="copied")

    result, _ = await _episode(pool, task, responder)
    assert result.status == "done" and result.verdict["passed"], result.verdict
    assert result.reward == 14.0


async def test_tasks_without_servers_answer_directly() -> None:
    async with ToolPool({}) as empty:
        task = make_task("plain", "say hi", expected="hi", servers=[])
        result, requests = await _episode(empty, task, lambda b: reply(content="hi there"))
    assert result.status == "done" and result.verdict["passed"] and "tools" not in requests[0]
