"""Benchmark the collector's own overhead per step against a raw loop making the same calls, in the same run.

An instant OpenAI-compatible server (a uvicorn subprocess on 127.0.0.1) answers each episode's first turn with a
`get_current_weather` call and its second turn with a final answer; tools are the real weather server behind the
real `mcpgym serve all` gateway (offline backend). At each concurrency level the same episodes run twice:

- collector: `run_collection` (MCP session per episode, argument validation, verifier, rewards, SQLite writes);
- baseline: a bare asyncio loop doing the same HTTP calls (one MCP client session per episode, the same two chat
  completions and the same tool call) and nothing else.

Two overhead figures per step (one assistant turn), each the collector's minus the baseline's:
- CPU: the client process's CPU time per step (the collector's own work: validation, messages, verifier, rewards,
  SQLite writes; independent of how long requests wait in the servers' queues);
- wall: the time an episode's loop spends outside chat completions and tool calls, per step (MCP session connect
  and close are left out of both sides: they are server round trips, and under load they measure server queueing).
The CPU time of the gateway's processes per episode is measured on both sides too (where the tools' time goes).
With `--client-tree DIR` the collector of another checkout (e.g. the commit before a client change) runs too, in
the same run and against the same gateway: then both collectors run in child processes (each warmed up first), the
order of the three sides rotating between levels.
Prints a table; writes JSON to benchmarks/results/ (gitignored).

Usage:
    python benchmarks/bench_collector.py [--levels 1,8,64] [--episodes 32,96,256] [--workers 1] [--client-tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

INSTANT_SERVER = r'''
import json, sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn

CALL = {"id": "c0", "type": "function",
        "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}}

def body(message):
    return {"id": "x", "object": "chat.completion", "model": "instant",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}

async def chat(request):
    data = json.loads(await request.body())
    if any(m["role"] == "tool" for m in data["messages"]):
        return JSONResponse(body({"role": "assistant", "content": "The weather in Paris: looked up."}))
    return JSONResponse(body({"role": "assistant", "content": None, "tool_calls": [CALL]}))

async def models(request):
    return JSONResponse({"object": "list", "data": [{"id": "instant", "object": "model"}]})

app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_instant_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", INSTANT_SERVER, str(port)])
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/models", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the instant chat server did not start")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants (a gateway with --workers has several)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().split(") ")[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                stack += [int(c) for c in task.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def make_tasks(n: int) -> list[Any]:
    from collector.tasks.model import Task, VerifierSpec

    return [Task(id=f"bench-{i:04d}", family="bench", servers=["weather"], optimal_steps=1,
                 messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                 verifier=VerifierSpec(type="contains", expected="Paris")) for i in range(n)]


def collector_run(db: Path, base: str, gateway_specs: dict[str, Any], level: int, n: int, run: str
                  ) -> dict[str, Any]:
    """Run the real collector; per-episode outside time from the store's own timings."""
    from collector.collect import CollectConfig, run_collection
    from collector.store import Store

    cfg = CollectConfig(db=db, run=run, task_list=make_tasks(n), policy="openai", model="instant",
                        base_url=base, servers=gateway_specs, concurrency=level, max_turns=4)
    start, cpu = time.perf_counter(), time.process_time()
    summary = run_collection(cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert summary.done == n and summary.passed == n, summary
    store = Store(db, readonly=True)
    outside: list[float] = []
    steps = 0
    episodes = list(store.episodes([run]))
    # episodes' own span: from the first start to the last finish (leaves out run set-up and tear-down)
    span_s = max(e["finished_at"] for e in episodes) - min(e["started_at"] for e in episodes)
    for ep in episodes:
        span = ep["wall_time_s"]  # run_episode: setup, turns, verifier, rewards (not MCP connect/close)
        policy = sum(m.get("latency_s") or 0.0 for m in store.messages(ep["id"]))
        per_turn: dict[int, float] = {}
        for c in store.tool_calls(ep["id"]):
            per_turn[c["turn"]] = max(per_turn.get(c["turn"], 0.0), c["duration_s"] or 0.0)
        outside.append((span - policy - sum(per_turn.values())) / ep["turns"])
        steps += ep["turns"]
    store.close()
    return {"wall_s": span_s, "run_wall_s": wall, "cpu_s": cpu, "episodes": n, "steps": steps,
            "outside_ms_per_step": 1000 * statistics.mean(outside)}


def child_collector_run(tree: Path, base: str, url: str, level: int, n: int, run: str, db: Path) -> dict[str, Any]:
    """`collector_run` in a child process that imports the collector of `tree` (warm-up run first)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}  # not the working directory
    args = json.dumps({"base": base, "url": url, "level": level, "n": n, "run": run, "db": str(db)})
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", args], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the collector of {tree} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child_main(raw: str) -> None:
    """The child side of `child_collector_run`: print the run's figures as one JSON line."""
    from collector.servers import ServerSpec

    opts = json.loads(raw)
    specs = {"weather": ServerSpec(name="weather", url=opts["url"])}
    db = Path(opts["db"])
    collector_run(db, opts["base"], specs, 1, 4, f"{opts['run']}-warm-up")
    out = collector_run(db, opts["base"], specs, opts["level"], opts["n"], opts["run"])
    import collector

    out["tree"] = str(Path(collector.__file__).resolve().parent.parent)
    print(json.dumps(out))


async def _baseline(base: str, url: str, level: int, n: int) -> dict[str, Any]:
    """The same HTTP traffic with nothing around it."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    sem = asyncio.Semaphore(level)
    outside: list[float] = []
    tools = [{"type": "function", "function": {"name": "get_current_weather", "description": "",
                                               "parameters": {"type": "object"}}}]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None)) as chat, \
            create_mcp_http_client() as mcp_http:

        async def episode() -> None:
            async with sem:
                inside = 0.0
                async with Client(streamable_http_client(url, http_client=mcp_http, terminate_on_close=True)) as c:
                    start = time.perf_counter()
                    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
                    for _ in range(2):
                        t0 = time.perf_counter()
                        resp = await chat.post(f"{base}/chat/completions",
                                               json={"model": "instant", "messages": messages, "tools": tools})
                        msg = resp.json()["choices"][0]["message"]
                        inside += time.perf_counter() - t0
                        messages.append(msg)
                        for call in msg.get("tool_calls") or []:
                            t0 = time.perf_counter()
                            result = await c.call_tool(call["function"]["name"],
                                                       json.loads(call["function"]["arguments"]))
                            inside += time.perf_counter() - t0
                            messages.append({"role": "tool", "tool_call_id": call["id"],
                                             "content": result.content[0].text})  # type: ignore[union-attr]
                    outside.append((time.perf_counter() - start - inside) / 2)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(episode() for _ in range(n)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "episodes": n, "steps": 2 * n,
            "outside_ms_per_step": 1000 * statistics.mean(outside)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,64", help="Concurrency levels (comma-separated).")
    parser.add_argument("--episodes", default="32,96,256", help="Episodes per level (comma-separated).")
    parser.add_argument("--workers", type=int, default=1, help="Gateway processes (`mcpgym serve all --workers`).")
    parser.add_argument("--other-tree", type=Path, default=None,
                        help="Run the gateway of another checkout of mcpgym (e.g. an older commit); the collector "
                             "stays this one.")
    parser.add_argument("--client-tree", type=Path, default=None,
                        help="Also run the collector of another checkout (e.g. the commit before a client change) "
                             "against the same gateway; both collectors then run in child processes.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child_main(args.child)
        return
    levels = [int(x) for x in args.levels.split(",")]
    counts = [int(x) for x in args.episodes.split(",")]
    if len(counts) != len(levels):
        parser.error("--episodes needs one count per level")

    from collector.servers import ServerSpec
    from mcp_servers.gateway.process import GatewayProcess

    RESULTS.mkdir(parents=True, exist_ok=True)
    chat_proc, base = start_instant_server()
    root = Path(tempfile.mkdtemp(prefix="mcpgym-bench-"))
    # the command `mcpgym collect` starts (collector.servers.ManagedGateway), plus --workers
    extra = ["--workers", str(args.workers)] if args.workers != 1 else []
    env = None
    if args.other_tree is not None:
        env = {**os.environ, "PYTHONPATH": str(args.other_tree), "PYTHONSAFEPATH": "1"}  # not the working dir
    gateway = GatewayProcess(["all"], workspace=root / "workspaces", extra_args=extra, env=env).start()
    assert gateway.proc is not None
    gw_pid = gateway.proc.pid
    rows = []
    try:
        url = gateway.url("weather")
        specs = {"weather": ServerSpec(name="weather", url=url)}
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.db"
            collector_run(db, base, specs, 1, 4, "warm-up")  # warm-up: imports, caches, connections
            asyncio.run(_baseline(base, url, 1, 4))
            for i, (level, n) in enumerate(zip(levels, counts, strict=True)):

                def base_run(level: int = level, n: int = n) -> dict[str, Any]:
                    before = tree_cpu_seconds(gw_pid)
                    out = asyncio.run(_baseline(base, url, level, n))
                    out["gateway_cpu_s"] = tree_cpu_seconds(gw_pid) - before
                    return out

                def coll_run(level: int = level, n: int = n, i: int = i, tree: Path | None = None) -> dict[str, Any]:
                    before = tree_cpu_seconds(gw_pid)
                    if args.client_tree is None:
                        out = collector_run(db, base, specs, level, n, f"bench-{i}-c{level}")
                    else:
                        name = "other" if tree is not None else "this"
                        out = child_collector_run(tree or ROOT, base, url, level, n, f"bench-{i}-c{level}-{name}",
                                                  Path(tmp) / f"bench-{name}.db")
                    out["gateway_cpu_s"] = tree_cpu_seconds(gw_pid) - before
                    return out

                sides: dict[str, Any] = {"baseline": base_run, "collector": coll_run}
                if args.client_tree is not None:
                    sides["other"] = lambda level=level, n=n, i=i: coll_run(level, n, i, args.client_tree)
                order = list(sides)
                order = order[i % len(order):] + order[:i % len(order)]  # rotate: drifting load favours no side
                got = {side: sides[side]() for side in order}
                c, b = got["collector"], got["baseline"]
                rows.append({"concurrency": level, **got, "order": order,
                             "overhead_ms_per_step": c["outside_ms_per_step"] - b["outside_ms_per_step"],
                             "cpu_overhead_ms_per_step": 1000 * (c["cpu_s"] / c["steps"] - b["cpu_s"] / b["steps"])})
    finally:
        gateway.stop()
        chat_proc.kill()
        shutil.rmtree(root, ignore_errors=True)

    header = (f"{'conc':>4} {'episodes':>8} {'coll ep/s':>9} {'base ep/s':>9} {'coll ms/step':>12} "
              f"{'base ms/step':>12} {'coll outside':>12} {'base outside':>12} {'wall ovh':>8} "
              f"{'coll CPU':>8} {'base CPU':>8} {'CPU ovh':>8} {'gw CPU ms/ep':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        c, b = r["collector"], r["baseline"]
        print(f"{r['concurrency']:>4} {c['episodes']:>8} {c['episodes'] / c['wall_s']:>9.1f} "
              f"{b['episodes'] / b['wall_s']:>9.1f} {1000 * c['wall_s'] / c['steps']:>12.2f} "
              f"{1000 * b['wall_s'] / b['steps']:>12.2f} {c['outside_ms_per_step']:>12.2f} "
              f"{b['outside_ms_per_step']:>12.2f} {r['overhead_ms_per_step']:>8.2f} "
              f"{1000 * c['cpu_s'] / c['steps']:>8.2f} {1000 * b['cpu_s'] / b['steps']:>8.2f} "
              f"{r['cpu_overhead_ms_per_step']:>8.2f} {1000 * c['gateway_cpu_s'] / c['episodes']:>12.2f}")
    print("All times in ms per step (one assistant turn). ms/step = wall time / steps (collector: first episode start"
          " to last episode end). outside = an episode loop's "
          "time outside chat and tool calls, per step; wall ovh = collector outside - baseline outside. CPU = the "
          "client process's CPU time per step; CPU ovh = collector - baseline. gw CPU ms/ep = the gateway processes' CPU "
          "time per collector episode. Target: overhead < 5 ms/step at concurrency 64.")
    if args.client_tree is not None:
        print(f"\nthe collector of {args.client_tree} (other) against this one, same run and gateway:")
        print(f"{'conc':>4} {'episodes':>8} {'this ep/s':>9} {'other ep/s':>10} {'ratio':>6} {'this CPU':>8} "
              f"{'other CPU':>9} {'this gw ms/ep':>13} {'other gw ms/ep':>14}")
        for r in rows:
            c, o = r["collector"], r["other"]
            this_rate, other_rate = c["episodes"] / c["wall_s"], o["episodes"] / o["wall_s"]
            print(f"{r['concurrency']:>4} {c['episodes']:>8} {this_rate:>9.1f} {other_rate:>10.1f} "
                  f"{this_rate / other_rate:>6.2f} {1000 * c['cpu_s'] / c['steps']:>8.2f} "
                  f"{1000 * o['cpu_s'] / o['steps']:>9.2f} {1000 * c['gateway_cpu_s'] / c['episodes']:>13.2f} "
                  f"{1000 * o['gateway_cpu_s'] / o['episodes']:>14.2f}")
    load = os.getloadavg()
    tree = f" from {args.other_tree}" if args.other_tree else ""
    print(f"gateway workers: {args.workers}{tree}; load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    out = RESULTS / f"bench_collector_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
