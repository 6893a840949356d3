"""`mcpgym merge`: stores collected independently become one, each (run, task, sample) once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ConfigError
from collector.export import export_run
from collector.merge import merge_stores
from collector.store import Store

ROOT = Path(__file__).resolve().parents[2]
ECHO_TOOL = {"name": "echo", "description": "Echo text.", "inputSchema": {"type": "object"}}


def _store(path: Path, run: str, pairs: list[tuple[str, int]], *, model: str = "m", running: tuple[str, int] | None
           = None, tools: list[dict[str, Any]] | None = None, tag: str = "") -> Path:
    """A real store with a run of finished echo episodes (and optionally one still running)."""
    store = Store(path)
    config = {"policy": "openai", "model": model, "policy_options": {}, "max_turns": 4, "seed": 0, "kind": "collect",
              "samples": 2, "concurrency": 8}
    store.create_run(run, policy="openai", model=model, config=config)
    store.record_tools(run, "files", tools or [ECHO_TOOL])
    for task_id, sample in pairs:
        task = {"id": task_id, "family": "echo", "split": "train", "messages": [{"role": "user", "content": task_id}]}
        eid = store.start_episode(run, task, sample, policy="openai", model=model)
        messages = [{"role": "user", "content": task_id},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c0", "type": "function", "function": {"name": "echo", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c0", "name": "echo", "content": task_id},
                    {"role": "assistant", "content": f"{task_id}{tag}"}]
        store.finish_episode(eid, fields={"status": "done", "passed": 1, "reward": 1.0, "final_answer": task_id,
                                          "tools": [{"type": "function", "function": {"name": "echo"}}]},
                             messages=messages, tool_calls=[{"call_id": "c0", "turn": 0, "server": "files",
                                                             "tool": "echo", "arguments": "{}", "result": task_id}])
    if running is not None:
        store.start_episode(run, {"id": running[0], "family": "echo"}, running[1], policy="openai", model=model)
    store.finish_run(run, "done")
    store.close()
    return path


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_two_shards_of_one_run_merge_once_per_task_and_sample(tmp_path: Path) -> None:
    changed_tool = {**ECHO_TOOL, "description": "Echo the text back."}
    a = _store(tmp_path / "a.db", "r", [("t0", 0), ("t0", 1), ("t1", 0)], tag="-a")
    b = _store(tmp_path / "b.db", "r", [("t1", 0), ("t1", 1), ("t2", 0)], running=("t3", 0), tools=[changed_tool],
               tag="-b")
    out = tmp_path / "all.db"
    summary = merge_stores(out, [a, b])
    assert (summary.episodes_added, summary.duplicates, summary.skipped_running) == (5, 1, 1)
    assert summary.runs_added == ["r"] and summary.by_source == {str(a): 3, str(b): 2}
    with sqlite3.connect(out) as conn:
        keys = conn.execute("SELECT task_id, sample_index, status FROM episodes ORDER BY 1, 2").fetchall()
        first = conn.execute("SELECT content FROM messages WHERE episode_id = 'r/t1/0' AND idx = 3").fetchone()[0]
        schemas = conn.execute("SELECT hash, changed FROM tool_schemas WHERE run_id = 'r' AND name = 'echo' "
                               "ORDER BY first_seen").fetchall()
    assert keys == [("t0", 0, "done"), ("t0", 1, "done"), ("t1", 0, "done"), ("t1", 1, "done"), ("t2", 0, "done")]
    assert first == "t1-a"  # the first finished copy wins
    assert _count(out, "SELECT COUNT(*) FROM messages") == 5 * 4 and _count(out, "SELECT COUNT(*) FROM tool_calls") == 5
    assert len(schemas) == 2 and [c for _, c in schemas] == [0, 1]  # both definitions kept, the later one a change
    export = tmp_path / "r.jsonl"
    assert export_run(out, "r", "openai-jsonl", str(export)) == 5
    assert all(len(json.loads(line)["messages"]) == 4 for line in export.read_text().splitlines())
    again = merge_stores(out, [a, b])  # idempotent
    assert (again.episodes_added, again.duplicates) == (0, 6)
    assert _count(out, "SELECT COUNT(*) FROM messages") == 20


def test_a_finished_copy_replaces_a_running_row_and_other_runs_are_added(tmp_path: Path) -> None:
    target = _store(tmp_path / "t.db", "r", [("t0", 0)], running=("t1", 0))
    src = _store(tmp_path / "s.db", "r", [("t1", 0)])
    other = _store(tmp_path / "o.db", "other", [("x", 0)], model="m2")
    summary = merge_stores(target, [src, other])
    assert summary.runs_extended == ["r"] and summary.runs_added == ["other"] and summary.episodes_added == 2
    with sqlite3.connect(target) as conn:
        rows = conn.execute("SELECT run_id, task_id, status FROM episodes ORDER BY 1, 2").fetchall()
    assert rows == [("other", "x", "done"), ("r", "t0", "done"), ("r", "t1", "done")]
    assert _count(target, "SELECT COUNT(*) FROM messages WHERE episode_id = 'r/t1/0'") == 4


def test_conflicting_run_configurations_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    a = _store(tmp_path / "a.db", "r", [("t0", 0)])
    b = _store(tmp_path / "b.db", "r", [("t1", 0)], model="other-model")
    out = tmp_path / "all.db"
    with pytest.raises(ConfigError, match=r"run 'r' was collected with different configurations \(model: 'm' in .*a\.db "
                                          r"vs 'other-model' in .*b\.db"):
        merge_stores(out, [a, b])
    assert not out.exists()
    with pytest.raises(ConfigError, match="model"):
        merge_stores(a, [b])
    assert _count(a, "SELECT COUNT(*) FROM episodes") == 1


def test_bad_sources_are_named(tmp_path: Path) -> None:
    a = _store(tmp_path / "a.db", "r", [("t0", 0)])
    with pytest.raises(ConfigError, match="no trajectory database at .*missing.db"):
        merge_stores(tmp_path / "all.db", [tmp_path / "missing.db"])
    with pytest.raises(ConfigError, match="is the merge target itself"):
        merge_stores(a, [a])
    with pytest.raises(ConfigError, match="at least one source"):
        merge_stores(a, [])


def test_merge_command(tmp_path: Path) -> None:
    a = _store(tmp_path / "a.db", "r", [("t0", 0)])
    b = _store(tmp_path / "b.db", "r", [("t0", 0), ("t1", 0)])
    out = tmp_path / "all.db"
    done = subprocess.run([sys.executable, "-m", "mcpgym.cli", "merge", "--into", str(out), str(a), str(b)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "merged 2 episodes" in done.stderr and "1 duplicates" in done.stderr
    bad = _store(tmp_path / "c.db", "r", [("t2", 0)], model="x")
    refused = subprocess.run([sys.executable, "-m", "mcpgym.cli", "merge", "--into", str(out), str(bad)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "different configurations" in refused.stderr
