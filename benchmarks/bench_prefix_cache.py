"""Benchmark the local policy's prefix cache on real multi-turn episodes: turns reused vs the system turn only.

Runs the same held-out episodes (real MCP servers, the collector's episode loop, greedy decoding) through
`LocalPolicy` twice per repeat, alternating the order so both modes see the same machine load:

- system (the baseline): `cache_turns=False`, only the shared system turn (the tools) is cached, so each turn of an
  episode computes the whole conversation again;
- turns: `cache_turns=True`, each finished turn's keys and values are kept, so a turn computes only what is new
  (the last answer as the template renders it, the tool results, the next header).

Reports wall time, prompt tokens computed and taken from the cache, and whether the two modes' episodes ended with
the same messages (greedy decoding: they should, up to floating-point ties). A multi-turn model shows the gain: the
SFT checkpoint of `scripts/proof.sh` (its default), not the base model, which rarely calls a tool. Writes JSON to
benchmarks/results/ (gitignored).

Usage:
    MCPGYM_TOOL_DESCRIPTIONS=short python benchmarks/bench_prefix_cache.py [--model DIR] [--tasks code-repair,files]
        [--limit 12] [--max-turns 5] [--max-new-tokens 192] [--concurrency 8] [--repeats 1] [--modes system,turns]
        [--db PATH] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from collector.collect import CollectConfig, run_collection
from collector.models import load_model_and_tokenizer
from collector.policies.local import LocalPolicy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_MODEL = Path.home() / ".cache" / "mcpgym" / "proof" / "ckpt"


def run_mode(mode: str, loaded: tuple[Any, Any], args: argparse.Namespace, db: Path) -> dict[str, Any]:
    policy = LocalPolicy(str(args.model), loaded=loaded, temperature=0.0, max_new_tokens=args.max_new_tokens,
                         batch_size=args.concurrency, cache_turns=mode == "turns")
    run = f"{mode}-{time.monotonic_ns()}"
    config = CollectConfig(db=db, run=run, tasks=args.tasks.split(","), policy="local", policy_instance=policy,
                           concurrency=args.concurrency, max_turns=args.max_turns, seed=0, split="test",
                           limit=args.limit, kind="eval")
    started = time.perf_counter()
    summary = run_collection(config)
    wall = time.perf_counter() - started
    stats = policy.stats
    return {
        "mode": mode, "run": run, "wall_s": round(wall, 1), "episodes": summary.finished, "passed": summary.passed,
        "requests": stats.requests, "prompt_tokens": stats.prompt_tokens,
        "cached_tokens": stats.cached_tokens, "computed_tokens": stats.prompt_tokens - stats.cached_tokens,
        "completion_tokens": stats.completion_tokens, "generate_s": round(stats.generate_s, 1),
        "prefills": stats.prefills, "decode_steps": stats.decode_steps, "max_batch": stats.max_batch,
    }


def transcripts(db: Path, run: str) -> dict[str, list[Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT e.task_id, m.idx, m.role, m.content, m.tool_calls FROM messages m JOIN episodes e "
            "ON e.id = m.episode_id WHERE e.run_id = ? ORDER BY e.task_id, m.idx", (run,)).fetchall()
    out: dict[str, list[Any]] = {}
    for task_id, idx, role, content, tool_calls in rows:
        calls = [{k: v for k, v in call.items() if k != "id"} for call in json.loads(tool_calls or "[]")]
        out.setdefault(task_id, []).append((idx, role, content, calls))  # call ids are random: left out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--tasks", default="code-repair,files")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None, help="keep the episodes in this database (default: a temporary one)")
    parser.add_argument("--dtype", default=None, help="load the model in this dtype (default: the checkpoint's)")
    parser.add_argument("--modes", default="system,turns", help="system, turns, or both (compared)")
    args = parser.parse_args()
    modes = tuple(args.modes.split(","))
    if not set(modes) <= {"system", "turns"} or not modes:
        parser.error(f"--modes takes system, turns or both, comma-separated (got {args.modes!r})")
    if not args.model.is_dir():
        parser.error(f"--model {args.model} is not a checkpoint directory (run scripts/proof.sh first, or pass one)")
    loaded = load_model_and_tokenizer(str(args.model), dtype=args.dtype)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        for repeat in range(args.repeats):
            order = modes if repeat % 2 == 0 else modes[::-1]
            pair = {mode: run_mode(mode, loaded, args, db) for mode in order}
            same = "-"
            if len(pair) == 2:
                a, b = transcripts(db, pair["system"]["run"]), transcripts(db, pair["turns"]["run"])
                same = f"{sum(a[t] == b.get(t) for t in a)}/{len(a)}"
            for mode in order:
                pair[mode]["same_transcripts"] = same
                pair[mode]["concurrency"] = args.concurrency
                results.append(pair[mode])
    print("| mode | wall s | episodes | passed | prompt tokens | computed | cached | generated | generate s |"
          " same transcripts |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['mode']} | {r['wall_s']} | {r['episodes']} | {r['passed']} | {r['prompt_tokens']} | "
              f"{r['computed_tokens']} | {r['cached_tokens']} | {r['completion_tokens']} | {r['generate_s']} | "
              f"{r['same_transcripts']} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"prefix_cache_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
