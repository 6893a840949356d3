"""The CPU proof's report: per-family tables from the stored eval runs and an SVG plot, written by `scripts/proof.sh`.

Inputs, all in the proof directory: `proof.db` (the trajectory store with the eval runs), `eval-sft.json` (the
`mcpgym eval --json` output of base vs SFT checkpoint), optionally `eval-grpo.json` (the GRPO checkpoint on its
family, after the SFT checkpoint on the same tasks when it holds two runs; else the SFT side is from eval-sft.json) and `grpo/mcpgym-train.json` (the GRPO run record with TRL's log history), `settings.tsv` (NAME, value),
`stages.tsv` (stage, seconds) and `lengths.md` (the SFT rows' lengths per family, when present). Outputs: `proof.md` and `proof.svg`.

    python -m training.proof_report --dir PROOF_DIR
    python -m training.proof_report --dir PROOF_DIR --check-heldout almanac --run expert
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from collector.errors import CollectorError
from collector.store import Store
from training.errors import EvaluationError
from training.evaluate import finished_run, malformed_count

__all__ = [
    "FamilyMetrics",
    "family_metrics",
    "heldout_leaks",
    "main",
    "proof_markdown",
    "proof_svg",
    "reward_curve",
    "targets_markdown",
    "write_report",
    "zero_spread_share",
]

NO_TOOL_KIND = "no_tool"  # tool-selection tasks that no offered tool serves (or that the message answers)


@dataclass
class FamilyMetrics:
    """One family's scores in one eval run.

    Attributes:
        episodes: finished episodes.
        passed: episodes the verifier passed.
        reward_sum: the sum of the episodes' rewards (missing rewards count 0).
        calls: tool calls emitted.
        malformed: calls written wrongly (an unoffered tool, bad JSON, schema-invalid arguments, unreadable block).
        with_calls: episodes with at least one call.
        no_tool: episodes of tasks that need no tool call (tool-selection `no_tool`).
        no_tool_passed_without_call: those passed with no call made.
        task_ids: the tasks evaluated.
        passed_ids: the tasks passed.
        kinds: task id -> the task's kind (its metadata `kind`; "" when it has none).
    """

    episodes: int = 0
    passed: int = 0
    reward_sum: float = 0.0
    calls: int = 0
    malformed: int = 0
    with_calls: int = 0
    no_tool: int = 0
    no_tool_passed_without_call: int = 0
    task_ids: set[str] = field(default_factory=set)
    passed_ids: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> float:
        return self.passed / self.episodes if self.episodes else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.episodes if self.episodes else 0.0

    @property
    def validity(self) -> float | None:
        return (self.calls - self.malformed) / self.calls if self.calls else None


def family_metrics(db: str | Path, run: str) -> dict[str, FamilyMetrics]:
    """Per-family scores of a stored run (episodes still running are left out; failed ones count as not passed).

    Raises:
        EvaluationError: the database or run does not exist, or the run has no finished episode.
    """
    _, rows, calls_of = finished_run(db, run)
    out: dict[str, FamilyMetrics] = {}
    for e in rows:
        m = out.setdefault(str(e.get("family") or "unknown"), FamilyMetrics())
        passed = bool(e.get("passed")) and e["status"] == "done"
        calls = calls_of.get(e["id"]) or []
        m.episodes += 1
        m.passed += passed
        m.reward_sum += float(e.get("reward") or 0.0)
        m.calls += len(calls)
        m.malformed += malformed_count(calls)
        m.with_calls += bool(calls)
        m.task_ids.add(str(e["task_id"]))
        if passed:
            m.passed_ids.add(str(e["task_id"]))
        kind = str(((e.get("task") or {}).get("metadata") or {}).get("kind") or "")
        m.kinds[str(e["task_id"])] = kind
        if kind == NO_TOOL_KIND:
            m.no_tool += 1
            m.no_tool_passed_without_call += passed and not calls
    return dict(sorted(out.items()))


def heldout_leaks(db: str | Path, runs: Sequence[str], server: str) -> int:
    """How many episodes of the runs offered a tool of `server` (their task names it among its servers)."""
    try:
        store = Store(db, readonly=True)
    except CollectorError as exc:
        raise EvaluationError(str(exc)) from exc
    try:
        return sum(server in ((e.get("task") or {}).get("servers") or []) for e in store.episodes(list(runs)))
    finally:
        store.close()


def reward_curve(train_record: Path) -> list[tuple[int, float]]:
    """(step, mean reward) of each logged GRPO step, from the run record `mcpgym train grpo` writes."""
    if not train_record.is_file():
        return []
    log = json.loads(train_record.read_text(encoding="utf-8")).get("log") or []
    return [(int(entry.get("step", i + 1)), float(entry["reward"])) for i, entry in enumerate(log)
            if isinstance(entry, dict) and isinstance(entry.get("reward"), int | float)]


def zero_spread_share(train_record: Path) -> list[float]:
    """Per logged GRPO step, the share of its prompt groups whose rollouts all got the same reward (no gradient)."""
    if not train_record.is_file():
        return []
    log = json.loads(train_record.read_text(encoding="utf-8")).get("log") or []
    return [float(entry["frac_reward_zero_std"]) for entry in log
            if isinstance(entry, dict) and isinstance(entry.get("frac_reward_zero_std"), int | float)]


TARGET_POINTS = 30.0  # held-out success gain after SFT the proof aims at, per family
TARGET_MINUTES = 75.0  # wall time of the defaults on an idle 2-core machine


def _points(before: FamilyMetrics | None, after: FamilyMetrics | None) -> float | None:
    if before is None or after is None or not before.episodes or not after.episodes:
        return None
    return 100 * (after.success - before.success)


def targets_markdown(data: ProofData) -> list[str]:
    """The proof's targets against what this run measured: gains per family, the GRPO gain, the wall time."""
    heldout = data.settings.get("HELDOUT_SERVER", "almanac")
    lines = ["## Targets", ""]
    gains = []
    for fam in sorted(set(data.base) | set(data.sft)):
        points = _points(data.base.get(fam), data.sft.get(fam))
        if points is not None:
            gains.append((f"schema ({heldout}, held out)" if fam == "schema" else fam, points))
    met = [name for name, points in gains if points >= TARGET_POINTS]
    lines.append(f"- SFT, held-out success gain of at least {TARGET_POINTS:.0f} points: {len(met)} of {len(gains)} "
                 f"families ({', '.join(met) or 'none'}). Per family: "
                 + ", ".join(f"{name} {points:+.1f}" for name, points in gains) + ".")
    fam = data.settings.get("GRPO_FAMILY", "weather")
    before, after = (data.grpo_before or data.sft).get(fam), data.grpo.get(fam)
    points = _points(before, after)
    if points is not None and before is not None and after is not None:
        lines.append(f"- GRPO on {fam}, held-out success {points:+.1f} points ({before.passed}/{before.episodes} -> "
                     f"{after.passed}/{after.episodes}), mean reward {before.mean_reward:.3f} -> "
                     f"{after.mean_reward:.3f}.")
    if data.zero_spread:
        dead = sum(1 for share in data.zero_spread if share >= 1.0)
        lines.append(f"- GRPO steps whose rollouts all scored the same (no gradient): {dead} of "
                     f"{len(data.zero_spread)}.")
    if data.stages:
        total = sum(sec for _, sec in data.stages) / 60
        lines.append(f"- Wall time {total:.1f} min against {TARGET_MINUTES:.0f} (load "
                     f"{data.settings.get('LOAD_START', '?')} at the start, {data.settings.get('LOAD_END', '?')} at "
                     "the end: the target is for an idle machine).")
    return lines + [""]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _cells(m: FamilyMetrics | None) -> list[str]:
    if m is None:
        return ["-"] * 4
    return [f"{_pct(m.success)} ({m.passed}/{m.episodes})", f"{m.mean_reward:.3f}",
            f"{_pct(m.validity)} ({m.calls - m.malformed}/{m.calls})",
            f"{_pct(m.with_calls / m.episodes if m.episodes else None)} ({m.with_calls}/{m.episodes})"]


