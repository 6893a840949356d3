"""Benchmark the local policy's batching: tokens/s with N episodes in flight vs one sequence at a time, same run.

Both modes run the same prompts (system message, the weather tools' schemas, one user question each) through
`LocalPolicy` with greedy decoding and the same `max_new_tokens`, so they generate the same tokens:

- single (the baseline): `batch_size=1`, one request at a time;
- batched: `batch_size=N`, N requests in flight at once (asyncio.gather), as N concurrent episodes would send them.

Modes alternate (single, batched, single, batched, ...) so both see the same machine load. Tokens/s counts generated
tokens (up to and including the end-of-turn token) over wall time, prompt processing included. With `--turns N`, each
episode sends N turns, the next one as soon as its previous answer is back (the answer and a follow-up question are
appended), so in batched mode later turns arrive while other episodes are still decoding and join the running batch
(the `joined` column). Prints a table; writes JSON to benchmarks/results/ (gitignored).

Usage:
    python benchmarks/bench_local_policy.py [--in-flight 8] [--max-new-tokens 64] [--repeats 2] [--turns 1]
        [--dtype float32] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from collector.models import load_model_and_tokenizer
from collector.policies.local import LocalPolicy
from collector.tasks.model import Task, VerifierSpec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "weather__get_current_weather",
            "description": "Current weather for a city: temperature, wind, conditions.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "weather__get_forecast",
            "description": "Daily forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                "required": ["city"],
            },
        },
    },
]
QUESTIONS = [
    "What is the weather in Paris right now?",
    "Is it warmer in Rome or in Madrid today?",
    "Give me the 3-day forecast for Tokyo.",
    "Should I take an umbrella in London this afternoon?",
    "What's the temperature in New York in Fahrenheit?",
    "Compare the wind in Berlin and Oslo.",
    "Will it snow in Moscow this week?",
    "How hot is it in Cairo?",
    "Is it sunny in Sydney?",
    "What's the weather like in Lima and Quito?",
    "Forecast for Nairobi for the next 5 days, please.",
    "Is it a good day for a picnic in Vienna?",
    "Humidity in Singapore right now?",
    "Is it colder in Helsinki or Reykjavik?",
    "Tell me the weather in Toronto.",
    "Any storms expected in Miami this week?",
]
FOLLOW_UPS = ["Thanks. And tomorrow?", "What about the weekend?", "Thanks, that is all."]
TASK = Task(id="bench", family="weather", messages=[], verifier=VerifierSpec(type="exact", expected=""))


def conversation(question: str) -> list[Any]:
    return [
        {"role": "system", "content": "You are a weather assistant. Use the tools to answer."},
        {"role": "user", "content": question},
    ]


async def episode(policy: LocalPolicy, question: str, turns: int) -> list[Any]:
    """`turns` turns of one episode, each sent when the previous answer is back."""
    messages = conversation(question)
    results = []
    for turn in range(turns):
        if turn:
            messages += [{"role": "assistant", "content": results[-1].raw_text},
                         {"role": "user", "content": FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]}]
        results.append(await policy.complete(messages, TOOLS, task=TASK))
    return results


async def run_mode(loaded: tuple[Any, Any], questions: list[str], *, batched: bool, max_new_tokens: int,
                   turns: int = 1) -> dict[str, Any]:
    """One pass over `questions`: all episodes in flight at once (batched) or one after another (single)."""
    policy = LocalPolicy(temperature=0.0, max_new_tokens=max_new_tokens, batch_size=len(questions) if batched else 1,
                         batch_wait_ms=50.0, loaded=loaded)
    started = time.perf_counter()
    try:
        if batched:
            episodes = await asyncio.gather(*(episode(policy, q, turns) for q in questions))
        else:
            episodes = [await episode(policy, q, turns) for q in questions]
    finally:
        await policy.aclose()
    results = [r for turns_of_one in episodes for r in turns_of_one]
    wall = time.perf_counter() - started
    tokens = sum(r.completion_tokens for r in results)
    return {
        "mode": "batched" if batched else "single",
        "requests": len(results),
        "prompt_tokens": sum(r.prompt_tokens for r in results),
        "completion_tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "batches": policy.stats.batches,
        "max_batch": policy.stats.max_batch,
        "joined": policy.stats.joined,
        "texts": [r.raw_text for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=8, help="episodes in flight in batched mode (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generated tokens cap per request (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating single/batched passes (default 2)")
    parser.add_argument("--turns", type=int, default=1, help="turns per episode, each after the last (default 1)")
    parser.add_argument("--dtype", default=None, help="float32 (the checkpoint's), bfloat16, ... (default: as saved)")
    parser.add_argument("--model", default=None, help="built-in model name or checkpoint dir (default smollm2-135m)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if not 1 <= args.in_flight <= len(QUESTIONS):
        parser.error(f"--in-flight must be between 1 and {len(QUESTIONS)}")
    if args.turns < 1:
        parser.error("--turns must be >= 1")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    loaded = load_model_and_tokenizer(args.model, dtype=args.dtype, device="cpu")
    questions = QUESTIONS[: args.in_flight]
    asyncio.run(run_mode(loaded, questions[:2], batched=True, max_new_tokens=4))  # warm-up
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeats):
        for batched in (False, True):
            runs.append(asyncio.run(run_mode(loaded, questions, batched=batched, max_new_tokens=args.max_new_tokens,
                                             turns=args.turns)))

    single = [r for r in runs if r["mode"] == "single"]
    batched_runs = [r for r in runs if r["mode"] == "batched"]
    same_output = all(s["texts"] == b["texts"] for s, b in zip(single, batched_runs, strict=True))
    base = statistics.median(r["tokens_per_s"] for r in single)
    import torch

    print(f"\nlocal policy, {args.model or 'smollm2-135m'} ({loaded[0].dtype}, {torch.get_num_threads()} threads), greedy, "
          f"max_new_tokens="
          f"{args.max_new_tokens}, {args.in_flight} episodes x {args.turns} turn(s) per pass, {args.repeats} passes per mode\n")
    print(f"| {'mode':<24} | {'prompt tok':>10} | {'gen tok':>7} | {'wall s':>7} | {'tokens/s':>8} | {'vs single':>9} "
          f"| {'joined':>6} |")
    print(f"| {'-' * 24} | {'-' * 10} | {'-' * 7} | {'-' * 7} | {'-' * 8} | {'-' * 9} | {'-' * 6} |")
    for r in runs:
        label = "single (1 at a time)" if r["mode"] == "single" else f"batched ({args.in_flight} in flight)"
        print(f"| {label:<24} | {r['prompt_tokens']:>10} | {r['completion_tokens']:>7} | {r['wall_s']:>7.2f} | "
              f"{r['tokens_per_s']:>8.1f} | {r['tokens_per_s'] / base:>8.2f}x | {r['joined']:>6} |")
    speedup = statistics.median(r["tokens_per_s"] for r in batched_runs) / base
    print(f"\nmedian speedup: {speedup:.2f}x (target >= 3x); batched output identical to single: {same_output}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_local_policy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {"args": vars(args), "dtype": str(loaded[0].dtype), "speedup": speedup, "same_output": same_output,
              "runs": [{k: v for k, v in r.items() if k != "texts"} for r in runs]}
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
