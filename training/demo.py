"""`mcpgym demo`: the whole loop on embedded defaults: serve, collect, build a dataset, fine-tune, evaluate."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from collector.collect import CollectConfig, RunSummary, run_collection, terminate_as_interrupt
from collector.servers import ManagedGateway
from training.demo_progress import EvalWatcher, Steps, train_progress_callback
from training.errors import TrainingError

__all__ = ["DB_NAME", "MARKER", "DemoConfig", "DemoResult", "command_prefix", "demo_command", "run_demo",
           "summary_table"]

DB_NAME = "trajectories.db"
MARKER = ".mcpgym-demo"  # written first into the output directory: what follows is a demo's, and may be replaced
_OUTPUTS = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", "dataset", "checkpoint", "summary.json", "demo.log", MARKER)
RUNS = {"expert": "demo-expert", "base": "demo-smollm2"}  # the eval runs are named by training.evaluate
EVAL_PREFIXES = {"before": "demo-before", "after": "demo-after"}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. `DemoConfig.preset(quick)` gives the two shipped sizes.

    Attributes:
        out: directory for every output (database, dataset, checkpoint, summary.json, demo.log).
        families: built-in task families to use (they need no network and no GPU).
        expert_tasks: training tasks solved by the scripted experts (the SFT data).
        local_tasks: training tasks attempted by the base SmolLM2 (recorded, shown in the viewer; 0 skips the step).
        eval_tasks: held-out test tasks for the before/after evaluation.
        model: the local model to start from (a built-in name or a checkpoint directory).
        max_turns: assistant turns per episode.
        max_new_tokens: tokens the local model may generate per turn.
        sft_steps: optimizer steps of the fine-tuning.
        batch_size: sequences per SFT step.
        learning_rate: SFT peak learning rate.
        max_length: SFT sequence length cap (tokens).
        concurrency: episodes in flight per collection.
        seed: task, sampling and training seed.
    """

    out: Path = Path("mcpgym-demo")
    families: tuple[str, ...] = ("weather",)
    expert_tasks: int = 48
    local_tasks: int = 4
    eval_tasks: int = 8
    model: str = "smollm2-135m"
    max_turns: int = 2
    max_new_tokens: int = 128
    sft_steps: int = 12
    batch_size: int = 1
    learning_rate: float = 1e-4
    max_length: int = 2048
    concurrency: int = 6
    seed: int = 0

    @classmethod
    def preset(cls, quick: bool, out: Path | str = Path("mcpgym-demo"),
               families: tuple[str, ...] = ("weather",)) -> DemoConfig:
        """The full demo (sized for 15 minutes on 2 idle CPU cores) or `--quick` (sized for 3 minutes; 1 min 21 s measured idle, 2026-12-03).

        Episodes are long for a CPU: the tool schemas alone make a weather prompt about 1,300 tokens and a files
        prompt about 3,100, and one SFT step on such a sequence takes seconds. The presets therefore use the weather
        family; other families raise the sequence length (and the time) so that their episodes still fit.
        """
        max_length = 2048 if set(families) <= {"weather"} else 3584
        if quick:
            # 4 steps at 3e-4: on 2026-12-02 the best of 3e-4/4, 2e-4/6 and 5e-4/4 (5e-4 broke the call format)
            return cls(out=Path(out), families=families, expert_tasks=16, local_tasks=0, eval_tasks=8, max_turns=2,
                       max_new_tokens=96, sft_steps=4, batch_size=1, learning_rate=3e-4, max_length=max_length,
                       concurrency=4)
        return cls(out=Path(out), families=families, max_length=max_length)

    def validate(self) -> None:
        """Raise TrainingError naming the first bad field."""
        for name in ("expert_tasks", "local_tasks", "eval_tasks", "max_turns", "max_new_tokens", "sft_steps",
                     "batch_size", "max_length", "concurrency"):
            low = 0 if name == "local_tasks" else 1
            if getattr(self, name) < low:
                raise TrainingError(f"demo option {name} must be at least {low}, got {getattr(self, name)}")
        if not self.families:
            raise TrainingError("the demo needs at least one task family (e.g. weather)")


