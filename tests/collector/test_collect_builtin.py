"""End to end: built-in task families, the scripted experts, and the collector-managed `mcpgym serve all`."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.collect import CollectConfig, run_collection
from collector.settings import CollectorSettings
from collector.store import Store


@pytest.mark.slow
def test_scripted_experts_solve_builtin_families_through_the_managed_gateway(tmp_path: Path) -> None:
    settings = CollectorSettings(workspace_root=tmp_path / "ws")
    config = CollectConfig(db=tmp_path / "t.db", run="gold", tasks=["weather", "files", "code"], policy="scripted",
                           limit=6, concurrency=3, seed=7, settings=settings)
    summary = run_collection(config)
    assert (summary.done, summary.failed) == (6, 0), summary.errors
    assert summary.passed == 6 and set(summary.by_family) == {"weather", "files", "code"}
    store = Store(tmp_path / "t.db", readonly=True)
    episodes = list(store.episodes(["gold"]))
    assert len(episodes) == 6 and all(e["policy"] == "scripted" and e["passed"] for e in episodes)
    code = next(e for e in episodes if e["family"] == "code")
    assert code["verdict_details"]["tests_passed"] == code["verdict_details"]["tests_total"] > 0
    calls = [c for e in episodes for c in store.tool_calls(e["id"])]
    assert {c["server"] for c in calls} >= {"weather", "files"} and not any(c["malformed"] for c in calls)
    servers = {r[0] for r in store.db.execute("SELECT DISTINCT server FROM tool_schemas WHERE run_id = 'gold'")}
    assert {"weather", "files", "exec"} <= servers
    assert not (tmp_path / "ws").joinpath("workspaces").exists() or not any(
        (tmp_path / "ws" / "workspaces").iterdir())  # per-session workspaces released