def _table(rows: Sequence[tuple[str, str, FamilyMetrics | None]]) -> list[str]:
    lines = ["| family | model | success | mean reward | tool-call validity | episodes with a call |",
             "| --- | --- | --- | --- | --- | --- |"]
    for family, label, m in rows:
        lines.append(f"| {family} | {label} | " + " | ".join(_cells(m)) + " |")
    return lines


@dataclass
class ProofData:
    """Everything the report shows (read by `load_proof`)."""

    settings: dict[str, str]
    stages: list[tuple[str, float]]
    base: dict[str, FamilyMetrics]
    sft: dict[str, FamilyMetrics]
    grpo: dict[str, FamilyMetrics] = field(default_factory=dict)
    grpo_before: dict[str, FamilyMetrics] = field(default_factory=dict)  # the SFT checkpoint on the GRPO eval's tasks
    curve: list[tuple[int, float]] = field(default_factory=list)
    zero_spread: list[float] = field(default_factory=list)
    lengths: list[str] = field(default_factory=list)
    base_model: str = "smollm2-135m"
    sft_model: str = "SFT checkpoint"


def _tsv(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("\t")
        if name:
            out.append((name, value))
    return out


def _eval_runs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvaluationError(f"{path} is missing: the evaluation stage did not finish")
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path} is not the JSON `mcpgym eval --json` prints: {exc}") from exc
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "run" in r for r in runs):
        raise EvaluationError(f"{path} is not the JSON `mcpgym eval --json` prints (a list of runs)")
    return runs


