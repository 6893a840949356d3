"""Token-level dataset rows and the drift report, on stored tokens made with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from episode_factory import weather_messages

from collector.chat_template import CHAT_TEMPLATE, render_prompt, to_training_messages
from collector.store import Store
from training.datasets.tokens import write_token_rows

TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "description": "Weather now.",
                                           "parameters": {"type": "object", "properties": {
                                               "location": {"type": "string"}}, "required": ["location"]}}}]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from collector.models import prepare_tokenizer, resolve_model

    return prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True))


def _sampled(tokenizer: Any, messages: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The tokens a policy would have sampled for each assistant message: the template's own rendering."""
    turns = {}
    for idx, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tokenizer(render_prompt(tokenizer, messages[:idx], TOOLS), add_special_tokens=False)["input_ids"]
        full = tokenizer.apply_chat_template(to_training_messages(messages[: idx + 1]), tools=TOOLS,
                                             chat_template=CHAT_TEMPLATE, tokenize=True, return_dict=False)
        answer = list(full[len(prompt):])
        turns[idx] = {"token_ids": answer, "logprobs": [-0.5] * len(answer), "prompt_token_ids": prompt}
    return turns


def _store(tmp_path: Path, tokenizer: Any) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], int]:
    store = Store(tmp_path / "t.db")
    store.create_run("r", policy="local", model="smollm2", config={})
    messages = weather_messages("Paris", 12)
    exact = _sampled(tokenizer, messages)
    drifted = _sampled(tokenizer, messages)
    last = max(drifted)
    drifted[last]["token_ids"] = drifted[last]["token_ids"][:2] + [1] + drifted[last]["token_ids"][3:]
    for sample, turns in enumerate((exact, drifted)):
        eid = store.start_episode("r", {"id": "w", "family": "weather"}, sample, policy="local", model="smollm2")
        store.finish_episode(eid, fields={"status": "done", "passed": 1, "reward": 1.0, "tools": TOOLS},
                             messages=[{**m, "tokens": turns[i]} if i in turns else m for i, m in enumerate(messages)])
    store.close()
    return messages, exact, last


def test_token_rows_and_drift(tmp_path: Path, tokenizer: Any) -> None:
    messages, exact, last = _store(tmp_path, tokenizer)
    report = write_token_rows(tmp_path / "t.db", tmp_path / "out", tokenizer=tokenizer)
    assert (report.episodes, report.turns, report.drifted_turns) == (2, 2 * len(exact), 1)
    assert report.examples[0]["episode_id"] == "r/w/1" and report.examples[0]["message"] == last
    rows = [json.loads(line) for line in (tmp_path / "out" / "tokens.jsonl").read_text().splitlines()]
    first = [r for r in rows if r["episode_id"] == "r/w/0"]
    assert len(first) == 1  # each prompt extends the previous prompt and answer: one sequence
    row = first[0]
    whole = tokenizer.apply_chat_template(to_training_messages(messages), tools=TOOLS, chat_template=CHAT_TEMPLATE,
                                          tokenize=True, return_dict=False)
    assert row["input_ids"] == list(whole)[: len(row["input_ids"])]
    assert len(row["input_ids"]) == len(row["loss_mask"]) == len(row["logprobs"])
    trained = [t for t, m in zip(row["input_ids"], row["loss_mask"], strict=True) if m]
    assert trained == [t for turn in exact.values() for t in turn["token_ids"]]
    assert {lp for lp, m in zip(row["logprobs"], row["loss_mask"], strict=True) if m} == {-0.5}
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["drifted_turns"] == 1


def test_dataset_command_writes_token_rows_beside_the_conversations(tmp_path: Path, tokenizer: Any) -> None:
    from click.testing import CliRunner

    from training.cli import dataset

    _store(tmp_path, tokenizer)
    out = tmp_path / "sft"
    result = CliRunner().invoke(dataset, ["sft", "--db", str(tmp_path / "t.db"), "--out", str(out),
                                          "--eval-fraction", "0", "--no-dedup", "--tokens"])
    assert result.exit_code == 0, result.output
    assert "1 of 4 turns drift" in result.output
    assert (out / "train.jsonl").is_file() and len((out / "tokens.jsonl").read_text().splitlines()) >= 2
