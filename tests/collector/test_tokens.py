"""Token-level trajectories: the sampled token ids and logprobs of every assistant turn, from the policy to the store.

The openai policy is tested against a real local HTTP server that answers with vLLM's token fields
(`choices[].token_ids`, `logprobs.content[].token` as `token_id:N`, `prompt_token_ids`); the local policy on the
real SmolLM2-135M.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from collect_helpers import echo_solver, echo_tasks
from fake_openai import FakeOpenAI, reply
from toy_fixtures import toy_stdio_spec

from collector.collect import CollectConfig, run_collection
from collector.merge import merge_stores
from collector.policies.openai import OpenAIPolicy
from collector.store import Store
from collector.tasks.model import Task, VerifierSpec

TASK = Task(id="t", family="toy", messages=[{"role": "user", "content": "hi"}],
            verifier=VerifierSpec(type="contains", expected="x"))
TOKEN_FIELDS = ("logprobs", "return_tokens_as_token_ids", "return_token_ids")


def _prompt_ids(body: dict[str, Any]) -> list[int]:
    """A stand-in tokenizer: one id per character of each message (prefix-stable, like a chat template)."""
    ids: list[int] = []
    for m in body["messages"]:
        ids += [7] + [ord(c) % 251 for c in str(m.get("content") or "") + json.dumps(m.get("tool_calls") or "")]
    return ids


def with_tokens(responder: Any, *, ids_field: bool = True) -> Any:
    """Wrap a responder: answers carry vLLM's token fields when the request asked for them."""

    def respond(body: dict[str, Any]) -> Any:
        out = responder(body)
        if not body.get("return_token_ids"):
            return out
        n = 3 + len(body["messages"])
        ids = list(range(100 + n, 100 + 2 * n))
        choice = out["choices"][0]
        choice["logprobs"] = {"content": [{"token": f"token_id:{i}", "logprob": -0.5 / (k + 1)}
                                          for k, i in enumerate(ids)]}
        if ids_field:
            choice["token_ids"] = ids
        out["prompt_token_ids"] = _prompt_ids(body)
        return out

    return respond


async def test_the_openai_policy_asks_for_tokens_and_reads_them() -> None:
    with FakeOpenAI(with_tokens(lambda body: reply(content="ok"))) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url)
        out = await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
    sent = fake.requests[0]
    assert all(sent[k] is True for k in TOKEN_FIELDS)
    assert out.tokens is not None
    assert out.tokens.token_ids == [104, 105, 106, 107]
    assert out.tokens.logprobs == pytest.approx([-0.5, -0.25, -0.5 / 3, -0.125])
    assert out.tokens.prompt_token_ids == _prompt_ids(sent)


async def test_token_ids_are_read_from_the_logprobs_when_token_ids_are_absent() -> None:
    with FakeOpenAI(with_tokens(lambda body: reply(content="ok"), ids_field=False)) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url)
        out = await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
    assert out.tokens is not None and out.tokens.token_ids == [104, 105, 106, 107]


async def test_an_endpoint_without_token_fields_is_asked_plainly_from_then_on() -> None:
    def strict(body: dict[str, Any]) -> Any:
        unknown = [k for k in TOKEN_FIELDS if k in body]
        if unknown:
            return 400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[-1]}"}}
        return reply(content="ok")

    with FakeOpenAI(strict) as fake:
        policy = OpenAIPolicy("fake", base_url=fake.base_url)
        first = await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        second = await policy.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await policy.aclose()
        never = OpenAIPolicy("fake", base_url=fake.base_url, tokens=False)
        await never.complete([{"role": "user", "content": "hi"}], [], task=TASK)
        await never.aclose()
    assert first.message["content"] == second.message["content"] == "ok" and first.tokens is None
    assert [any(k in r for k in TOKEN_FIELDS) for r in fake.requests] == [True, False, False, False]


