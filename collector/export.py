"""Export recorded episodes as JSONL: OpenAI messages + tools, or ReAct thought/action/observation steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.errors import ConfigError
from collector.store import Store

__all__ = ["FORMATS", "episode_to_openai", "episode_to_react", "export_run", "iter_export"]

FORMATS = ("openai-jsonl", "react-jsonl")
STATUSES = ("done", "failed", "all")
_OPENAI_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


def _metadata(ep: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "policy": ep.get("policy"), "model": ep.get("model"), "status": ep.get("status"),
        "turns": ep.get("turns"), "tool_calls": ep.get("tool_calls"), "tool_errors": ep.get("tool_errors"),
        "malformed_calls": ep.get("malformed_calls"), "prompt_tokens": ep.get("prompt_tokens"),
        "completion_tokens": ep.get("completion_tokens"), "wall_time_s": ep.get("wall_time_s"),
        "error_type": ep.get("error_type"), "error_message": ep.get("error_message"),
        "verdict_details": ep.get("verdict_details"),
        "malformed_messages": [i for i, m in enumerate(messages) if m.get("malformed")],
    }


def _head(ep: dict[str, Any]) -> dict[str, Any]:
    return {"id": ep["id"], "run_id": ep["run_id"], "task_id": ep["task_id"], "family": ep.get("family"),
            "split": ep.get("split"), "sample_index": ep["sample_index"]}


def episode_to_openai(ep: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One `openai-jsonl` row: `messages` (OpenAI chat format, arguments as recorded) + `tools` + reward + metadata."""
    clean = [{k: m[k] for k in _OPENAI_KEYS if k in m} for m in messages]
    return {**_head(ep), "messages": clean, "tools": ep.get("tools") or [], "reward": ep.get("reward"),
            "reward_components": ep.get("reward_components"), "passed": ep.get("passed"), "score": ep.get("score"),
            "metadata": _metadata(ep, messages)}


def episode_to_react(ep: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One `react-jsonl` row: the episode as thought / action / action_input / observation steps and a final answer.

    Parallel calls of one turn become consecutive steps; the turn's text is the first step's thought.
    `action_input` is the arguments string exactly as the model emitted it.
    """
    observations = {m.get("tool_call_id"): m.get("content") for m in messages if m["role"] == "tool"}
    steps: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        for i, call in enumerate(m["tool_calls"]):
            steps.append({
                "thought": (m.get("content") or "") if i == 0 else "",
                "action": call["function"]["name"],
                "action_input": call["function"]["arguments"],
                "observation": observations.get(call.get("id"), ""),
            })
    system = next((m.get("content") for m in messages if m["role"] == "system"), None)
    question = next((m.get("content") for m in messages if m["role"] == "user"), "")
    return {**_head(ep), "system": system, "question": question, "tools": ep.get("tools") or [], "steps": steps,
            "final_answer": ep.get("final_answer") or "", "reward": ep.get("reward"), "passed": ep.get("passed"),
            "metadata": _metadata(ep, messages)}


def iter_export(store: Store, run: str, fmt: str, *, status: str = "done") -> Iterator[dict[str, Any]]:
    """The rows of a run's episodes in one format.

    Raises:
        ConfigError: unknown format or status.
        StoreError: no such run.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; accepted: {', '.join(FORMATS)}")
    if status not in STATUSES:
        raise ConfigError(f"unknown status filter {status!r}; accepted: {', '.join(STATUSES)}")
    store.get_run(run)
    convert = episode_to_openai if fmt == "openai-jsonl" else episode_to_react

    def rows() -> Iterator[dict[str, Any]]:
        for ep in store.episodes([run], status=None if status == "all" else status):
            if ep["status"] != "running":
                yield convert(ep, store.messages(ep["id"]))

    return rows()


def export_run(db: str | Path, run: str, fmt: str, out: str | Path, *, status: str = "done") -> int:
    """Write a run's episodes to a JSONL file, one episode per line.

    Args:
        db: the trajectory database.
        run: the run name.
        fmt: `openai-jsonl` or `react-jsonl`.
        out: the output file (`-` for stdout).
        status: which episodes: `done` (default), `failed` or `all`.

    Returns:
        How many episodes were written.

    Raises:
        ConfigError: bad format or status. StoreError: missing database or run.
    """
    import sys

    store = Store(db, readonly=True)
    try:
        rows = iter_export(store, run, fmt, status=status)
        count = 0
        if str(out) == "-":
            for row in rows:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
            return count
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        tmp.replace(path)
        return count
    finally:
        store.close()