def load_proof(proof_dir: Path) -> ProofData:
    """Read the proof directory's eval runs, GRPO record, settings and stage times.

    Raises:
        EvaluationError: `eval-sft.json` is missing or does not hold two runs, or a run is not in `proof.db`.
    """
    db = proof_dir / "proof.db"
    sft_runs = _eval_runs(proof_dir / "eval-sft.json")
    if len(sft_runs) != 2:
        raise EvaluationError(f"{proof_dir / 'eval-sft.json'} holds {len(sft_runs)} runs; base and SFT make 2")
    data = ProofData(
        settings=dict(_tsv(proof_dir / "settings.tsv")),
        stages=[(name, float(value)) for name, value in _tsv(proof_dir / "stages.tsv")],
        base=family_metrics(db, sft_runs[0]["run"]),
        sft=family_metrics(db, sft_runs[1]["run"]),
        base_model=str(sft_runs[0].get("model") or "base"),
        sft_model=str(sft_runs[1].get("model") or "SFT"),
    )
    if (proof_dir / "eval-grpo.json").is_file():
        grpo_runs = _eval_runs(proof_dir / "eval-grpo.json")
        data.grpo = family_metrics(db, grpo_runs[-1]["run"])
        if len(grpo_runs) == 2:  # SFT then GRPO checkpoint, on the same GRPO_TEST_TASKS tasks
            data.grpo_before = family_metrics(db, grpo_runs[0]["run"])
    data.curve = reward_curve(proof_dir / "grpo" / "mcpgym-train.json")
    data.zero_spread = zero_spread_share(proof_dir / "grpo" / "mcpgym-train.json")
    if (proof_dir / "lengths.md").is_file():  # the table the dataset stage writes
        data.lengths = [line for line in (proof_dir / "lengths.md").read_text(encoding="utf-8").splitlines()
                        if line.startswith("|")]
    return data


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def proof_markdown(data: ProofData) -> str:
    """The report: command, machine, sizes, stage times, and the before/after tables."""
    s = data.settings
    heldout = s.get("HELDOUT_SERVER", "almanac")
    lines = ["# CPU proof", "", f"Command: `{s.get('COMMAND', 'scripts/proof.sh')}`", "",
             (f"Started {s.get('STARTED', '?')} on {s.get('CPU', '?')} ({s.get('CORES', '?')} cores, load "
             f"{s.get('LOAD_START', '?')} at the start, {s.get('LOAD_END', '?')} at the end)."), "",
             *targets_markdown(data), "## Sizes", "", "| variable | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in s.items() if k.isupper() and k not in
              ("COMMAND", "STARTED", "CPU", "CORES", "LOAD_START", "LOAD_END")]
    if data.lengths:
        lines += ["", "## SFT row lengths per family (tokens, tool schemas included)", "", *data.lengths]
    lines += ["", "## Wall time per stage", "", "| stage | wall time |", "| --- | --- |"]
    lines += [f"| {name} | {_minutes(sec)} |" for name, sec in data.stages]
    if data.stages:
        lines.append(f"| total | {_minutes(sum(sec for _, sec in data.stages))} |")
    trained = [f for f in sorted(set(data.base) | set(data.sft)) if f != "schema"]
    lines += ["", "## SFT: base vs checkpoint on held-out tasks (test split, greedy)", "",
              f"Base: `{data.base_model}`; after: `{data.sft_model}`.", ""]
    rows: list[tuple[str, str, FamilyMetrics | None]] = []
    for fam in trained:
        rows += [(fam, "base", data.base.get(fam)), (fam, "SFT", data.sft.get(fam))]
    lines += _table(rows)
    no_tool = [(label, m.get("tool-selection")) for label, m in (("base", data.base), ("SFT", data.sft))]
    if any(m is not None and m.no_tool for _, m in no_tool):
        lines += ["", "Tool-selection tasks that need no tool call, answered correctly without one:", ""]
        lines += [f"- {label}: {m.no_tool_passed_without_call}/{m.no_tool}" for label, m in no_tool if m is not None]
    lines += ["", f"## Generalization: schema tasks over `{heldout}`, a server in no training row", "",
              f"The SFT data has no episode that offered a tool of `{heldout}`; these tasks are from the test split.", ""]
    lines += _table([(f"schema ({heldout})", "base", data.base.get("schema")),
                     (f"schema ({heldout})", "SFT", data.sft.get("schema"))])
    fam = s.get("GRPO_FAMILY", "weather")
    if data.grpo or data.curve:
        lines += ["", f"## GRPO on {fam}: the SFT checkpoint before, the GRPO checkpoint after", ""]
        before, after = (data.grpo_before or data.sft).get(fam), data.grpo.get(fam)
        lines += _table([(fam, "SFT (before)", before), (fam, "GRPO (after)", after)])
        if before is not None and after is not None and before.task_ids != after.task_ids:
            lines += ["", (f"Note: the two rows are not over the same tasks ({len(before.task_ids & after.task_ids)} "
                          "in common).")]
        if data.curve:
            first, last = data.curve[0][1], data.curve[-1][1]
            k = max(1, len(data.curve) // 5)
            head = sum(r for _, r in data.curve[:k]) / k
            tail = sum(r for _, r in data.curve[-k:]) / k
            lines += ["", (f"Training reward over {len(data.curve)} logged steps: first {first:.3f}, last {last:.3f}; "
                          f"mean of the first {k} {head:.3f}, of the last {k} {tail:.3f}.")]
    lines += ["", "![success per family and the GRPO reward](proof.svg)", ""]
    return "\n".join(lines)


def _bar_panel(data: ProofData, x0: float, y0: float, w: float, h: float) -> list[str]:
    heldout = data.settings.get("HELDOUT_SERVER", "almanac")
    fams = sorted(set(data.base) | set(data.sft))
    out = [(f'<text x="{x0 + w / 2:.1f}" y="{y0 - 12:.1f}" text-anchor="middle" font-weight="bold">'
           "Held-out success per family: base vs SFT</text>")]
    out += _axes(x0, y0, w, h, 0.0, 1.0, "success")
    if not fams:
        return out
    slot = w / len(fams)
    bar = min(28.0, slot / 3)
    for i, fam in enumerate(fams):
        cx = x0 + slot * (i + 0.5)
        for j, (metrics, color) in enumerate(((data.base, "#9aa5b1"), (data.sft, "#2f6fb0"))):
            m = metrics.get(fam)
            value = m.success if m else 0.0
            bh = h * value
            bx = cx - bar + j * bar
            out.append(f'<rect x="{bx:.1f}" y="{y0 + h - bh:.1f}" width="{bar - 2:.1f}" height="{bh:.1f}" '
                       f'fill="{color}"/>')
            out.append(f'<text x="{bx + bar / 2 - 1:.1f}" y="{y0 + h - bh - 3:.1f}" text-anchor="middle" '
                       f'font-size="10">{100 * value:.0f}%</text>')
        label = f"schema ({heldout})" if fam == "schema" else fam
        out.append(f'<text x="{cx:.1f}" y="{y0 + h + 16:.1f}" text-anchor="middle" font-size="11">'
                   f"{escape(label)}</text>")
    lx = x0 + w - 120
    for j, (name, color) in enumerate((("base", "#9aa5b1"), ("SFT", "#2f6fb0"))):
        out.append(f'<rect x="{lx:.1f}" y="{y0 + 4 + 16 * j:.1f}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 18:.1f}" y="{y0 + 14 + 16 * j:.1f}" font-size="11">{name}</text>')
    return out


def _axes(x0: float, y0: float, w: float, h: float, lo: float, hi: float, ylabel: str) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="black"/>',
           f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + h}" stroke="black"/>']
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        y = y0 + h - h * k / 4
        out.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{value:.2f}</text>')
    out.append(f'<text x="{x0 - 42}" y="{y0 + h / 2:.1f}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 {x0 - 42} {y0 + h / 2:.1f})">{escape(ylabel)}</text>')
    return out


