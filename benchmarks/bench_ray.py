"""Benchmark collection on Ray against the plain collector, and the store's write rate, in one run.

The same scripted collection (the weather experts through the real `mcpgym serve all` gateway, offline backend)
runs three ways on this machine:

- plain: `run_collection` in this process (one gateway);
- ray-1: `collect_ray` with one worker on a local Ray cluster (the worker starts its own gateway);
- ray-2: two workers on two worker nodes of the cluster (a gateway each).

The cluster is `ray.cluster_utils.Cluster`: a head without CPUs and two worker nodes of one CPU each (so the figures
are for 2 cores: they show the overhead, not a speed-up). Per mode: wall time of the episodes (worker start-up left
out and reported apart), wall per episode, and for Ray where the time goes: the workers' own time per episode, the
round trip minus that (scheduling, serialisation, transport), the driver's store writes.

Then the store alone: episodes of the same shape (4 messages, 1 tool call) written as the driver writes them (a
`running` row, then the finished episode in one transaction), for the rate the single writer can sustain.

Usage:
    python benchmarks/bench_ray.py [--tasks 24] [--concurrency 4] [--store-episodes 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MB = 1024 * 1024


def _plain(db: Path, tasks: int, concurrency: int) -> dict[str, Any]:
    from collector.collect import CollectConfig, run_collection

    starts: list[float] = []
    t0 = time.perf_counter()
    cfg = CollectConfig(db=db, run="plain", tasks=["weather"], policy="scripted", limit=tasks,
                        concurrency=concurrency, split=None)
    summary = run_collection(cfg, on_progress=lambda s, r: starts.append(time.perf_counter()) if r is None else None)
    total = time.perf_counter() - t0
    episodes_s = summary.wall_time_s
    return {"mode": "plain", "episodes": summary.done, "failed": summary.failed, "start_s": total - episodes_s,
            "episodes_s": episodes_s, "per_episode_ms": 1000 * episodes_s / max(1, summary.done)}


def _ray(db: Path, address: str, workers: int, tasks: int, concurrency: int) -> dict[str, Any]:
    from collector.collect import CollectConfig
    from collector.distributed import RayStats, collect_ray

    stats = RayStats()
    t0 = time.perf_counter()
    cfg = CollectConfig(db=db, run=f"ray{workers}", tasks=["weather"], policy="scripted", limit=tasks,
                        concurrency=concurrency, split=None, ray=address, workers=workers)
    summary = collect_ray(cfg, stats=stats)
    total = time.perf_counter() - t0
    n = max(1, summary.done)
    return {"mode": f"ray-{workers}", "episodes": summary.done, "failed": summary.failed, "nodes": len(stats.nodes),
            "start_s": total - summary.wall_time_s, "workers_start_s": stats.start_s,
            "episodes_s": summary.wall_time_s, "per_episode_ms": 1000 * summary.wall_time_s / n,
            "worker_ms": 1000 * stats.worker_s / n, "transport_ms": 1000 * (stats.roundtrip_s - stats.worker_s) / n,
            "store_ms": 1000 * stats.store_s / n}


def _store_rate(path: Path, episodes: int) -> dict[str, Any]:
    from collector.store import Store

    store = Store(path)
    store.create_run("w", policy="scripted", model="expert", config={})
    messages = [{"role": "user", "content": "What is the weather in Paris? " * 4},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function", "function": {
                    "name": "weather__get_current_weather", "arguments": '{"location": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "c0", "name": "weather__get_current_weather",
                 "content": json.dumps({"location": "Paris", "temperature_c": 18.5, "conditions": "cloudy"} )},
                {"role": "assistant", "content": "It is 18.5 °C and cloudy in Paris."}]
    calls = [{"call_id": "c0", "turn": 0, "server": "weather", "tool": "get_current_weather",
              "arguments": '{"location": "Paris"}', "result": messages[2]["content"], "is_error": 0}]
    task = {"id": "", "family": "weather", "split": "train", "messages": messages[:1]}
    fields = {"status": "done", "passed": 1, "score": 1.0, "reward": 13.5, "turns": 2, "tool_calls": 1,
              "reward_components": {"success": 10.0, "efficiency": 2.0}, "verdict_details": {"expected": "18.5"},
              "tools": [{"type": "function", "function": {"name": "weather__get_current_weather"}}]}
    t0 = time.perf_counter()
    for i in range(episodes):
        eid = store.start_episode("w", {**task, "id": f"t{i}"}, 0, policy="scripted", model="expert")
        store.finish_episode(eid, fields=fields, messages=messages, tool_calls=calls)
    elapsed = time.perf_counter() - t0
    store.close()
    return {"episodes": episodes, "seconds": elapsed, "episodes_per_s": episodes / elapsed,
            "db_bytes_per_episode": path.stat().st_size / episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=24, help="weather tasks per mode")
    parser.add_argument("--concurrency", type=int, default=4, help="episodes in flight (per worker for Ray)")
    parser.add_argument("--store-episodes", type=int, default=2000, help="episodes written in the store test")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        rows.append(_plain(root / "plain.db", args.tasks, args.concurrency))
        t0 = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": 80 * MB, "include_dashboard": False})
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
            cluster.wait_for_nodes()
            cluster_s = time.perf_counter() - t0
            ray.init(address=cluster.address, logging_level="warning")
            for workers in (1, 2):
                rows.append(_ray(root / f"ray{workers}.db", cluster.address, workers, args.tasks, args.concurrency))
        finally:
            ray.shutdown()
            cluster.shutdown()
        store = _store_rate(root / "store.db", args.store_episodes)
    plain = rows[0]["per_episode_ms"]
    print(f"local Ray cluster (head + 2 worker nodes of 1 CPU) started in {cluster_s:.1f}s")
    print(f"{'mode':<7}{'episodes':>9}{'start s':>9}{'wall s':>8}{'ms/ep':>8}{'overhead ms/ep':>16}"
          f"{'worker ms':>11}{'transport ms':>14}{'store ms':>10}")
    for r in rows:
        over = r["per_episode_ms"] - plain
        print(f"{r['mode']:<7}{r['episodes']:>9}{r['start_s']:>9.2f}{r['episodes_s']:>8.2f}{r['per_episode_ms']:>8.1f}"
              f"{over:>16.1f}{r.get('worker_ms', float('nan')):>11.1f}{r.get('transport_ms', float('nan')):>14.1f}"
              f"{r.get('store_ms', float('nan')):>10.2f}")
    print(f"store: {store['episodes_per_s']:.0f} episodes/s written one transaction pair each "
          f"({store['episodes']} episodes, {store['db_bytes_per_episode']:.0f} bytes each)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_ray-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "cluster_start_s": cluster_s, "modes": rows, "store": store},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
