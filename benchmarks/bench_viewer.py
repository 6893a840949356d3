"""Viewer page latency on a 100,000-episode database against a 1,000-episode baseline built in the same run.

Usage: .venv/bin/python benchmarks/bench_viewer.py [--episodes 100000] [--baseline 1000] [--repeat 5]
    [--without-indexes]

Each database is generated with executemany through the store's own schema (Store creates the tables). Pages are
fetched over real HTTP from uvicorn on 127.0.0.1; the median of `--repeat` loads is reported. A naive full load of
every episode row (what a viewer without SQL paging would do) is timed as a second reference. Results go to
benchmarks/results/bench_viewer.json.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.store import Store
from collector.viewer import create_app

FAMILIES = ("weather", "files", "search", "code")
PAGES = (
    ("runs", "/runs"),
    ("episodes p1", "/episodes"),
    ("episodes p1000", "/episodes?page=1000"),
    ("filter run+family+passed", "/episodes?run=run-1&family=code&passed=no"),
    ("filter reward range", "/episodes?reward_min=0.2&reward_max=0.4"),
    ("filter error type", "/episodes?error_type=PolicyError"),
    ("text search", "/episodes?q=berlin"),
    ("episode page", "/episodes/run-2/search-00042/2"),
    ("charts", "/charts"),
    ("api episodes", "/api/episodes?family=files"),
)


def generate(path: Path, n: int, seed: int = 0) -> None:
    """A database of `n` episodes over 4 runs, each with 5 messages and one tool call."""
    rng = random.Random(seed)
    store = Store(path)
    runs = [f"run-{i}" for i in range(4)]
    for i, run in enumerate(runs):
        store.create_run(run, policy="local" if i % 2 else "scripted", model="SmolLM2-135M-Instruct", config={},
                         kind="eval" if i >= 2 else "collect")
    cities = ["Paris", "Berlin", "Oslo", "Lima", "Tokyo", "Cairo"]
    episodes, messages, calls = [], [], []
    now = time.time()
    for k in range(n):
        run, family = runs[k % 4], FAMILIES[(k // 4) % 4]
        task_id = f"{family}-{k // 16:05d}"
        eid = f"{run}/{task_id}/{k % 16 // 4}"
        failed = rng.random() < 0.03
        passed = None if failed else int(rng.random() < 0.6)
        city = rng.choice(cities)
        task = json.dumps({"id": task_id, "family": family, "messages": [{"role": "user", "content": f"Weather in {city}?"}]})
        episodes.append((eid, run, task_id, family, "train", k % 16 // 4, "local", "m", "failed" if failed else "done",
                         task, None if failed else f"It is {rng.randint(-5, 30)} C in {city}.", passed,
                         None if failed else rng.random(), None if failed else rng.random(), rng.randint(1, 8),
                         rng.randint(0, 6), "PolicyError" if failed else None, now - n + k))
        args = json.dumps({"location": city})
        messages.extend([
            (eid, 0, "system", "You are helpful.", None, None, None, None),
            (eid, 1, "user", f"Weather in {city}?", None, None, None, None),
            (eid, 2, "assistant", None, json.dumps([{"id": "c1", "type": "function", "function": {
                "name": "weather__get_current_weather", "arguments": args}}]), None, None, 0.4),
            (eid, 3, "tool", f'{{"temperature": 12, "city": "{city}"}}', None, "c1", "weather__get_current_weather", None),
            (eid, 4, "assistant", f"It is 12 C in {city}.", None, None, None, 0.3),
        ])
        calls.append((eid, "c1", 0, "weather", "get_current_weather", args, "12", 0, 0.01))
    with store.db.conn:
        store.db.conn.executemany(
            "INSERT INTO episodes (id, run_id, task_id, family, split, sample_index, policy, model, status, task, "
            "final_answer, passed, score, reward, turns, tool_calls, error_type, started_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", episodes)
        store.db.conn.executemany(
            "INSERT INTO messages (episode_id, idx, role, content, tool_calls, tool_call_id, name, latency_s) "
            "VALUES (?,?,?,?,?,?,?,?)", messages)
        store.db.conn.executemany(
            "INSERT INTO tool_calls (episode_id, call_id, turn, server, tool, arguments, result, is_error, duration_s) "
            "VALUES (?,?,?,?,?,?,?,?,?)", calls)
    for run in runs:
        store.finish_run(run)
    store.close()


def drop_v2_indexes(db: Path) -> None:
    """Drop the indexes schema version 2 added, leaving the layout of schema 1 (measured with --without-indexes)."""
    store = Store(db)
    with store.db.conn:
        for name in ("ix_episodes_run_summary", "ix_episodes_error_type"):
            store.db.execute(f"DROP INDEX IF EXISTS {name}")
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(db: Path, repeat: int) -> dict[str, float]:
    """Median milliseconds per page, fetched over HTTP from a uvicorn server on 127.0.0.1."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(200):
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        out = {}
        for name, url in PAGES:
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}: {response.text[:200]}")
            out[name] = statistics.median(times)
    server.should_exit = True
    thread.join(timeout=10)
    return out


def naive_full_load(db: Path) -> float:
    """Milliseconds to load every episode row through Store.episodes() (no SQL paging)."""
    store = Store(db, readonly=True)
    t0 = time.perf_counter()
    count = sum(1 for _ in store.episodes())
    elapsed = (time.perf_counter() - t0) * 1000
    store.close()
    assert count > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--without-indexes", action="store_true",
                        help="also measure the 100,000-episode database without the indexes of schema version 2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.db", Path(tmp) / "big.db"
        t0 = time.perf_counter()
        generate(small, args.baseline)
        generate(big, args.episodes)
        gen_s = time.perf_counter() - t0
        base, large = measure(small, args.repeat), measure(big, args.repeat)
        naive = naive_full_load(big)
        size_mb = big.stat().st_size / 1e6
        unindexed: dict[str, float] = {}
        if args.without_indexes:
            drop_v2_indexes(big)
            unindexed = measure(big, args.repeat)
    print(f"viewer page latency, median of {args.repeat} (databases generated in {gen_s:.1f}s; "
          f"{args.episodes:,} episodes = {size_mb:.0f} MB)")
    header = f"{'page':<28}{args.baseline:>10,} ep{args.episodes:>12,} ep{'ratio':>8}"
    if unindexed:
        header += f"{'schema 1':>14}"
    print(header)
    print("-" * len(header))
    for name, _ in PAGES:
        line = f"{name:<28}{base[name]:>10.1f}ms{large[name]:>12.1f}ms{large[name] / base[name]:>8.1f}x"
        if unindexed:
            line += f"{unindexed[name]:>12.1f}ms"
        print(line)
    print(f"{'(naive: load all episodes)':<28}{'':>12}{naive:>12.1f}ms")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_viewer.json").write_text(json.dumps(
        {"episodes": args.episodes, "baseline": args.baseline, "ms": large, "baseline_ms": base, "naive_ms": naive,
         "schema1_ms": unindexed},
        indent=2))


if __name__ == "__main__":
    main()
