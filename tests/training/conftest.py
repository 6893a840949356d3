"""Shared fixtures of the training tests: a real SQLite trajectory store filled through the Store API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from episode_factory import WEATHER_TOOL, WRITE_TOOL

from collector.store import Store

EpisodeMaker = Callable[..., str]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "episodes.db")
    yield s
    s.close()



@pytest.fixture
def add_episode(store: Store) -> EpisodeMaker:
    """Write one finished episode through the Store API and return its id."""
    counters: dict[tuple[str, str], int] = {}

    def make(
        run: str,
        task_id: str,
        family: str,
        messages: list[dict[str, Any]],
        *,
        passed: bool = True,
        reward: float = 12.0,
        tools: list[dict[str, Any]] | None = None,
        status: str = "done",
        tool_errors: int = 0,
        malformed: int = 0,
        verifier: dict[str, Any] | None = None,
        error_kinds: list[str | None] | None = None,
    ) -> str:
        if not store.has_run(run):
            store.create_run(run, policy="scripted", model="expert", config={})
        index = counters.get((run, task_id), 0)
        counters[(run, task_id)] = index + 1
        task = {
            "id": task_id,
            "family": family,
            "split": "train",
            "messages": [m for m in messages if m["role"] in ("system", "user")][:2],
            "servers": [family],
            "setup_files": {},
            "optimal_steps": 1,
            "verifier": verifier or {"type": "contains", "expected": "degrees"},
            "metadata": {},
        }
        eid = store.start_episode(run, task, index, policy="scripted", model="expert")
        calls = [c for m in messages for c in m.get("tool_calls") or []]
        store.finish_episode(
            eid,
            fields={
                "status": status,
                "tools": tools if tools is not None else [WEATHER_TOOL, WRITE_TOOL],
                "final_answer": messages[-1].get("content") or "",
                "passed": int(passed),
                "score": 1.0 if passed else 0.0,
                "reward": reward,
                "reward_components": {"success": 10.0 if passed else 0.0},
                "turns": sum(1 for m in messages if m["role"] == "assistant"),
                "tool_calls": len(calls),
                "tool_errors": tool_errors,
                "malformed_calls": malformed,
            },
            messages=messages,
            tool_calls=[
                {"call_id": c["id"], "turn": 1, "server": "weather", "tool": c["function"]["name"],
                 "arguments": c["function"]["arguments"], "result": "{}",
                 "is_error": int(i < tool_errors or bool(error_kinds and error_kinds[i])),
                 "malformed": 0, "error_kind": error_kinds[i] if error_kinds else None}
                for i, c in enumerate(calls)
            ],
        )
        return eid

    return make
