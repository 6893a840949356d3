"""Collection on a real local Ray cluster (a head and worker nodes on this machine, `ray.cluster_utils.Cluster`).

The cluster is small on purpose: one CPU per worker node, a small object store, no dashboard. The policy is the
fake OpenAI server of the other collection tests (in this process, reached by the workers over loopback) and the
tools are the toy MCP server over stdio, one process per episode on the worker that runs it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from collect_helpers import echo_solver, echo_tasks
from fake_openai import FakeOpenAI
from ray.cluster_utils import Cluster
from toy_fixtures import toy_stdio_spec

from collector.collect import CollectConfig, run_collection
from collector.distributed import RayStats, collect_ray
from collector.errors import ConfigError
from collector.export import export_run
from collector.store import Store

pytestmark = pytest.mark.slow

_STORE_MB = 80 * 1024 * 1024
_NODE = {"num_cpus": 1, "object_store_memory": _STORE_MB}
# a removed node is noticed in about a second, not the default fifteen
_FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                 "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head without CPUs (nothing runs there) and two worker nodes of one CPU each."""
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": _STORE_MB, "include_dashboard": False, "_system_config": _FAST_FAILURE})
    try:
        for _ in range(2):
            c.add_node(**_NODE)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


def _config(tmp_path: Path, fake: FakeOpenAI, cluster: Cluster, **kw: Any) -> CollectConfig:
    base: dict[str, Any] = {"db": tmp_path / "t.db", "run": "r", "task_list": echo_tasks(6), "policy": "openai",
                            "model": "fake", "base_url": fake.base_url, "servers": {"files": toy_stdio_spec()},
                            "samples": 2, "concurrency": 2, "ray": cluster.address}
    base.update(kw)
    return CollectConfig(**base)


