"""Helpers of the collection tests: echo tasks for the toy server and a chat server that solves them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fake_openai import last_tool_results, reply, tool_call, turn_index
from toy_fixtures import make_task

from collector.tasks.model import Task


def echo_tasks(n: int) -> list[Task]:
    """Tasks whose answer is the echo of a word through the toy server."""
    return [make_task(f"echo-{i:03d}", f"word{i}", expected=f"word{i}", optimal_steps=1) for i in range(n)]


def write_tasks(path: Path, tasks: list[Task]) -> Path:
    path.write_text("".join(json.dumps(t.model_dump(mode="json")) + "\n" for t in tasks))
    return path


def echo_solver(delay_s: float = 0.0) -> Any:
    """A responder that calls `echo` with the user's text, then answers with the result."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if delay_s:
            time.sleep(delay_s)
        if turn_index(body) == 0:
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            return reply(tool_calls=[tool_call("c0", "echo", json.dumps({"text": user}))])
        return reply(content=last_tool_results(body)[0])

    return respond
