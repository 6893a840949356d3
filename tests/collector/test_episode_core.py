"""The episode core: one parse per call, one namespace split, one malformedness, counted once by the real loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from text_policy import TextPolicy
from toy_fixtures import make_task, toy_stdio_spec

from collector.episode import (
    MALFORMED_KINDS,
    ToolIndex,
    calls_from_rows,
    parse_call,
    read_completion,
    tool_message,
)
from collector.loop import run_episode
from collector.pool import ToolPool
from collector.tools import ToolRef, split_name

EDIT_SCHEMA = {  # the shape of the files server's edit_file: items behind a $ref
    "type": "object", "required": ["path", "edits"],
    "$defs": {"Edit": {"type": "object", "required": ["old_text", "new_text"],
                       "properties": {"old_text": {"type": "string"}, "new_text": {"type": "string"}}}},
    "properties": {"path": {"type": "string"}, "edits": {"type": "array", "items": {"$ref": "#/$defs/Edit"}}},
}
INDEX = ToolIndex([ToolRef("files__edit_file", "files", "edit_file", EDIT_SCHEMA),
                   ToolRef("files__read__raw", "files", "read__raw", {"type": "object"})], ["files", "exec"])


def test_one_namespace_split_at_the_first_separator() -> None:
    assert split_name("files__read__raw", ["files", "exec"]) == ("files", "read__raw")
    assert split_name("read__raw", ["files"]) == ("files", "read__raw")  # one server: names are the tools' own
    assert split_name("nope__x", ["files", "exec"]) == (None, "nope__x")
    assert INDEX.split("files__read__raw") == ("files", "read__raw")
    assert INDEX.split("files__missing") == (None, "missing")  # not offered: no server ran it


def test_parse_call_reads_each_call_once() -> None:
    ok = parse_call("files__edit_file", json.dumps({"path": "a", "edits": [{"old_text": "x", "new_text": "y"}]}),
                    INDEX, call_id="c1")
    assert (ok.server, ok.tool, ok.error_kind, ok.malformed) == ("files", "edit_file", None, False)
    assert ok.arguments == {"path": "a", "edits": [{"old_text": "x", "new_text": "y"}]}
    nested = parse_call("files__edit_file", {"path": "a", "edits": [{"old_text": "x"}]}, INDEX)
    assert nested.error_kind == "invalid_arguments" and "new_text" in str(nested.message)  # $ref items checked
    bad_json = parse_call("files__edit_file", '{"path": ', INDEX)
    assert bad_json.error_kind == "invalid_json" and bad_json.arguments is None and bad_json.raw_arguments == '{"path": '
    unknown = parse_call("edit_file", "{}", INDEX)
    assert unknown.error_kind == "unknown_tool" and unknown.server is None and "files__edit_file" in str(unknown.message)
    block = parse_call("", '{"arguments": {}}', INDEX, parse_error="missing_name")
    assert block.error_kind == "missing_name" and block.malformed
    assert {"unknown_tool", "invalid_json", "invalid_arguments", "missing_name", "unclosed_tag"} == set(MALFORMED_KINDS)


def test_read_completion_reads_text_left_by_a_trainer_like_the_local_policy() -> None:
    text = ('<tool_call>{"name": "files__read__raw", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "files__read__raw", "arguments": {"a": </tool_call>')
    transcript = read_completion([{"role": "assistant", "content": text}], INDEX)
    assert [c.error_kind for c in transcript.calls] == [None, "invalid_json"]
    assert all(c.from_text for c in transcript.calls) and transcript.final_answer == ""
    answered = read_completion([{"role": "assistant", "content": "", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "files__read__raw", "arguments": {}}}]},
        {"role": "tool", "content": "data"}, {"role": "assistant", "content": "done"}], INDEX)
    assert answered.calls[0].message == "data" and answered.final_answer == "done"
    assert tool_message("boom", True) == "Error: boom" and tool_message("Error: x", True) == "Error: x"
    assert tool_message("fine", False) == "fine"


@pytest.fixture
async def pool() -> AsyncIterator[ToolPool]:
    async with ToolPool({"files": toy_stdio_spec()}) as p:
        yield p


MIXED = ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
         '<tool_call>{"name": "add", "arguments": {"a": 1, "b": </tool_call>\n'
         '<tool_call>{"name": "add", "arguments": {"a": "one", "b": 2}}</tool_call>\n'
         '<tool_call>{"arguments": {"a": 1}}</tool_call>')


async def test_a_malformed_call_is_counted_once_and_never_sent(pool: ToolPool) -> None:
    policy = TextPolicy([MIXED, "The sum is 3."])
    task = make_task("mixed", "add 1 and 2", expected="3", optimal_steps=1)
    async with pool.session(task.servers) as session:
        result = await run_episode(task, policy, session)
    assert result.status == "done" and result.final_answer == "The sum is 3."
    kinds = [c.error_kind for c in result.calls]
    assert kinds == [None, "invalid_json", "invalid_arguments", "missing_name"]
    # one per malformed block (the text parser's kind and the argument check used to count the same block twice)
    assert (result.tool_calls, result.malformed_calls, result.tool_errors) == (4, 3, 3)
    assert result.calls[0].message == "3" and result.calls[1].duration_s == 0.0  # the bad ones never ran
    assert result.records[1].malformed and "malformed" not in result.messages[1]
    assert result.reward_components == {"success": 10.0, "efficiency": 0.0, "tool_use": 0.5, "format": 0.0}
    assert [r["error_kind"] for r in result.tool_call_rows] == kinds
    assert [c.error_kind for c in calls_from_rows(result.tool_call_rows)] == kinds


@pytest.mark.slow
def test_code_reward_of_a_real_sandboxed_run(tmp_path: Path) -> None:
    """The harness's failure report tells a failed assertion from another exception: the seed's worked example."""
    from collector.collect import CollectConfig, run_collection
    from collector.settings import CollectorSettings
    from collector.store import Store
    from collector.tasks.model import Task, VerifierSpec

    answer = "```python\ndef f(x):\n    return 10 // x\n```"
    cases = {"crash": ("assert f(1) == 10\nassert f(2) == 5\nassert f(5) == 2\nassert f(0) == 0\n", 0.625),
             "assertion": ("assert f(1) == 10\nassert f(2) == 6\nassert f(5) == 2\nassert f(10) == 1\n", 0.75),
             "passes": ("assert f(1) == 10\nassert f(2) == 5\n", 1.0)}
    tasks = [Task(id=name, family="code", messages=[{"role": "user", "content": "Write f."}], servers=["exec"],
                  optimal_steps=0, verifier=VerifierSpec(type="unit_tests", test_code=test_code))
             for name, (test_code, _) in cases.items()]
    config = CollectConfig(db=tmp_path / "c.db", run="code", task_list=tasks, policy_instance=TextPolicy([answer]),
                           settings=CollectorSettings(workspace_root=tmp_path / "ws"))
    summary = run_collection(config)
    assert summary.done == 3, summary.errors
    store = Store(tmp_path / "c.db", readonly=True)
    try:
        got = {e["task_id"]: e["reward_components"] for e in store.episodes(["code"])}
    finally:
        store.close()
    for name, (_, code) in cases.items():
        passed = name == "passes"
        assert got[name] == pytest.approx({"success": 10.0 * passed, "efficiency": 2.0 * passed, "tool_use": 0.0,
                                           "format": 1.0, "code": code}), name