def _curve_panel(data: ProofData, x0: float, y0: float, w: float, h: float) -> list[str]:
    fam = data.settings.get("GRPO_FAMILY", "weather")
    out = [(f'<text x="{x0 + w / 2:.1f}" y="{y0 - 12:.1f}" text-anchor="middle" font-weight="bold">'
           f"GRPO training reward per step ({escape(fam)})</text>")]
    if not data.curve:
        out += _axes(x0, y0, w, h, 0.0, 1.0, "mean reward")
        out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + h / 2:.1f}" text-anchor="middle">no GRPO steps logged</text>')
        return out
    rewards = [r for _, r in data.curve]
    lo, hi = min(0.0, min(rewards)), max(1.0, max(rewards))
    out += _axes(x0, y0, w, h, lo, hi, "mean reward")
    first, last = data.curve[0][0], data.curve[-1][0]
    span = max(1, last - first)

    def point(step: int, reward: float) -> str:
        return f"{x0 + w * (step - first) / span:.1f},{y0 + h - h * (reward - lo) / (hi - lo):.1f}"

    points = " ".join(point(s, r) for s, r in data.curve)
    out.append(f'<polyline points="{points}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    for s, r in data.curve:
        x, y = point(s, r).split(",")
        out.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#c0392b"/>')
    for step in (first, last):
        out.append(f'<text x="{x0 + w * (step - first) / span:.1f}" y="{y0 + h + 16:.1f}" text-anchor="middle" '
                   f'font-size="10">{step}</text>')
    out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + h + 30:.1f}" text-anchor="middle" font-size="11">step</text>')
    return out


