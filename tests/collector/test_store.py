"""The SQLite store on a real file: runs, episodes in one transaction, resume bookkeeping, schema changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collector.errors import StoreError
from collector.store import SCHEMA_VERSION, Store

TASK = {"id": "weather-0001", "family": "weather", "split": "train"}


def test_episode_roundtrip(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.create_run("r1", policy="scripted", model="expert", config={"seed": 1})
    eid = store.start_episode("r1", TASK, 0, policy="scripted", model="expert")
    msgs = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_current_weather", "content": "12 C"},
        {"role": "assistant", "content": "12 C", "latency_s": 0.5},
    ]
    store.finish_episode(eid, fields={"status": "done", "passed": True, "score": 1.0, "reward": 10.0,
                                      "reward_components": {"success": 10.0}},
                         messages=msgs, tool_calls=[{"call_id": "c1", "turn": 0, "server": "weather",
                                                     "tool": "get_current_weather", "arguments": "{}", "result": "12 C",
                                                     "is_error": 0, "duration_s": 0.01}])
    store.close()
    ro = Store(tmp_path / "t.db", readonly=True)
    [ep] = list(ro.episodes(["r1"]))
    assert ep["passed"] is True and ep["reward_components"] == {"success": 10.0}
    got = ro.messages(eid)
    assert got[1]["tool_calls"][0]["function"]["arguments"] == "{\"location\": \"Paris\"}"
    assert got[3]["latency_s"] == 0.5 and got[3]["content"] == "12 C"
    assert ro.tool_calls(eid)[0]["tool"] == "get_current_weather"


def test_resume_bookkeeping(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.create_run("r1", policy="scripted", model="expert", config={})
    done = store.start_episode("r1", TASK, 0, policy="scripted", model="expert")
    store.finish_episode(done, fields={"status": "done"}, messages=[{"role": "user", "content": "x"}])
    store.start_episode("r1", TASK, 1, policy="scripted", model="expert")  # in flight at a crash
    assert store.done_keys("r1") == {("weather-0001", 0)}
    assert store.reset_in_flight("r1") == 1
    assert len(list(store.episodes(["r1"]))) == 1


def test_tool_definition_change_is_flagged(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.create_run("r1", policy="p", model="m", config={})
    tool = {"name": "search", "inputSchema": {"type": "object"}}
    assert store.record_tools("r1", "search", [tool]) == []
    assert store.record_tools("r1", "search", [tool]) == []
    assert store.record_tools("r1", "search", [{**tool, "description": "new"}]) == ["search"]


def test_corrupt_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(bad)
    with pytest.raises(StoreError, match="no trajectory database"):
        Store(tmp_path / "missing.db", readonly=True)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "t.db").close()
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "t.db")


def test_a_version_1_database_is_migrated_without_loss(tmp_path: Path) -> None:
    """Schema 2 adds the viewer's indexes; a database written by schema 1 gets them when opened for writing."""
    db = tmp_path / "v1.db"
    store = Store(db)
    store.create_run("r", policy="scripted", model="m", config={})
    store.close()
    conn = sqlite3.connect(db)  # make it what schema 1 wrote
    conn.execute("DROP INDEX ix_episodes_run_summary")
    conn.execute("DROP INDEX ix_episodes_error_type")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    reader = Store(db, readonly=True)  # reading never migrates
    assert "ix_episodes_error_type" not in {i.name for i in reader.db.table("episodes").indexes}
    reader.close()
    store = Store(db)
    indexes = {i.name for i in store.db.table("episodes").indexes}
    version = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    runs = [r["id"] for r in store.db.table("runs").rows]
    store.close()
    assert {"ix_episodes_run_summary", "ix_episodes_error_type", "ix_episodes_run"} <= indexes
    assert version == str(SCHEMA_VERSION) and runs == ["r"]


def test_a_version_2_database_gets_the_verdict_history(tmp_path: Path) -> None:
    """Schema 3 adds `verdict_history`; a schema 2 database keeps its episodes and gets the table (and any later
    version's changes) when opened for writing; a reader of an old database sees an empty history."""
    db = tmp_path / "v2.db"
    store = Store(db)
    store.create_run("r", policy="scripted", model="m", config={})
    eid = store.start_episode("r", {"id": "t", "family": "f", "verifier": {"type": "exact", "expected": "a"}}, 0,
                              policy="scripted", model="m")
    store.finish_episode(eid, fields={"status": "done", "passed": 1, "score": 1.0, "reward": 12.0,
                                      "reward_components": {"success": 10.0}, "verdict_details": {"matched": "a"}},
                         messages=[{"role": "user", "content": "q"}])
    store.close()
    conn = sqlite3.connect(db)  # make it what schema 2 wrote
    conn.execute("DROP TABLE verdict_history")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    reader = Store(db, readonly=True)
    assert reader.verdict_history(eid) == []
    reader.close()
    store = Store(db)
    assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    new_task = {"id": "t", "family": "f", "verifier": {"type": "exact", "expected": "b"}}
    store.replace_verdict(eid, fields={"passed": 0, "score": 0.0, "reward": 1.0, "reward_components": {"success": 0.0},
                                       "verdict_details": {"answer": "a"}}, reason="reverify", task=new_task)
    episode = store.get_episode(eid)
    (old,) = store.verdict_history(eid)
    store.close()
    assert episode["passed"] is False and episode["reward"] == 1.0 and episode["task"] == new_task
    assert old["passed"] is True and old["reward"] == 12.0 and old["reward_components"] == {"success": 10.0}
    assert old["verdict_details"] == {"matched": "a"} and old["verifier"] == {"type": "exact", "expected": "a"}
    assert old["reason"] == "reverify" and old["replaced_at"] > 0