def _pairs(db: Path, run: str = "r") -> list[tuple[str, int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT task_id, sample_index, status FROM episodes WHERE run_id = ?", [run]).fetchall()


def _check_export(tmp_path: Path, db: Path, expected: int) -> None:
    out = tmp_path / "out.jsonl"
    assert export_run(db, "r", "openai-jsonl", str(out)) == expected
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == expected
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert row["messages"][-1]["content"] == row["messages"][0]["content"] and row["reward"] > 0


def test_collection_over_two_worker_nodes(tmp_path: Path, cluster: Cluster) -> None:
    stats = RayStats()
    with FakeOpenAI(echo_solver(delay_s=0.05)) as fake:
        summary = collect_ray(_config(tmp_path, fake, cluster, workers=2), stats=stats)
    assert (summary.total, summary.done, summary.failed, summary.passed) == (12, 12, 0, 12)
    rows = _pairs(tmp_path / "t.db")
    assert sorted((t, k) for t, k, _ in rows) == sorted((f"echo-{i:03d}", k) for i in range(6) for k in range(2))
    assert {s for _, _, s in rows} == {"done"}
    assert len(stats.nodes) == 2 and stats.workers_lost == 0  # both worker nodes ran episodes' workers
    store = Store(tmp_path / "t.db", readonly=True)
    run = store.get_run("r")
    assert run["status"] == "done" and run["policy"] == "openai" and run["config"]["ray"] == cluster.address
    assert store.db.execute("SELECT COUNT(*) FROM tool_schemas WHERE run_id = 'r'").fetchone()[0] >= 5
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 12 * 4
        assert conn.execute("SELECT COUNT(*) FROM tool_calls").fetchone()[0] == 12
    _check_export(tmp_path, tmp_path / "t.db", 12)


def test_resume_and_existing_run_through_the_ray_path(tmp_path: Path, cluster: Cluster) -> None:
    with FakeOpenAI(echo_solver()) as fake:
        run_collection(_config(tmp_path, fake, cluster, task_list=echo_tasks(2), samples=1, workers=1))
        with pytest.raises(ConfigError, match="--resume"):
            run_collection(_config(tmp_path, fake, cluster, task_list=echo_tasks(2), samples=1, workers=1))
        # a crashed driver leaves a `running` row: --resume runs it again (and only it, with the new samples)
        with sqlite3.connect(tmp_path / "t.db") as conn:
            conn.execute("UPDATE episodes SET status = 'running' WHERE task_id = 'echo-001'")
        again = run_collection(_config(tmp_path, fake, cluster, task_list=echo_tasks(2), samples=2, workers=1,
                                       resume=True))
    assert (again.total, again.skipped, again.done, again.reset_in_flight) == (4, 1, 3, 1)
    rows = _pairs(tmp_path / "t.db")
    assert sorted((t, k) for t, k, s in rows if s == "done") == [(f"echo-00{i}", k) for i in range(2) for k in range(2)]
    assert len(rows) == 4


def test_node_removed_mid_run_then_the_run_completes(tmp_path: Path, cluster: Cluster) -> None:
    db = tmp_path / "t.db"
    cluster.add_node(**_NODE)  # a spare node: room for the replacement worker
    cluster.wait_for_nodes()
    stats = RayStats()
    removed = threading.Event()

    def remove_when_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                with sqlite3.connect(db) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done >= 3:  # a node that runs a worker goes away (the head runs none)
                victim = next(n for n in cluster.list_all_nodes() if n.node_id in stats.nodes)
                cluster.remove_node(victim, allow_graceful=False)
                removed.set()
                return

    watcher = threading.Thread(target=remove_when_started, daemon=True)
    with FakeOpenAI(echo_solver(delay_s=0.3)) as fake:
        watcher.start()
        summary = collect_ray(_config(tmp_path, fake, cluster, task_list=echo_tasks(10), samples=2, workers=2),
                              stats=stats)
        watcher.join(timeout=60)
    assert removed.is_set(), "the node was not removed during the run"
    assert stats.workers_lost >= 1 and stats.episodes_requeued >= 1
    assert (summary.total, summary.done, summary.failed) == (20, 20, 0)
    rows = _pairs(db)
    assert len(rows) == 20 and len({(t, k) for t, k, _ in rows}) == 20 and {s for _, _, s in rows} == {"done"}
    with sqlite3.connect(db) as conn:  # nothing of the lost worker's episodes was written twice or left behind
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 20 * 4
        assert conn.execute("SELECT COUNT(*) FROM tool_calls").fetchone()[0] == 20
    _check_export(tmp_path, db, 20)


def test_bad_workers_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers must be >= 1 and needs --ray"):
        CollectConfig(db=tmp_path / "t.db", run="r", workers=2).validate()
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        CollectConfig(db=tmp_path / "t.db", run="r", ray="auto", workers=0).validate()


def _orphan_gateways(since: float) -> list[int]:
    """`mcpgym serve all` processes started after `since` whose parent is gone (reparented to init)."""
    found = []
    boot = float(next(line.split()[1] for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime")))
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"serve\x00all" in cmd and stat[1] == "1" and boot + int(stat[19]) / tick >= since - 1:
            found.append(int(entry.name))
    return found


def test_gateway_per_worker_and_a_node_removed_leaves_no_gateway_behind(tmp_path: Path, cluster: Cluster) -> None:
    """The scripted experts through a `mcpgym serve all` of each worker's own; the node of one worker goes away."""
    db = tmp_path / "t.db"
    cluster.add_node(**_NODE)  # room for the replacement worker
    cluster.wait_for_nodes()
    stats = RayStats()
    started = time.time()

    def remove_when_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(stats.nodes) < 2:
            time.sleep(0.05)
        time.sleep(0.2)
        victim = next(n for n in cluster.list_all_nodes() if n.node_id in stats.nodes)
        cluster.remove_node(victim, allow_graceful=False)

    watcher = threading.Thread(target=remove_when_started, daemon=True)
    watcher.start()
    # enough episodes that the node goes while work is left: the scripted experts over the sessionless client run
    # 50+ episodes a second per worker, so 160 could all be done before the removal
    summary = collect_ray(CollectConfig(db=db, run="g", tasks=["weather"], policy="scripted", limit=40, samples=25,
                                        split=None, concurrency=2, ray=cluster.address, workers=2), stats=stats)
    watcher.join(timeout=60)
    assert stats.workers_lost >= 1 and (summary.total, summary.done, summary.failed) == (1000, 1000, 0)
    rows = _pairs(db, "g")
    assert len(rows) == 1000 and len({(t, k) for t, k, _ in rows}) == 1000
    deadline = time.monotonic() + 20  # the lost worker's gateway is stopped by its watchdog within seconds
    while time.monotonic() < deadline and _orphan_gateways(started):
        time.sleep(0.5)
    assert _orphan_gateways(started) == []