def proof_svg(data: ProofData) -> str:
    """The plot: success per family before/after SFT (bars), and the GRPO training reward per step (a line)."""
    width, height = 1000, 380
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
             f'<rect width="{width}" height="{height}" fill="white"/>']
    parts += _bar_panel(data, 70, 50, 520, 260)
    parts += _curve_panel(data, 680, 50, 290, 260)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_report(proof_dir: Path) -> tuple[Path, Path]:
    """Write `proof.md` and `proof.svg` in the proof directory; returns their paths."""
    data = load_proof(proof_dir)
    md, svg = proof_dir / "proof.md", proof_dir / "proof.svg"
    md.write_text(proof_markdown(data), encoding="utf-8")
    svg.write_text(proof_svg(data), encoding="utf-8")
    return md, svg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.proof_report", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the proof directory (PROOF_DIR)")
    parser.add_argument("--check-heldout", metavar="SERVER", default=None,
                        help="only check that no episode of --run offered a tool of SERVER (exit 1 if one did)")
    parser.add_argument("--run", action="append", default=[], help="runs to check (with --check-heldout)")
    args = parser.parse_args(argv)
    try:
        if args.check_heldout:
            if not args.run:
                parser.error("--check-heldout needs --run RUN")
            leaks = heldout_leaks(args.dir / "proof.db", args.run, args.check_heldout)
            if leaks:
                print(f"error: {leaks} training episodes offered {args.check_heldout!r} tools; the held-out test "
                      "would not be held out", file=sys.stderr)
                return 1
            return 0
        md, svg = write_report(args.dir)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {md}\nplot: {svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