@dataclass
class DemoResult:
    """What the demo produced: where, and the figures of each step."""

    out: Path
    db: Path
    dataset: Path
    checkpoint: Path
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_rows: dict[str, int] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (written to `<out>/summary.json`)."""
        data = asdict(self)
        for key in ("out", "db", "dataset", "checkpoint"):
            data[key] = str(data[key])
        return data


def _summary_dict(summary: RunSummary, model: str) -> dict[str, Any]:
    return {
        "run": summary.run,
        "model": model,
        "episodes": summary.finished,
        "done": summary.done,
        "failed": summary.failed,
        "passed": summary.passed,
        "pass_rate": summary.pass_rate,
        "mean_reward": summary.mean_reward,
        "tool_calls": summary.tool_calls,
        "malformed_calls": summary.malformed_calls,
        "tool_call_validity": ((summary.tool_calls - summary.malformed_calls) / summary.tool_calls
                               if summary.tool_calls else None),
        "by_family": summary.by_family,
        "wall_time_s": summary.wall_time_s,
    }


def _metrics_dict(db: Path, metrics: Any, model: str) -> dict[str, Any]:
    """An evaluation's figures in the shape of `_summary_dict` (mean reward read from the stored run)."""
    from collector.store import Store
    from collector.viewer.queries import run_summary

    store = Store(db, readonly=True)
    try:
        mean_reward = run_summary(store, metrics.run)["mean_reward"]
    finally:
        store.close()
    passed = sum(int(f["passed"]) for f in metrics.families.values())
    return {"run": metrics.run, "model": model, "episodes": metrics.episodes, "passed": passed,
            "pass_rate": metrics.success_rate, "mean_reward": mean_reward or 0.0, "tool_calls": metrics.tool_calls,
            "malformed_calls": metrics.malformed_calls, "tool_call_validity": metrics.validity,
            "by_family": metrics.families}


def _is_demo_output(out: Path) -> bool:
    """Whether `out` holds an earlier demo's outputs: its marker, or (demos before the marker) its summary.json."""
    if (out / MARKER).is_file():
        return True
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"collections", "timings_s"} <= set(summary)


def _prepare_out(out: Path, force: bool) -> list[str]:
    """Make `out` ready: replace an earlier demo's outputs there, refuse to touch anything else.

    Only the demo's own file names are ever removed; other files in `out` stay. A file with one of those names that
    an earlier demo did not write (no marker) is kept unless `force`.

    Returns:
        The names of the earlier outputs that were removed.
    """
    existing = [name for name in _OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file; give a directory (it is created when missing)")
    if existing and not force and not _is_demo_output(out):
        shown = ", ".join(n for n in existing if n != MARKER)
        raise TrainingError(f"{out} holds {shown}, which no earlier demo wrote there; pass --force to replace them "
                            "or choose another --out directory")
    for name in existing:
        path = out / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"written_by": "mcpgym demo", "started": time.time()}) + "\n",
                              encoding="utf-8")
    return [n for n in existing if n != MARKER]


def command_prefix() -> str:
    """How to run this installation's `mcpgym` from the current directory, as a user can paste it: `mcpgym` when
    that name on PATH is this installation's, else the console script's path (relative when it is below the current
    directory, e.g. `.venv/bin/mcpgym`), else `python -m mcpgym.cli` with this interpreter."""
    script = Path(sys.executable).parent / "mcpgym"
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m mcpgym.cli"
    found = shutil.which("mcpgym")
    try:
        if found and os.path.samefile(found, script):
            return "mcpgym"
    except OSError:
        pass
    try:
        relative = script.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script))
    return shlex.quote(str(relative) if relative.parent != Path(".") else f"./{relative}")  # a bare name means PATH


