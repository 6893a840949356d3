"""`mcpgym reverify`: stored episodes judged again with today's verifiers, old verdicts kept, changes counted.

Real parts throughout: a SQLite store written through the Store API, the collector-managed `mcpgym serve all`
gateway (files and exec servers) for the verifiers that need live tools, and a scripted collection whose verdicts a
re-verification must reproduce exactly (the loop and reverify judge with the same function).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from toy_fixtures import toy_stdio_spec

from collector.cli import reverify as reverify_cmd
from collector.collect import CollectConfig, run_collection
from collector.reverify import reverify_run
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks.model import Task, VerifierSpec
from collector.viewer import create_app
from collector.viewer.episode import episode_view

OLD_COMPONENTS = {"success": 10.0, "efficiency": 2.0, "tool_use": 0.5, "format": 1.0}


def _task(
    task_id: str,
    family: str,
    spec: dict[str, Any],
    *,
    servers: list[str] | None = None,
    setup: dict[str, str] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    task = Task(
        id=task_id,
        family=family,
        messages=[{"role": "user", "content": f"question {task_id}"}],
        servers=servers or [],
        setup_files=setup or {},
        optimal_steps=1,
        verifier=VerifierSpec.model_validate(spec),
        metadata=meta,
    )
    return task.model_dump(mode="json")


def _episode(
    store: Store,
    run: str,
    task: dict[str, Any],
    answer: str,
    *,
    passed: bool,
    status: str = "done",
    calls: list[dict[str, Any]] = (),
) -> str:  # type: ignore[assignment]
    """An episode as an older collector recorded it: its verdict, its reward, its messages and calls."""
    if not store.has_run(run):
        store.create_run(run, policy="scripted", model="expert", config={})
    eid = store.start_episode(run, task, 0, policy="scripted", model="expert")
    messages: list[dict[str, Any]] = [*task["messages"]]
    rows = []
    for i, call in enumerate(calls):
        call_id = f"c{i}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call["tool"], "arguments": json.dumps(call["arguments"])},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "name": call["tool"], "content": "ok"})
        rows.append(
            {
                "call_id": call_id,
                "turn": i,
                "server": call["server"],
                "tool": call["tool"],
                "arguments": json.dumps(call["arguments"]),
                "result": "ok",
                "is_error": 0,
                "malformed": 0,
                "error_kind": None,
                "duration_s": 0.01,
            }
        )
    messages.append({"role": "assistant", "content": answer})
    components = dict(OLD_COMPONENTS) if passed else {"success": 0.0, "efficiency": 0.0, "tool_use": 0.5, "format": 1.0}
    fields = {
        "status": status,
        "final_answer": answer,
        "passed": None if status != "done" else int(passed),
        "score": float(passed),
        "reward": sum(components.values()) if status == "done" else None,
        "reward_components": components if status == "done" else None,
        "verdict_details": {"recorded": "before the fix"},
        "tool_calls": len(rows),
    }
    if status != "done":
        fields["error_type"] = "policy_error"
    store.finish_episode(eid, fields=fields, messages=messages, tool_calls=rows)
    return eid


@pytest.fixture
def old_run(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A run recorded before the verifier fixes: hedges that passed, a right answer that failed, a workspace task."""
    db = tmp_path / "old.db"
    store = Store(db)
    ids = {
        "search_hedge": _episode(
            store,
            "old",
            _task("search/1", "search", {"type": "contains", "expected": ["Paris"]}, kind="masked_lead", title="Paris"),
            "London, Berlin, Madrid, Paris",
            passed=True,
        ),
        "search_right": _episode(
            store,
            "old",
            _task("search/2", "search", {"type": "contains", "expected": ["Lima"]}, kind="masked_lead", title="Lima"),
            "Lima",
            passed=True,
        ),
        "files_list": _episode(
            store,
            "old",
            _task(
                "files/find",
                "files",
                {"type": "regex", "pattern": r"(?<![\w./-])(?:\./)?docs/a\.txt(?![\w/-])"},
                kind="find_content",
                answer="docs/a.txt",
            ),
            "docs/b.txt\ndocs/a.txt\nnotes/c.txt",
            passed=True,
        ),
        "numeric_aside": _episode(
            store,
            "old",
            _task("weather/1", "weather", {"type": "numeric", "expected": 19.1, "tolerance": 0.15, "unit": "°C"}),
            "19.1 C (feels like 17 C)",
            passed=False,
        ),
        "math_hedge": _episode(
            store,
            "old",
            _task("math/1", "math", {"type": "math", "expected": "12/5"}),
            "The answer is 3, not 12/5",
            passed=True,
        ),
        "failed": _episode(
            store, "old", _task("math/2", "math", {"type": "math", "expected": "1"}), "", passed=False, status="failed"
        ),
        "workspace": _episode(
            store,
            "old",
            _task(
                "files/create",
                "files",
                {"type": "file_state", "files": {"notes/todo.md": "buy milk\n"}},
                servers=["files"],
                kind="create",
            ),
            "Created it.",
            passed=False,
            calls=[
                {
                    "server": "files",
                    "tool": "write_file",
                    "arguments": {"path": "notes/todo.md", "content": "buy milk\n"},
                }
            ],
        ),
    }
    store.close()
    return db, ids


