"""The OpenAI policy against a real local HTTP server speaking the chat-completions API."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fake_openai import FakeOpenAI, reply, tool_call

from collector.errors import ConfigError, PolicyError
from collector.policies import make_policy
from collector.policies.openai import OpenAIPolicy, check_endpoint
from collector.tasks.model import Task, VerifierSpec

TASK = Task(id="t", family="toy", messages=[{"role": "user", "content": "hi"}],
            verifier=VerifierSpec(type="contains", expected="x"))
TOOLS = [{"type": "function", "function": {"name": "add", "description": "", "parameters": {"type": "object"}}}]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_completion_with_tool_calls_usage_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "sk-local")
    with FakeOpenAI(lambda body: reply(tool_calls=[tool_call("c1", "add", '{"a":1,  "b":2}')],
                                       usage=(31, 7))) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url, api_key_env="TEST_KEY", temperature=0.0)
        out = await policy.complete([{"role": "user", "content": "hi"}], TOOLS, task=TASK)
        await policy.aclose()
    assert out.message["tool_calls"][0]["function"]["arguments"] == '{"a":1,  "b":2}'  # verbatim
    assert (out.prompt_tokens, out.completion_tokens) == (31, 7)
    sent = fake.requests[0]
    assert sent["tools"] == TOOLS and sent["model"] == "fake" and sent["temperature"] == 0.0
    assert sent["_auth"] == "Bearer sk-local"


async def test_retries_on_429_and_5xx_then_succeeds() -> None:
    statuses = [429, 503]

    def responder(body: dict[str, Any]) -> Any:
        if statuses:
            return statuses.pop(0), {"error": "busy"}
        return reply(content="done")

    with FakeOpenAI(responder) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url, backoff_s=0.01)
        out = await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
    assert out.message["content"] == "done" and len(fake.requests) == 3


async def test_client_errors_are_not_retried() -> None:
    with FakeOpenAI(lambda body: (400, {"error": {"message": "bad tools"}})) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url, backoff_s=0.01)
        with pytest.raises(PolicyError, match="HTTP 400"):
            await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
    assert len(fake.requests) == 1


async def test_unreachable_endpoint_gives_up_with_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    policy = OpenAIPolicy("fake", base_url=url, max_retries=1, backoff_s=0.01)
    with pytest.raises(PolicyError, match="failed after 2 attempts"):
        await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
    await policy.aclose()
    with pytest.raises(PolicyError, match="unreachable"):
        await check_endpoint(url)


async def test_bad_answer_shape_and_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(lambda body: {"choices": []}) as fake:
        assert await check_endpoint(fake.base_url) == ["fake"]
        policy = OpenAIPolicy("fake", base_url=fake.base_url)
        with pytest.raises(PolicyError, match="no choices"):
            await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="MISSING_KEY"):
        OpenAIPolicy("m", base_url="http://127.0.0.1:1/v1", api_key_env="MISSING_KEY")
    with pytest.raises(ConfigError, match="http"):
        OpenAIPolicy("m", base_url="127.0.0.1:1")


def test_make_policy_by_name() -> None:
    policy = make_policy("openai", model="m", base_url="http://127.0.0.1:1/v1", temperature=None)
    assert policy.name == "openai" and policy.model == "m"
    with pytest.raises(ConfigError, match="accepted: openai, local, scripted"):
        make_policy("gpt")
    with pytest.raises(ConfigError, match="bad options"):
        make_policy("openai", model="m", base_url="http://127.0.0.1:1/v1", nonsense=1)
