"""Building SFT and GRPO datasets from recorded episodes, and saving them (HF `datasets` on disk + JSONL + card)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collector.chat_template import to_training_messages
from training.datasets.dedup import Deduplicator
from training.datasets.filters import FilterConfig, TokenCounter, apply_filters, check_length
from training.datasets.mixing import mix, split_by_task
from training.datasets.records import EpisodeRecord, load_records
from training.datasets.report import DatasetReport
from training.datasets.scrub import scrub_value
from training.errors import DatasetError

__all__ = ["BuiltDataset", "GRPOOptions", "SFTOptions", "build_grpo", "build_sft", "save_dataset", "tokenizer_counter"]


@dataclass(frozen=True)
class SFTOptions:
    """Options of an SFT build.

    Attributes:
        filters: the episode filters.
        scrub: redact secrets in every message and tool call.
        dedup: drop exact duplicates.
        near_dup_threshold: MinHash LSH Jaccard threshold for near-duplicates (None: off).
        proportions: family -> share; empty keeps every family as it comes.
        eval_fraction: share of task ids held out as the eval split.
        families: read only these families (empty: all).
        seed: seed for mixing and splitting.
    """

    filters: FilterConfig = field(default_factory=FilterConfig)
    scrub: bool = True
    dedup: bool = True
    near_dup_threshold: float | None = 0.9
    proportions: dict[str, float] = field(default_factory=dict)
    eval_fraction: float = 0.1
    families: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class GRPOOptions:
    """Options of a GRPO build.

    Attributes:
        drop_constant_reward: drop tasks whose recorded rewards never vary (no learning signal for GRPO); a task
            seen once counts as constant.
        eval_fraction: share of task ids held out as the eval split.
        families: read only these families (empty: all).
        proportions: family -> share of tasks; empty keeps every family.
        seed: seed for mixing and splitting.
        scrub: redact secrets in the prompt (and the task's copy of its messages), as SFT rows are.
        dedup: drop a task whose prompt and workspace setup duplicate an earlier task's (exactly, or nearly with
            `near_dup_threshold`), as SFT rows are.
        near_dup_threshold: MinHash LSH Jaccard threshold for near-duplicates (None: off).
    """

    drop_constant_reward: bool = False
    eval_fraction: float = 0.1
    families: tuple[str, ...] = ()
    proportions: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    scrub: bool = True
    dedup: bool = True
    near_dup_threshold: float | None = 0.9


@dataclass
class BuiltDataset:
    """The rows of each split and the report."""

    splits: dict[str, list[dict[str, Any]]]
    report: DatasetReport


@dataclass
class _Row:
    task_id: str
    family: str
    data: dict[str, Any]


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """A token counter that renders a conversation with the tokenizer's chat template."""

    def count(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        ids = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=True, return_dict=False)
        return len(ids)

    return count


def _finish(rows: list[_Row], report: DatasetReport, proportions: dict[str, float], eval_fraction: float, seed: int
            ) -> BuiltDataset:
    if proportions:
        rows, report.mix = mix(rows, lambda r: r.family, proportions, seed)
        for line in report.mix:
            if line.available > line.taken:
                report.dropped["mixing: over family share"] += line.available - line.taken
    train, held = split_by_task(rows, lambda r: r.task_id, eval_fraction, seed)
    splits = {"train": [r.data for r in train]}
    if held:
        splits["eval"] = [r.data for r in held]
    report.splits = {k: len(v) for k, v in splits.items()}
    report.families = Counter(r.family for r in rows)
    if not splits["train"]:
        raise DatasetError(
            f"no {report.kind.upper()} rows left after filtering "
            f"({report.considered} episodes considered; dropped: {dict(report.dropped) or 'none'}). "
            "Loosen the filters (e.g. --min-reward, --max-turns) or collect more episodes."
        )
    return BuiltDataset(splits, report)