@contextmanager
def _library_output_to(log_path: Path) -> Iterator[None]:
    """Send what the libraries print (tqdm bars, warnings, transformers/datasets logs) to a log file, so the demo's
    own progress display stays readable; restored afterwards."""
    import contextlib
    import logging
    import warnings

    import datasets
    import transformers

    previous = (transformers.logging.get_verbosity(), datasets.logging.get_verbosity())
    with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stderr(log), \
            contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.simplefilter("default")
        handler = logging.StreamHandler(log)
        transformers.logging.set_verbosity(logging.WARNING)
        transformers.logging.disable_default_handler()
        transformers.logging.add_handler(handler)
        datasets.logging.set_verbosity(logging.WARNING)
        try:
            yield
        finally:
            transformers.logging.remove_handler(handler)
            transformers.logging.enable_default_handler()
            transformers.logging.set_verbosity(previous[0])
            datasets.logging.set_verbosity(previous[1])


def _collect(steps: Steps, name: str, label: str, config: CollectConfig, n: int) -> RunSummary:
    with steps.step(name, label, total=n, unit="episodes") as update:

        def on_progress(summary: RunSummary, _result: object) -> None:
            update(completed=summary.finished, description=f"{label} · {summary.passed}/{summary.done} passed")

        return run_collection(config, on_progress=on_progress)