def test_offline_verifiers_rejudge_without_servers_and_keep_the_old_verdicts(
    old_run: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    db, ids = old_run
    # only a toy server is attached: the workspace episode cannot be replayed, and the report says why
    report = reverify_run(db, "old", servers={"toy": toy_stdio_spec("toy")})
    assert report.episodes == 7 and report.judged == 5
    assert report.skipped == {
        "failed episode: it has no verdict": 1,
        "a file_state verifier needs the files server(s), which are not attached": 1,
    }
    assert (report.verdicts_changed, report.newly_failed, report.newly_passed) == (4, 3, 1)
    assert report.specs_updated == 3  # search x2 (contains -> exact), files find (regex -> exact)
    store = Store(db, readonly=True)
    now = {k: store.get_episode(v) for k, v in ids.items()}
    assert not now["search_hedge"]["passed"] and now["search_right"]["passed"]
    assert not now["files_list"]["passed"] and now["numeric_aside"]["passed"] and not now["math_hedge"]["passed"]
    assert now["search_hedge"]["task"]["verifier"]["type"] == "exact"
    assert now["search_hedge"]["reward"] < 13.5 and now["numeric_aside"]["reward"] >= 10.0
    (old,) = store.verdict_history(ids["search_hedge"])
    assert old["passed"] is True and old["reward"] == 13.5 and old["reason"] == "reverify"
    assert (old["verifier"]["type"], old["verifier"]["expected"]) == ("contains", ["Paris"])
    assert old["verdict_details"] == {"recorded": "before the fix"}
    assert store.verdict_history(ids["failed"]) == [] and store.get_episode(ids["workspace"])["passed"] is False
    view = episode_view(store, ids["numeric_aside"])
    assert view["previous_verdicts"][0]["passed"] is False and view["verdict_changed"] is True
    store.close()
    client = TestClient(create_app(db), base_url="http://127.0.0.1:8000")
    page = client.get(f"/episodes/{ids['search_hedge']}")
    assert page.status_code == 200 and "verdict changed" in page.text and "was passed, reward 13.5" in page.text
    listing = client.get("/episodes", params={"run": "old"})
    assert listing.status_code == 200 and listing.text.count("(changed)") == 4
    again = reverify_run(db, "old", servers={"toy": toy_stdio_spec("toy")})
    assert (again.judged, again.verdicts_changed, again.rewards_changed, again.specs_updated) == (5, 0, 0, 0)


def test_dry_run_writes_nothing(old_run: tuple[Path, dict[str, str]]) -> None:
    db, _ = old_run
    before = db.read_bytes()
    report = reverify_run(db, "old", servers={"toy": toy_stdio_spec("toy")}, dry_run=True)
    assert report.verdicts_changed == 4 and report.dry_run
    assert db.read_bytes() == before


@pytest.mark.slow
def test_workspace_episodes_are_replayed_and_collected_verdicts_are_reproduced(
    old_run: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Through the managed gateway (as collect starts it): the file_state episode is replayed and now passes; a
    scripted collection judged by the loop is judged identically again (the same `judge`)."""
    db, ids = old_run
    settings = CollectorSettings(workspace_root=tmp_path / "ws")
    report = reverify_run(db, "old", settings=settings)
    assert report.judged == 6 and report.skipped == {"failed episode: it has no verdict": 1}
    store = Store(db, readonly=True)
    workspace = store.get_episode(ids["workspace"])
    assert workspace["passed"] is True and workspace["verdict_details"]["files"] == {"notes/todo.md": "ok"}
    store.close()

    config = CollectConfig(
        db=db, run="gold", tasks=["files", "code"], policy="scripted", limit=6, seed=3, concurrency=3, settings=settings
    )
    summary = run_collection(config)
    assert summary.done == 6
    gold = reverify_run(db, "gold", settings=settings)
    assert gold.judged == 6 and not gold.skipped
    assert (gold.verdicts_changed, gold.rewards_changed, gold.specs_updated) == (0, 0, 0), gold.changes


def test_cli_reports_the_counts_and_unknown_runs(old_run: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, _ = old_run
    servers = tmp_path / "servers.yaml"
    spec = toy_stdio_spec("toy")
    servers.write_text(json.dumps({"mcpServers": {"toy": {"command": spec.command, "args": list(spec.args)}}}))
    result = CliRunner().invoke(reverify_cmd, ["--db", str(db), "--run", "old", "--servers", str(servers)])
    assert result.exit_code == 0, result.output
    assert "verdict changed" in result.output and "4" in result.output
    assert "old/search/1/0: passed -> not passed" in result.output
    assert "failed episode: it has no verdict" in result.output
    missing = CliRunner().invoke(reverify_cmd, ["--db", str(db), "--run", "nope"])
    assert missing.exit_code != 0 and "no run named 'nope'" in missing.output and "old" in missing.output
