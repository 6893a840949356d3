"""Tests of user task suites in JSONL: loading, split by id, and errors naming the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.errors import ConfigError
from collector.tasks._split import split_of
from collector.tasks.jsonl import dump_jsonl_tasks, load_jsonl_tasks
from collector.tasks.registry import load_tasks


def task_line(task_id: str, **extra: object) -> str:
    row = {
        "id": task_id,
        "family": "mine",
        "messages": [{"role": "user", "content": "What is 12/5?"}],
        "verifier": {"type": "math", "expected": "2.4"},
        **extra,
    }
    return json.dumps(row)


def test_load_valid_file_split_by_id_unless_given(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [task_line(f"mine/{i}") for i in range(20)] + ["", task_line("mine/forced", split="test")]
    path.write_text("\n".join(lines) + "\n")
    tasks = load_jsonl_tasks(path)
    assert len(tasks) == 21
    assert all(t.split == split_of(t.id) for t in tasks[:20])
    assert tasks[-1].split == "test"
    mixed = load_tasks([str(path), "code"], seed=1, limit=4)
    assert [t.family for t in mixed] == ["mine", "code", "mine", "code"]


def test_round_trip(tmp_path: Path) -> None:
    tasks = load_tasks(["files"], seed=0, limit=5)
    path = tmp_path / "files.jsonl"
    dump_jsonl_tasks(tasks, path)
    assert load_jsonl_tasks(path) == tasks


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", r"bad\.jsonl:2: not valid JSON"),
        ("[1, 2]", r"bad\.jsonl:2: expected a JSON object"),
        (json.dumps({"id": "x", "family": "f", "messages": []}), r"bad\.jsonl:2: invalid task: field 'verifier'"),
        (task_line("y", verifier={"type": "fuzzy"}), r"bad\.jsonl:2: invalid task: field 'verifier\.type'"),
        (task_line("y", verifier={"type": "regex", "pattern": "("}), r"bad\.jsonl:2: field 'verifier'.*regular"),
        (task_line("y", colour="red"), r"bad\.jsonl:2: invalid task: field 'colour'"),
        (task_line("y", messages=[{"role": "system", "content": "hi"}]), r"bad\.jsonl:2: field 'messages'"),
        (task_line("a"), r"bad\.jsonl:2: duplicate task id 'a' \(first on line 1\)"),
    ],
)
def test_bad_lines_name_line_and_field(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(task_line("a") + "\n" + bad_line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_jsonl_tasks(path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_jsonl_tasks(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_jsonl_tasks(tmp_path)
