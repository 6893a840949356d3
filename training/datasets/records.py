"""Episode records read from the trajectory store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.errors import StoreError
from collector.store import Store
from training.errors import DatasetError

__all__ = ["EpisodeRecord", "load_records", "offered_tools"]


@dataclass
class EpisodeRecord:
    """One recorded episode: its row (JSON columns decoded), its OpenAI messages and its tool-call rows."""

    episode: dict[str, Any]
    messages: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.episode["id"])

    @property
    def task_id(self) -> str:
        return str(self.episode["task_id"])

    @property
    def family(self) -> str:
        return str(self.episode.get("family") or "unknown")

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.episode.get("tools") or [])

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.episode.get("task") or {})

    @property
    def reward(self) -> float:
        value = self.episode.get("reward")
        return float(value) if value is not None else 0.0


def load_records(
    db: str, run_ids: Sequence[str] | None = None, families: Sequence[str] | None = None
) -> Iterator[EpisodeRecord]:
    """Read the finished episodes of some runs (all runs when `run_ids` is empty), oldest first.

    Args:
        db: path of the SQLite trajectory store.
        run_ids: the runs to read; each must exist.
        families: restrict to these task families.

    Raises:
        DatasetError: the database cannot be opened or a run does not exist.
    """
    try:
        store = Store(db, readonly=True)
    except StoreError as exc:
        raise DatasetError(str(exc)) from exc
    try:
        known = set(store.run_ids())
        missing = [r for r in run_ids or () if r not in known]
        if missing:
            raise DatasetError(
                f"unknown run(s) {', '.join(missing)} in {db}; known runs: {', '.join(sorted(known)) or 'none'}"
            )
        for row in store.episodes(list(run_ids) if run_ids else None, families=families):
            if row.get("status") == "running":
                continue
            yield EpisodeRecord(row, store.messages(row["id"]), store.tool_calls(row["id"]))
    finally:
        store.close()


def offered_tools(record: EpisodeRecord) -> dict[str, dict[str, Any]]:
    """The tools offered in an episode, by name -> JSON schema of the parameters."""
    out: dict[str, dict[str, Any]] = {}
    for tool in record.tools:
        fn = tool.get("function", tool)
        out[str(fn.get("name"))] = dict(fn.get("parameters") or {"type": "object"})
    return out