def build_sft(
    db: str, runs: Sequence[str] = (), options: SFTOptions | None = None, *, count_tokens: TokenCounter | None = None
) -> BuiltDataset:
    """Build SFT rows `{"messages", "tools"}` from the episodes of some runs.

    Args:
        db: the trajectory database.
        runs: run ids (empty: every run).
        options: filters, scrubbing, dedup, mixing and split.
        count_tokens: measures a row's length in tokens; needed when `options.filters.max_tokens` is set.

    Raises:
        DatasetError: unknown run, bad options, or nothing left.
    """
    options = options or SFTOptions()
    if options.filters.max_tokens is not None and count_tokens is None:
        raise DatasetError("max_tokens needs a token counter (a tokenizer); pass count_tokens")
    report = DatasetReport("sft", db, list(runs), options=asdict(options))
    dedup = Deduplicator(options.near_dup_threshold) if options.dedup else None
    candidates: list[tuple[EpisodeRecord, list[dict[str, Any]]]] = []
    for record in load_records(db, runs, options.families or None):
        report.considered += 1
        reason = apply_filters(record, options.filters)
        if reason:
            report.dropped[reason] += 1
            continue
        candidates.append((record, record.messages))
    # Best episodes first, so deduplication keeps the highest-reward copy.
    candidates.sort(key=lambda c: -c[0].reward)
    rows: list[_Row] = []
    for record, messages in candidates:
        try:
            msgs = to_training_messages(messages)  # the collector's conversion: arguments as dicts, as templated
        except ValueError:
            report.dropped["unreadable messages"] += 1
            continue
        tools = record.tools
        if options.scrub:
            msgs, found = scrub_value(msgs)
            report.secrets.update(found)
        reason = check_length(msgs, tools, options.filters.max_tokens, count_tokens)
        if reason is None and dedup is not None:
            reason = dedup.check(msgs)
        if reason:
            report.dropped[reason] += 1
            continue
        rows.append(_Row(record.task_id, record.family, {"messages": msgs, "tools": tools}))
    return _finish(rows, report, options.proportions, options.eval_fraction, options.seed)


def build_grpo(db: str, runs: Sequence[str] = (), options: GRPOOptions | None = None) -> BuiltDataset:
    """Build GRPO prompt rows `{"prompt", "tools", "task"}`, one per task seen in the runs.

    Prompts are scrubbed of secrets and duplicate tasks are dropped, as for SFT. The task's verifier, metadata and
    setup files are left as recorded: redacting them would change what the environment checks.

    Args:
        db: the trajectory database.
        runs: run ids (empty: every run).
        options: constant-reward filter, scrubbing, dedup, mixing and split.

    Raises:
        DatasetError: unknown run, or nothing left.
    """
    options = options or GRPOOptions()
    report = DatasetReport("grpo", db, list(runs), options=asdict(options))
    dedup = Deduplicator(options.near_dup_threshold) if options.dedup else None
    by_task: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for record in load_records(db, runs, options.families or None):
        report.considered += 1
        if not record.task:
            report.dropped["episode without task"] += 1
            continue
        by_task[record.task_id].append(record)
    rows: list[_Row] = []
    single = 0  # tasks dropped as constant because they have one finished episode
    for task_id, records in by_task.items():
        finished = [r for r in records if r.episode.get("status") == "done"]
        rewards = {round(r.reward, 6) for r in finished}
        if options.drop_constant_reward and len(rewards) <= 1:
            report.dropped["task: reward never varies"] += 1
            single += len(finished) <= 1  # one reward: nothing for it to vary against
            continue
        first = records[0]
        task = first.task
        prompt = [
            {"role": m["role"], "content": m.get("content") or ""}
            for m in task.get("messages", [])
            if m.get("role") in ("system", "user")
        ]
        if not prompt:
            report.dropped["task without prompt messages"] += 1
            continue
        if options.scrub:
            prompt, found = scrub_value(prompt)
            report.secrets.update(found)
            task = {**task, "messages": scrub_value(task.get("messages", []))[0]}
        # the same prompt over another workspace is another task: the setup files are part of what is compared
        setup = task.get("setup_files") or {}
        key = [*prompt, {"role": "setup", "content": json.dumps(setup, sort_keys=True)}] if setup else prompt
        reason = dedup.check(key) if dedup is not None else None
        if reason:
            report.dropped[reason] += 1
            continue
        rows.append(_Row(task_id, first.family, {"prompt": prompt, "tools": first.tools, "task": task}))
    if not rows and single:
        raise DatasetError(
            f"no GRPO rows left: {single} of {len(by_task)} tasks have one finished episode each, and "
            "--drop-constant-reward keeps only tasks whose reward varies between a task's episodes "
            f"(dropped: {dict(report.dropped)}). Collect several samples per task (mcpgym collect --samples 4) "
            "or leave out --drop-constant-reward."
        )
    return _finish(rows, report, options.proportions, options.eval_fraction, options.seed)


def save_dataset(built: BuiltDataset, out: str | Path) -> Path:
    """Save a built dataset: HF `DatasetDict.save_to_disk(out)`, `<split>.jsonl`, `README.md` card, `report.json`.

    Args:
        built: rows and report.
        out: the output directory (created; existing files of the same names are replaced).

    Returns:
        The output directory.
    """
    from datasets import Dataset, DatasetDict, Features, Json, List

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if built.report.kind == "sft":
        features = Features({"messages": List(Json()), "tools": List(Json())})
    else:
        features = Features({"prompt": List(Json()), "tools": List(Json()), "task": Json()})
    dd = DatasetDict({name: Dataset.from_list(rows, features=features) for name, rows in built.splits.items()})
    dd.save_to_disk(str(out))
    for name, rows in built.splits.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "README.md").write_text(built.report.to_card(), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(built.report.to_dict(), indent=2, default=str), encoding="utf-8")
    return out
