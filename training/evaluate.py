"""Evaluation: run models through the collector on held-out tasks, then score the stored eval runs.

Metrics per model: success rate per family (passed episodes / episodes), pass@k for code tasks (the unbiased
estimator of Chen et al. 2021 over the samples of each task), and tool-call validity (well-formed calls of offered
tools / calls emitted). With two models the report is a before/after table.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from collector.episode import MALFORMED_KINDS
from collector.errors import CollectorError
from collector.store import Store
from training.errors import EvaluationError

__all__ = ["DTYPES", "EvalConfig", "ModelMetrics", "comparison_table", "evaluate", "finished_run",
           "malformed_count", "metrics_from_run", "pass_at_k", "resolve_dtype"]


@dataclass(frozen=True)
class EvalConfig:
    """Options of `mcpgym eval`.

    Attributes:
        models: one or two models (built-in name or checkpoint directory; None is the default smollm2-135m).
        db: the trajectory database the eval runs are stored in.
        tasks: task suites (families or JSONL paths).
        split: which split of the suites to evaluate on ("test" holds out the training tasks).
        samples: episodes per task (pass@k is reported for every k up to this).
        limit: at most this many tasks.
        max_turns: assistant turns per episode.
        max_new_tokens: tokens the model may generate per turn.
        temperature: sampling temperature (0 = greedy; use > 0 with samples > 1).
        concurrency: episodes in flight (batched on the local model).
        seed: task and sampling seed.
        run_prefix: eval runs are named `<prefix>-<model>-<time>`.
        servers: MCP client config file (None: the managed `mcpgym serve all` gateway).
        dtype: the models' weights and key/value cache: None (the checkpoint's), "float32", "bfloat16", or "auto"
            (bfloat16 on a GPU or a CPU with AMX, where it is faster, else float32); see `resolve_dtype`.
    """

    models: tuple[str | None, ...]
    db: Path
    tasks: tuple[str, ...] = ("weather", "files", "search", "code")
    split: str = "test"
    samples: int = 1
    limit: int | None = None
    max_turns: int = 6
    max_new_tokens: int = 256
    temperature: float = 0.0
    concurrency: int = 8
    seed: int = 0
    run_prefix: str = "eval"
    servers: str | None = None
    dtype: str | None = None


DTYPES = ("auto", "float32", "bfloat16")


def resolve_dtype(dtype: str | None) -> str | None:
    """The dtype an eval loads its models in: `auto` becomes bfloat16 where it is faster, else float32.

    Measured (benchmarks/bench_prefix_cache.py, the proof's SFT checkpoint, 24 held-out episodes of six families, 16
    in flight, 2-core Xeon with AMX): 196.7 s in float32, 120.1 s in bfloat16, the same 7 passed.

    Raises:
        EvaluationError: not None or one of DTYPES.
    """
    if dtype is None or dtype in ("float32", "bfloat16"):
        return dtype
    if dtype != "auto":
        raise EvaluationError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPES)} (or none: the checkpoint's)")
    import torch

    from training.trainers.common import cpu_has_bf16_matmul

    return "bfloat16" if torch.cuda.is_available() or cpu_has_bf16_matmul() else "float32"


@dataclass
class ModelMetrics:
    """The scores of one eval run.

    Attributes:
        model: the model evaluated.
        run: the eval run id.
        episodes: episodes scored (failed episodes count as not passed).
        families: family -> {"episodes", "passed", "success_rate"}.
        pass_at_k: k -> pass@k over the code tasks (empty without code tasks).
        tool_calls: calls emitted (the run's recorded calls).
        malformed_calls: calls the model wrote wrongly (recorded error kind in `collector.episode.MALFORMED_KINDS`):
            an unoffered tool, bad JSON, schema-invalid arguments, an unreadable `<tool_call>` block.
        episodes_with_calls: episodes in which the model called at least one tool.
    """

    model: str
    run: str
    episodes: int = 0
    families: dict[str, dict[str, float]] = field(default_factory=dict)
    pass_at_k: dict[int, float] = field(default_factory=dict)
    tool_calls: int = 0
    malformed_calls: int = 0
    episodes_with_calls: int = 0

    @property
    def success_rate(self) -> float:
        passed = sum(f["passed"] for f in self.families.values())
        return passed / self.episodes if self.episodes else 0.0

    @property
    def validity(self) -> float | None:
        """Well-formed calls / calls emitted (None when the model made no call)."""
        return (self.tool_calls - self.malformed_calls) / self.tool_calls if self.tool_calls else None


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator: 1 - C(n-c, k) / C(n, k).

    Args:
        n: samples drawn for the task.
        c: samples that passed.
        k: the k of pass@k (k <= n).

    Raises:
        ValueError: k or c out of range.
    """
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def finished_run(db: str | Path, run: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                  dict[Any, list[dict[str, Any]]]]:
    """A stored run's record, its finished episodes (running ones left out) and each episode's recorded tool calls.

    Raises:
        EvaluationError: the database or run does not exist, or the run has no finished episode.
    """
    try:
        store = Store(db, readonly=True)
    except CollectorError as exc:
        raise EvaluationError(str(exc)) from exc
    try:
        info = store.get_run(run)
        rows = [e for e in store.episodes([run]) if e["status"] != "running"]
        calls_of = {e["id"]: store.tool_calls(e["id"]) for e in rows}
    except CollectorError as exc:
        raise EvaluationError(str(exc)) from exc
    finally:
        store.close()
    if not rows:
        raise EvaluationError(f"run {run!r} has no finished episode to score")
    return info, rows, calls_of


def malformed_count(calls: Sequence[dict[str, Any]]) -> int:
    """Recorded calls that were written wrongly (each call's recorded error kind; episodes collected before the
    episode core counted a malformed block twice in `malformed_calls`, the per-call rows were always right)."""
    return sum(1 for c in calls if c.get("error_kind") in MALFORMED_KINDS or c.get("malformed"))


def metrics_from_run(db: str | Path, run: str, *, code_families: Sequence[str] = ("code",)) -> ModelMetrics:
    """Score a stored run.

    Args:
        db: the trajectory database.
        run: the run id.
        code_families: families whose tasks get pass@k.

    Raises:
        EvaluationError: the database or run does not exist, or the run has no finished episode.
    """
    info, rows, calls_of = finished_run(db, run)
    metrics = ModelMetrics(model=str(info.get("model") or "?"), run=run, episodes=len(rows))
    fam: dict[str, list[bool]] = defaultdict(list)
    code_tasks: dict[str, list[bool]] = defaultdict(list)
    for e in rows:
        passed = bool(e.get("passed")) and e["status"] == "done"
        family = str(e.get("family") or "unknown")
        fam[family].append(passed)
        if family in code_families:
            code_tasks[e["task_id"]].append(passed)
        recorded = calls_of.get(e["id"]) or []
        calls = len(recorded)
        metrics.tool_calls += calls
        metrics.malformed_calls += malformed_count(recorded)
        metrics.episodes_with_calls += int(calls > 0)
    metrics.families = {f: {"episodes": len(v), "passed": sum(v), "success_rate": sum(v) / len(v)}
                        for f, v in sorted(fam.items())}
    if code_tasks:
        n_min = min(len(v) for v in code_tasks.values())
        for k in range(1, n_min + 1):
            metrics.pass_at_k[k] = sum(pass_at_k(len(v), sum(v), k) for v in code_tasks.values()) / len(code_tasks)
    return metrics


def _slug(model: str | None) -> str:
    name = Path(model).name if model and Path(model).exists() else (model or "smollm2-135m")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "model"


def evaluate(config: EvalConfig, *, servers: Any = None) -> list[ModelMetrics]:
    """Run each model with the collector's local policy on the held-out tasks, store the eval runs, score them.

    Args:
        config: the evaluation options.
        servers: parsed MCP server specs (overrides `config.servers`; for library use and tests).

    Returns:
        One ModelMetrics per model, in order.

    Raises:
        EvaluationError: bad options, or the collector could not run.
    """
    from collector.collect import CollectConfig, run_collection

    if not 1 <= len(config.models) <= 2:
        raise EvaluationError(f"evaluate one or two models (got {len(config.models)}): --model M [--model M2]")
    if config.samples < 1:
        raise EvaluationError(f"samples must be at least 1 (got {config.samples})")
    dtype = resolve_dtype(config.dtype)
    results = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i, model in enumerate(config.models):
        run = f"{config.run_prefix}-{i + 1}-{_slug(model)}-{stamp}"
        cfg = CollectConfig(
            db=config.db, run=run, tasks=list(config.tasks), policy="local", model=model,
            policy_options={"temperature": config.temperature, "max_new_tokens": config.max_new_tokens,
                            "batch_size": config.concurrency, "dtype": dtype},
            servers=servers if servers is not None else config.servers, samples=config.samples,
            concurrency=config.concurrency, max_turns=config.max_turns, seed=config.seed, split=config.split,
            limit=config.limit, kind="eval",
        )
        try:
            run_collection(cfg)
        except CollectorError as exc:
            raise EvaluationError(f"evaluating {model or 'smollm2-135m'} failed: {exc}") from exc
        results.append(metrics_from_run(config.db, run))
    return results


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def comparison_table(results: Sequence[ModelMetrics], *, labels: Sequence[str] | None = None) -> str:
    """A Markdown table of the metrics, one column per model (before/after with two).

    Rows: success per family (with episode counts), overall success, pass@k for code, tool-call validity
    (with call counts), episodes that called a tool.
    """
    labels = list(labels or (["before", "after"] if len(results) == 2 else [r.model for r in results]))
    head = "| metric | " + " | ".join(f"{lab} ({r.model})" if lab != r.model else lab
                                        for lab, r in zip(labels, results, strict=True)) + " |"
    lines = [head, "| --- |" + " --- |" * len(results)]
    families = sorted({f for r in results for f in r.families})
    for fam in families:
        cells = []
        for r in results:
            f = r.families.get(fam)
            cells.append(f"{_pct(f['success_rate'])} ({int(f['passed'])}/{int(f['episodes'])})" if f else "-")
        lines.append(f"| success: {fam} | " + " | ".join(cells) + " |")
    lines.append("| success: all | " + " | ".join(
        f"{_pct(r.success_rate)} ({sum(int(f['passed']) for f in r.families.values())}/{r.episodes})"
        for r in results) + " |")
    ks = sorted({k for r in results for k in r.pass_at_k})
    for k in ks:
        lines.append(f"| code pass@{k} | " + " | ".join(_pct(r.pass_at_k.get(k)) for r in results) + " |")
    lines.append("| tool-call validity | " + " | ".join(
        f"{_pct(r.validity)} ({r.tool_calls - r.malformed_calls}/{r.tool_calls})" for r in results) + " |")
    lines.append("| episodes with a tool call | " + " | ".join(
        f"{_pct(r.episodes_with_calls / r.episodes if r.episodes else None)} ({r.episodes_with_calls}/{r.episodes})"
        for r in results) + " |")
    return "\n".join(lines)