def run_demo(config: DemoConfig, *, force: bool = False, console: Console | None = None) -> DemoResult:
    """Run the demo end to end and write `<out>/summary.json`.

    Steps: start the MCP servers (`mcpgym serve all` on a loopback port); collect with the scripted experts and with
    the base local model on training tasks; build the SFT dataset from the experts' passed episodes; fine-tune the
    local model on the CPU; evaluate the base model and the fine-tuned one on held-out test tasks.

    Args:
        config: sizes and outputs (see `DemoConfig.preset`).
        force: replace files named like the demo's outputs in `config.out` even when no earlier demo wrote them (an
            earlier demo's outputs are always replaced; other files are never touched).
        console: where progress goes (default: stderr).

    Returns:
        The outputs and figures of every step.

    Raises:
        TrainingError: bad options, files named like the outputs that no demo wrote (without `force`), or an empty
            dataset.
        CollectorError: the servers could not start, or the model could not load.
    """
    from training.datasets import FilterConfig, SFTOptions, build_sft, save_dataset
    from training.evaluate import EvalConfig, evaluate
    from training.trainers.sft import SFTRunConfig, train_sft

    config.validate()
    console = console or Console(file=sys.stderr)  # bound now: library output is redirected during the steps
    out = config.out
    replaced = _prepare_out(out, force)
    result = DemoResult(out=out, db=out / DB_NAME, dataset=out / "dataset", checkpoint=out / "checkpoint")
    families = list(config.families)
    common: dict[str, Any] = {"db": result.db, "tasks": families, "max_turns": config.max_turns, "seed": config.seed,
              "concurrency": config.concurrency}
    steps = Steps(console, total=7 if config.local_tasks else 6)
    gateway = ManagedGateway()
    with steps, _library_output_to(out / "demo.log"):
        if replaced:
            steps.line(f"replacing the earlier demo's outputs in {out}/")
        try:
            with steps.step("servers", "start the MCP servers (files, search, weather, exec)") as update:
                gateway.start()
                update(description=f"MCP servers on {gateway.base_url}")
            servers = gateway.specs()

            expert = _collect(steps, "collect_expert", "collect · scripted experts",
                              CollectConfig(run=RUNS["expert"], policy="scripted", servers=servers, split="train",
                                            limit=config.expert_tasks, **common), config.expert_tasks)
            result.collections["expert"] = _summary_dict(expert, "expert")

            # Each local run loads the model from the converted cache (a couple of seconds for SmolLM2-135M).
            local: dict[str, Any] = {"policy": "local", "policy_options": {"max_new_tokens": config.max_new_tokens,
                                                           "batch_size": config.concurrency}, "servers": servers}
            if config.local_tasks:  # the quick preset leaves it out: "eval before" shows the base model too
                base = _collect(steps, "collect_local", f"collect · {config.model}",
                                CollectConfig(run=RUNS["base"], model=config.model, split="train",
                                              limit=config.local_tasks, **local, **common), config.local_tasks)
                result.collections["base"] = _summary_dict(base, config.model)

            with steps.step("dataset", "build the SFT dataset") as update:
                built = build_sft(str(result.db), [RUNS["expert"]],
                                  SFTOptions(filters=FilterConfig(require_passed=True), seed=config.seed,
                                             near_dup_threshold=None))
                save_dataset(built, result.dataset)
                result.dataset_rows = {k: len(v) for k, v in built.splits.items()}
                update(description=f"SFT dataset: {built.report.kept} rows")

            label = f"fine-tune on the CPU ({config.sft_steps} steps)"
            with steps.step("train", label, total=config.sft_steps) as update:
                train_sft(SFTRunConfig(data=result.dataset, out=result.checkpoint, model=config.model,
                                       profile="cpu", max_steps=config.sft_steps, batch_size=config.batch_size,
                                       learning_rate=config.learning_rate, max_length=config.max_length,
                                       seed=config.seed, logging_steps=max(1, config.sft_steps // 6),
                                       # batch 1 of rows under 3,584 tokens: ~18% faster without it (~10 GB peak measured on 3,300-token rows)
                                       gradient_checkpointing=config.batch_size > 1),
                          callbacks=[train_progress_callback(update, label)])
            result.train = _train_figures(result.checkpoint)

            for key, model in (("before", config.model), ("after", str(result.checkpoint))):
                evaluation = EvalConfig(models=(model,), db=result.db, tasks=tuple(families), split="test",
                                        limit=config.eval_tasks, max_turns=config.max_turns,
                                        max_new_tokens=config.max_new_tokens, concurrency=config.concurrency,
                                        seed=config.seed, run_prefix=EVAL_PREFIXES[key])
                who = config.model if key == "before" else "the fine-tuned checkpoint"
                label = f"evaluate {key}: {who} on held-out tasks"
                with steps.step(f"eval_{key}", label, total=config.eval_tasks, unit="episodes") as update, \
                        EvalWatcher(result.db, time.time(), update):
                    metrics = evaluate(evaluation, servers=servers)[0]
                result.collections[key] = _metrics_dict(result.db, metrics,
                                                        config.model if key == "before" else "checkpoint")
        finally:
            gateway.cleanup()
    result.timings_s = steps.timings
    (out / "summary.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    return result


def _train_figures(checkpoint: Path) -> dict[str, Any]:
    """Loss at the first and last logged step, from the run record the SFT trainer saves with the checkpoint."""
    figures: dict[str, Any] = {"checkpoint": str(checkpoint)}
    try:
        data = json.loads((checkpoint / "mcpgym-train.json").read_text())
    except (OSError, ValueError):
        return figures
    losses = [e["loss"] for e in data.get("log") or [] if isinstance(e, dict) and "loss" in e]
    if losses:
        figures.update(first_loss=losses[0], last_loss=losses[-1], logged_steps=len(losses))
    figures["train_runtime_s"] = (data.get("metrics") or {}).get("train_runtime")
    return figures


def _valid(c: dict[str, Any]) -> str:
    """Well-formed calls / calls emitted ("-" without calls)."""
    calls = int(c.get("tool_calls") or 0)
    return f"{calls - min(int(c.get('malformed_calls') or 0), calls)}/{calls}" if calls else "-"


def summary_table(result: DemoResult) -> Table:
    """The closing table: each collection and evaluation (passed, success rate, mean reward, tool calls and how many
    were well-formed calls of an offered tool, time), the dataset, the fine-tuning, and the change after it."""
    table = Table(title="mcpgym demo", title_justify="left")
    for column in ("step", "model", "passed", "rate", "reward", "calls", "valid calls", "time"):
        table.add_column(column, justify="left" if column in ("step", "model") else "right", no_wrap=True)
    labels = {"expert": ("collect", "collect_expert"), "base": ("collect", "collect_local"),
              "before": ("eval before", "eval_before"), "after": ("eval after", "eval_after")}
    for key, (label, timing) in labels.items():
        c = result.collections.get(key)
        if c:
            table.add_row(label, str(c["model"]), f"{c['passed']}/{c['episodes']}", f"{c['pass_rate']:.0%}",
                          f"{c['mean_reward']:.2f}", str(c["tool_calls"]), _valid(c),
                          f"{result.timings_s.get(timing, 0):.0f}s")
    rows = ", ".join(f"{k} {v}" for k, v in result.dataset_rows.items())
    table.add_row("dataset", rows, "", "", "", "", "", f"{result.timings_s.get('dataset', 0):.0f}s")
    loss = ""
    if "first_loss" in result.train:
        loss = f"loss {result.train['first_loss']:.2f}->{result.train['last_loss']:.2f}"
    table.add_row("fine-tune", loss, "", "", "", "", "", f"{result.timings_s.get('train', 0):.0f}s")
    before, after = result.collections.get("before"), result.collections.get("after")
    if before and after:
        table.add_row("[bold]change", "", f"{after['passed'] - before['passed']:+d}",
                      f"[bold]{after['pass_rate'] - before['pass_rate']:+.0%}",
                      f"{after['mean_reward'] - before['mean_reward']:+.2f}",
                      f"{after['tool_calls'] - before['tool_calls']:+d}", "", "")
    return table


@click.command(name="demo", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="The small version: fewer tasks and SFT steps (a few minutes on a CPU).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("mcpgym-demo"),
              show_default=True,
              help="Directory for every output: trajectories.db, dataset/, checkpoint/, summary.json, demo.log.")
@click.option("--force", is_flag=True,
              help="Replace files named like the demo's outputs in --out even when no earlier demo wrote them "
                   "(an earlier demo's outputs are replaced without it).")
@click.option("--families", default="weather", show_default=True,
              help="Built-in task families, comma-separated (weather, files, search, code); families other than "
                   "weather have longer prompts and make the demo slower.")
@click.option("--model", default="smollm2-135m", show_default=True,
              help="Local model to start from: a built-in name or a checkpoint directory.")
@click.option("--seed", type=int, default=0, show_default=True, help="Task, sampling and training seed.")
def demo_command(quick: bool, out: Path, force: bool, families: str, model: str, seed: int) -> None:
    """Run the whole loop on embedded defaults, on a CPU: start the MCP servers, collect episodes with the scripted
    experts and with the local SmolLM2, build an SFT dataset, fine-tune, and evaluate before and after.

    \b
    Examples:
      mcpgym demo --quick
      mcpgym demo --out ./demo --force
    """

    from collector.errors import CollectorError

    # A plain `kill` ends the demo like Ctrl-C does: the finally blocks stop the servers it started.
    terminate_as_interrupt()
    chosen = tuple(f.strip() for f in families.split(",") if f.strip())
    config = replace(DemoConfig.preset(quick, out, chosen), model=model, seed=seed)
    try:
        result = run_demo(config, force=force)
    except (TrainingError, CollectorError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: the servers the demo started are stopped; outputs so far are kept")
        sys.exit(130)
    console = Console()
    table = summary_table(result)
    if not console.is_terminal:  # a file or a pipe: as wide as the table needs (rich would cut it at 80 columns)
        needed = console.measure(table, options=console.options.update(max_width=1000)).maximum
        console = Console(width=max(console.width, needed))
    console.print(table)
    # soft_wrap: paths and the command stay on one line, whatever the terminal width, so they can be copied
    console.print(f"outputs in {result.out}/ (summary.json, {DB_NAME}, dataset/, checkpoint/)", soft_wrap=True)
    view = f"{command_prefix()} view --db {shlex.quote(str(result.db))}"
    console.print(f"browse the episodes:  [bold]{escape(view)}[/bold]", soft_wrap=True)
