"""Export of recorded episodes as openai-jsonl and react-jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.errors import ConfigError, StoreError
from collector.export import export_run
from collector.store import Store

CALLS = [{"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
         {"id": "b", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b":'}}]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = Store(tmp_path / "t.db")
    store.create_run("r", policy="openai", model="m", config={})
    eid = store.start_episode("r", {"id": "t1", "family": "toy", "split": "train"}, 0, policy="openai", model="m")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": "Let me add.", "tool_calls": CALLS, "malformed": True, "latency_s": 0.1},
        {"role": "tool", "tool_call_id": "a", "name": "add", "content": "3"},
        {"role": "tool", "tool_call_id": "b", "name": "add", "content": "Error: not valid JSON"},
        {"role": "assistant", "content": "3"},
    ]
    store.finish_episode(eid, fields={"status": "done", "final_answer": "3", "passed": 1, "score": 1.0,
                                      "reward": 12.5, "reward_components": {"success": 10.0},
                                      "tools": [{"type": "function", "function": {"name": "add"}}],
                                      "malformed_calls": 1}, messages=messages)
    failed = store.start_episode("r", {"id": "t2", "family": "toy"}, 0, policy="openai", model="m")
    store.finish_episode(failed, fields={"status": "failed", "error_type": "policy_error"},
                         messages=messages[:2])
    store.start_episode("r", {"id": "t3", "family": "toy"}, 0, policy="openai", model="m")  # still running
    store.close()
    return tmp_path / "t.db"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_jsonl(db: Path, tmp_path: Path) -> None:
    assert export_run(db, "r", "openai-jsonl", tmp_path / "o.jsonl") == 1
    [row] = _rows(tmp_path / "o.jsonl")
    assert row["task_id"] == "t1" and row["reward"] == 12.5 and row["tools"][0]["function"]["name"] == "add"
    assert row["messages"][2]["tool_calls"][1]["function"]["arguments"] == '{"a": 1, "b":'  # verbatim
    assert all(set(m) <= {"role", "content", "tool_calls", "tool_call_id", "name"} for m in row["messages"])
    assert row["metadata"]["malformed_messages"] == [2] and row["metadata"]["policy"] == "openai"


def test_react_jsonl(db: Path, tmp_path: Path) -> None:
    export_run(db, "r", "react-jsonl", tmp_path / "r.jsonl")
    [row] = _rows(tmp_path / "r.jsonl")
    assert row["question"] == "1+2?" and row["system"] == "be brief" and row["final_answer"] == "3"
    assert row["steps"] == [
        {"thought": "Let me add.", "action": "add", "action_input": '{"a": 1, "b": 2}', "observation": "3"},
        {"thought": "", "action": "add", "action_input": '{"a": 1, "b":', "observation": "Error: not valid JSON"},
    ]


def test_status_filter_and_errors(db: Path, tmp_path: Path) -> None:
    assert export_run(db, "r", "openai-jsonl", tmp_path / "a.jsonl", status="all") == 2  # never the running one
    assert export_run(db, "r", "openai-jsonl", tmp_path / "f.jsonl", status="failed") == 1
    with pytest.raises(ConfigError, match="accepted: openai-jsonl, react-jsonl"):
        export_run(db, "r", "csv", tmp_path / "x.jsonl")
    with pytest.raises(StoreError, match="no run named 'nope'"):
        export_run(db, "nope", "openai-jsonl", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.part").exists()