def test_a_collection_stores_each_turns_tokens_and_rebuilds_its_prompts(tmp_path: Path) -> None:
    with FakeOpenAI(with_tokens(echo_solver())) as fake:
        run_collection(CollectConfig(db=tmp_path / "t.db", run="r", task_list=echo_tasks(2), policy="openai",
                                     model="fake", base_url=fake.base_url, servers={"files": toy_stdio_spec()}))
        bodies = {(json.dumps(r["messages"][0]), len(r["messages"])): r for r in fake.requests}
    store = Store(tmp_path / "t.db", readonly=True)
    episode = next(e for e in store.episodes(["r"]) if e["task_id"] == "echo-000")
    messages = store.messages(episode["id"])
    tokens = store.message_tokens(episode["id"])
    assert sorted(tokens) == [i for i, m in enumerate(messages) if m["role"] == "assistant"] == [1, 3]
    for idx, turn in tokens.items():
        sent = bodies[(json.dumps(messages[0]), idx)]  # the request that produced message idx had idx messages
        assert turn["prompt_token_ids"] == _prompt_ids(sent)
        assert turn["token_ids"] == list(range(100 + 3 + idx, 100 + 2 * (3 + idx)))
        assert len(turn["logprobs"]) == len(turn["token_ids"])
    with sqlite3.connect(tmp_path / "t.db") as conn:
        rows = dict(conn.execute("SELECT idx, prompt_from FROM message_tokens WHERE episode_id = ?",
                                 [episode["id"]]).fetchall())
    assert rows == {1: 0, 3: 0}  # the stand-in tokenizer's second prompt does not extend prompt+answer ids
    merged = tmp_path / "m.db"
    merge_stores(merged, [tmp_path / "t.db"])
    assert Store(merged, readonly=True).message_tokens(episode["id"]) == tokens


def test_a_prompt_that_extends_the_previous_turn_is_stored_as_what_it_adds(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.create_run("r", policy="local", model="m", config={})
    eid = store.start_episode("r", {"id": "t"}, 0, policy="local", model="m")
    first = {"token_ids": [5, 6, 2], "logprobs": [-0.1, -0.2, -0.3], "prompt_token_ids": [1, 2, 3]}
    second = {"token_ids": [8, 2], "logprobs": [-0.4, -0.5], "prompt_token_ids": [1, 2, 3, 5, 6, 2, 9, 9]}
    store.finish_episode(eid, fields={"status": "done"}, messages=[
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "tokens": first},
        {"role": "tool", "content": "t", "tool_call_id": "c"}, {"role": "assistant", "content": "b", "tokens": second}])
    rows = store.db.execute("SELECT idx, prompt_from, prompt_token_ids FROM message_tokens ORDER BY idx").fetchall()
    assert rows == [(1, 0, "[1, 2, 3]"), (3, 6, "[9, 9]")]
    assert store.message_tokens(eid) == {1: first, 3: second}
    assert store.reset_in_flight("r") == 0
    store.close()


@pytest.mark.slow
async def test_the_local_policy_reports_its_sampled_tokens() -> None:
    from local_model import loaded_model

    from collector.chat_template import render_prompt
    from collector.policies.local import LocalPolicy

    model, tokenizer = loaded_model()
    policy = LocalPolicy(temperature=0.0, max_new_tokens=12, loaded=(model, tokenizer))
    messages: list[Any] = [{"role": "user", "content": "What is 2+2?"}]
    try:
        out = await policy.complete(messages, [], task=TASK)
    finally:
        await policy.aclose()
    assert out.tokens is not None and out.raw_text is not None
    ids = out.tokens.token_ids
    assert len(ids) == out.completion_tokens == len(out.tokens.logprobs or []) > 0
    assert all(lp <= 0.0 for lp in out.tokens.logprobs or [])
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == out.raw_text.strip()
    prompt = render_prompt(tokenizer, messages, [])
    assert out.tokens.prompt_token_ids == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_the_viewer_shows_each_turns_token_count_and_mean_logprob(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from collector.viewer import create_app

    store = Store(tmp_path / "t.db")
    store.create_run("r", policy="local", model="m", config={})
    eid = store.start_episode("r", {"id": "t", "family": "toy"}, 0, policy="local", model="m")
    tokens = {"token_ids": [5, 6, 2, 9], "logprobs": [-0.5, -0.25, -0.25, -1.0], "prompt_token_ids": [1, 2]}
    store.finish_episode(eid, fields={"status": "done", "passed": 1, "reward": 1.0}, messages=[
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "answer", "tokens": tokens}])
    store.close()
    client = TestClient(create_app(tmp_path / "t.db"), base_url="http://127.0.0.1:8000")
    turns = client.get(f"/api/episodes/{eid}").json()["turns"]
    assert [(t["tokens"], t["mean_logprob"]) for t in turns] == [(None, None), (4, -0.5)]
    assert "4 tok · -0.50" in client.get(f"/episodes/{eid}").text
