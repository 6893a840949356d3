"""The demo's progress display: rich bars on a terminal, plain timestamped lines otherwise (a file, CI, nohup).

`Steps.step()` is the one interface both use: it yields an `update(completed=..., description=...)` function. On a
terminal each step is a rich progress bar; without one, a line is printed when a step starts, when its count moves
(at most every `PLAIN_INTERVAL_S` seconds, and always at the last item) and when it ends, so a log shows that the run
is alive during the long steps (collection, fine-tuning, evaluation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["PLAIN_INTERVAL_S", "EvalWatcher", "Steps", "train_progress_callback"]

PLAIN_INTERVAL_S = 10.0
Update = Callable[..., None]


class _PlainStep:
    """One step printed as lines: start, progress (throttled), end."""

    def __init__(self, steps: Steps, label: str, description: str, total: float | None) -> None:
        self.steps, self.label, self.description, self.total = steps, label, description, total
        self.completed: float = 0
        self.printed: float | None = None  # the count last printed
        self.last = 0.0

    def print(self, text: str) -> None:
        self.steps.line(f"{self.label} {text}")

    def update(self, **kwargs: Any) -> None:
        self.description = str(kwargs.get("description", self.description))
        if "total" in kwargs:
            self.total = kwargs["total"]
        if "completed" not in kwargs:
            return
        self.completed = kwargs["completed"]
        now = time.monotonic()
        last_item = self.total is not None and self.completed >= self.total
        if self.completed and self.completed != self.printed and (last_item or now - self.last >= PLAIN_INTERVAL_S):
            self.printed, self.last = self.completed, now
            of = f"/{self.total:g}" if self.total is not None else ""
            self.print(f"{self.description}: {self.completed:g}{of}")


class Steps:
    """The demo's steps: one rich bar each (and one overall) on a terminal, plain lines otherwise.

    Use as a context manager around the steps; `timings` holds each step's wall time in seconds afterwards.

    Args:
        console: where the display goes.
        total: the number of steps (shown as `[i/total]`).
        live: force the rich display on or off (default: on when `console` is a terminal).
    """

    def __init__(self, console: Console, total: int, *, live: bool | None = None) -> None:
        self.console, self.total, self.index = console, total, 0
        self.live = console.is_terminal if live is None else live
        self.timings: dict[str, float] = {}
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False, disable=not self.live)
        self.overall = self.progress.add_task("[bold]mcpgym demo", total=total)

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def line(self, text: str) -> None:
        """Print one plain line with a timestamp (also used for notes while the rich display runs)."""
        stamp = time.strftime("%H:%M:%S")
        if self.live:
            self.progress.console.print(escape(text), highlight=False, soft_wrap=True)
        else:
            self.console.print(f"{stamp} {escape(text)}", highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, name: str, description: str, total: float | None = None,
             unit: str | None = None) -> Iterator[Update]:
        """Run one step: yields `update(completed=..., description=..., total=...)`; records its wall time.

        Args:
            name: the key of its time in `timings`.
            description: what the step does (updated through `update(description=...)`).
            total: the number of items it counts, if any.
            unit: what those items are (plain lines say "(16 episodes)" when the step starts).
        """
        self.index += 1
        started = time.perf_counter()
        if not self.live:
            plain = _PlainStep(self, f"[{self.index}/{self.total}]", description, total)
            plain.print(description + (f" ({total:g} {unit})" if total and unit else ""))
            try:
                yield plain.update
            finally:
                self.timings[name] = round(time.perf_counter() - started, 2)
                plain.print(f"{plain.description}: done in {self.timings[name]:.0f}s")
            return
        task = self.progress.add_task(description, total=total)

        def update(**kwargs: Any) -> None:
            self.progress.update(task, **kwargs)

        try:
            yield update
        finally:
            self.timings[name] = round(time.perf_counter() - started, 2)
            done_total = self.progress.tasks[task].total
            self.progress.update(task, completed=done_total if done_total is not None else 1, total=done_total or 1)
            self.progress.advance(self.overall)


class EvalWatcher:
    """Reports a running evaluation's progress: counts the finished episodes of eval runs created since `since` in
    the database (read-only, twice a second), since `training.evaluate` itself reports no progress."""

    def __init__(self, db: Path, since: float, update: Update) -> None:
        self.db, self.since, self.update = db, since, update
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self) -> int:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT COUNT(*) FROM episodes e JOIN runs r ON r.id = e.run_id "
                "WHERE r.kind = 'eval' AND r.created_at >= ? AND e.status != 'running'", [self.since]).fetchone()
            return int(row[0])
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.update(completed=self._count())
            except Exception:  # noqa: BLE001, S112 - the database may be mid-write; the next poll catches up
                continue

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.update(completed=self._count())
        except Exception:  # noqa: BLE001, S110 - the final count is a nicety; the step's end line still prints
            pass


def train_progress_callback(update: Update, label: str) -> Any:
    """A transformers `TrainerCallback` that reports the optimizer step and the last logged loss to `update`."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        loss: float | None = None

        def _report(self, state: Any) -> None:
            loss = "" if self.loss is None else f" · loss {self.loss:.2f}"
            update(completed=state.global_step, description=f"{label}{loss}")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._report(state)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])
                self._report(state)

    return _Progress()
