"""The GRPO sweep's report: held-out success of every GRPO checkpoint against the SFT checkpoint it started from.

`scripts/grpo_sweep.sh` trains GRPO from a proof's SFT checkpoint with each setting ("point") it is given, keeps a
checkpoint every few steps, and evaluates the SFT checkpoint and each GRPO checkpoint on the same held-out tasks. This
reads what it leaves in the sweep directory: `settings.tsv` (NAME, value), `runs.tsv` (name, point, steps, rollouts
per step, seconds), `eval-sft.json` and `eval-<name>-<step>.json` (`mcpgym eval --json` of one model each),
`<name>/mcpgym-train.json` (the GRPO run record with TRL's log) and `sweep.db`. It writes `grpo-sweep.md`.

    python -m training.grpo_sweep --dir SWEEP_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from collector.errors import CollectorError
from training.errors import EvaluationError
from training.proof_report import FamilyMetrics, family_metrics, reward_curve, zero_spread_share

__all__ = ["SweepRow", "load_sweep", "main", "sweep_markdown"]

TRAIN_WINDOW = 5  # training reward at a checkpoint: the mean over this many logged steps up to it


@dataclass
class SweepRow:
    """One evaluated checkpoint.

    Attributes:
        point: the point's settings as given (`steps=60,save=15`), or "SFT checkpoint".
        step: GRPO steps taken (0 for the SFT checkpoint).
        rollouts: rollouts trained on up to this step.
        metrics: the held-out scores (the sweep's one family).
        train_reward: mean training reward over the last `TRAIN_WINDOW` logged steps up to `step` (None at 0).
        zero_spread: steps up to `step` whose group had no reward spread (no gradient).
        seconds: the point's GRPO wall time (on its final checkpoint's row only).
    """

    point: str
    step: int
    rollouts: int
    metrics: FamilyMetrics
    train_reward: float | None = None
    zero_spread: int = 0
    seconds: float | None = None


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise EvaluationError(f"{path} is missing: the sweep has not trained any point there")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _one_family(db: Path, eval_json: Path) -> FamilyMetrics:
    if not eval_json.is_file():
        raise EvaluationError(f"{eval_json} is missing: that checkpoint's evaluation did not finish")
    try:
        runs = json.loads(eval_json.read_text(encoding="utf-8"))
        run = str(runs[-1]["run"])
    except (json.JSONDecodeError, LookupError, TypeError) as exc:
        raise EvaluationError(f"{eval_json} is not the JSON `mcpgym eval --json` prints: {exc}") from exc
    families = family_metrics(db, run)
    if len(families) != 1:
        raise EvaluationError(f"{eval_json}: run {run} holds {len(families)} families; the sweep evaluates one")
    return next(iter(families.values()))


def load_sweep(sweep_dir: Path) -> list[SweepRow]:
    """The SFT checkpoint's row, then each point's checkpoints in step order.

    Raises:
        EvaluationError: a file the sweep writes is missing or unreadable, or an eval run is not in `sweep.db`.
    """
    db = sweep_dir / "sweep.db"
    rows = [SweepRow("SFT checkpoint", 0, 0, _one_family(db, sweep_dir / "eval-sft.json"))]
    for run in _tsv_rows(sweep_dir / "runs.tsv"):
        name, gen, last = run["name"], int(run["gen"]), int(run["steps"])
        record = sweep_dir / name / "mcpgym-train.json"
        curve, spread = reward_curve(record), zero_spread_share(record)
        steps = sorted(int(p.stem.rsplit("-", 1)[1]) for p in sweep_dir.glob(f"eval-{name}-*.json"))
        for step in steps:
            window = [reward for s, reward in curve if step - TRAIN_WINDOW < s <= step]
            rows.append(SweepRow(
                point=run["point"], step=step, rollouts=step * gen,
                metrics=_one_family(db, sweep_dir / f"eval-{name}-{step}.json"),
                train_reward=sum(window) / len(window) if window else None,
                zero_spread=sum(1 for share in spread[:step] if share >= 1.0),
                seconds=float(run["seconds"]) if step == last else None,
            ))
    return rows


def _kinds_table(rows: Sequence[SweepRow]) -> list[str]:
    kinds = sorted({k for r in rows for k in r.metrics.kinds.values()})
    if kinds == [""]:
        return []
    lines = ["| point | step | " + " | ".join(kinds) + " |", "| --- | --- |" + " --- |" * len(kinds)]
    for r in rows:
        cells = []
        for kind in kinds:
            ids = [t for t, k in r.metrics.kinds.items() if k == kind]
            cells.append(f"{sum(t in r.metrics.passed_ids for t in ids)}/{len(ids)}")
        lines.append(f"| {r.point} | {r.step} | " + " | ".join(cells) + " |")
    return lines


def sweep_markdown(sweep_dir: Path) -> str:
    """The sweep's report: one row per checkpoint, the change and the tasks won and lost against the SFT checkpoint
    (paired: the same tasks), the training reward and zero-spread steps up to it, and success by task kind."""
    settings = {row[0]: row[1] for row in csv.reader(
        (sweep_dir / "settings.tsv").open(encoding="utf-8"), delimiter="\t") if len(row) >= 2} \
        if (sweep_dir / "settings.tsv").is_file() else {}
    rows = load_sweep(sweep_dir)
    sft = rows[0].metrics
    lines = [f"# GRPO sweep, {settings.get('STARTED', datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}", ""]
    if "COMMAND" in settings:
        lines += [f"Command: `{settings['COMMAND']}`", ""]
    lines += [(f"From the SFT checkpoint of `{settings.get('PROOF_DIR', '?')}`; {sft.episodes} held-out "
              f"`{settings.get('FAMILY', '?')}` tasks, greedy, the same for every checkpoint. CPU: "
              f"{settings.get('CPU', '?')} ({settings.get('CORES', '?')} cores)."), "",
              ("| point | step | rollouts | held-out success | change | won / lost | mean reward | "
              f"training reward (last {TRAIN_WINDOW} steps) | zero-spread steps | GRPO wall |"),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r.metrics
        same = m.task_ids == sft.task_ids
        change = "-" if r.step == 0 else f"{100 * (m.success - sft.success):+.1f} points"
        won_lost = "-" if r.step == 0 or not same else \
            f"{len(m.passed_ids - sft.passed_ids)} / {len(sft.passed_ids - m.passed_ids)}"
        train = "-" if r.train_reward is None else f"{r.train_reward:.2f}"
        spread = "-" if r.step == 0 else f"{r.zero_spread}/{r.step}"
        wall = "-" if r.seconds is None else f"{r.seconds / 60:.1f} min"
        lines.append(f"| {r.point} | {r.step} | {r.rollouts} | {100 * m.success:.1f}% ({m.passed}/{m.episodes}) | "
                     f"{change} | {won_lost} | {m.mean_reward:.2f} | {train} | {spread} | {wall} |")
    if any(r.metrics.task_ids != sft.task_ids for r in rows):
        lines += ["", "Not every checkpoint was evaluated on the SFT checkpoint's tasks: won / lost is left out."]
    kinds = _kinds_table(rows)
    if kinds:
        lines += ["", "Passed by task kind:", "", *kinds]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.grpo_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the sweep directory scripts/grpo_sweep.sh wrote")
    args = parser.parse_args(argv)
    try:
        text = sweep_markdown(args.dir)
    except (EvaluationError, CollectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (args.dir / "grpo-sweep.md").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
