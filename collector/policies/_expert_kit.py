"""What the scripted experts share: reading the conversation so far and building assistant turns."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from collector.errors import PolicyError
from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["Call", "Episode", "ToolOutput", "answer", "example_tests", "tool_turn"]


@dataclass
class ToolOutput:
    """One tool result the expert reads: the call it answers, its text, and its JSON payload when it has one."""

    name: str
    arguments: dict[str, Any]
    text: str
    is_error: bool
    data: Any = None


@dataclass
class Call:
    """A tool call the expert wants to make (the bare tool name; resolved against the offered tools)."""

    tool: str
    arguments: dict[str, Any]


@dataclass
class Episode:
    """The conversation as the expert sees it: the task, the offered tools, and what each earlier turn returned.

    Attributes:
        task: the task.
        tools: the OpenAI tools offered (names may be namespaced `server__tool`).
        turns: the tool outputs of each earlier assistant turn that made calls, oldest first.
    """

    task: Task
    tools: list[OpenAITool]
    turns: list[list[ToolOutput]] = field(default_factory=list)

    @property
    def step(self) -> int:
        """How many tool-calling turns happened so far."""
        return len(self.turns)

    @property
    def last(self) -> list[ToolOutput]:
        """The tool outputs of the latest turn ([] before the first)."""
        return self.turns[-1] if self.turns else []

    def resolve(self, bare: str) -> str:
        """The offered name of a tool: the exact name, or a namespaced `server__<bare>`.

        Raises:
            PolicyError: no offered tool has that name.
        """
        names = [t["function"]["name"] for t in self.tools]
        for name in names:
            if name == bare:
                return name
        for name in names:
            if name.endswith("__" + bare):
                return name
        raise PolicyError(
            f"the scripted expert for '{self.task.family}' needs the tool '{bare}', which is not offered "
            f"(offered: {', '.join(names) or 'none'})"
        )


def _is_error(text: str) -> bool:
    """Whether a tool message reports a failure: the SDK's "Error executing tool ..." or the collector's
    "Error: ..." (unknown tool, bad arguments, timeout). Tool messages carry no is_error flag, only text."""
    head = text.lstrip()[:40].casefold()
    return head.startswith(("error executing tool", "error:"))


def read_episode(messages: list[Message], tools: list[OpenAITool], task: Task) -> Episode:
    """Pair every assistant tool call with its tool message, turn by turn."""
    episode = Episode(task=task, tools=tools)
    results = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    for message in messages:
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not calls:
            continue
        outputs: list[ToolOutput] = []
        for call in calls:
            result = results.get(call.get("id"))
            text = str((result or {}).get("content") or "")
            try:
                args = json.loads(call["function"].get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {}
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = None
            name = call["function"]["name"].rsplit("__", 1)[-1]
            outputs.append(ToolOutput(name, args if isinstance(args, dict) else {}, text, _is_error(text), data))
        episode.turns.append(outputs)
    return episode


def tool_turn(episode: Episode, calls: list[Call]) -> dict[str, Any]:
    """An assistant message making `calls` (in parallel when several), with ids unique in the episode."""
    salt = hashlib.sha256(episode.task.id.encode()).hexdigest()[:8]
    tool_calls = [
        {
            "id": f"call_{salt}_{episode.step}_{i}",
            "type": "function",
            "function": {"name": episode.resolve(c.tool), "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for i, c in enumerate(calls)
    ]
    return {"role": "assistant", "content": None, "tool_calls": tool_calls}


def answer(text: str) -> dict[str, Any]:
    """A final assistant message."""
    return {"role": "assistant", "content": text}


_ARROW = re.compile(r"^\s*(?:==|=>|->|➞|→|should\s+return|returns?|=)\s*(.+?)\s*$", re.IGNORECASE)


def _call_at(text: str, start: int) -> int | None:
    """The end of the balanced parenthesized call whose "(" is at `start`, or None."""
    depth = 0
    quote = ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _literal_call(call: str) -> bool:
    """A call whose arguments are all literals (`f([1, 2], 3)`, not the signature `f(n: int)`)."""
    try:
        node = ast.parse(call, mode="eval").body
    except SyntaxError:
        return False
    if not isinstance(node, ast.Call) or not node.args and not node.keywords:
        return isinstance(node, ast.Call)
    try:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            ast.literal_eval(arg)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _examples(prompt: str, entry_point: str) -> list[tuple[str, str]]:
    """(call, expected) pairs written in a docstring: doctests (`>>> f(1)` then `2`) and `f(1) ➞ 2` lines."""
    lines = prompt.splitlines()
    found: list[tuple[str, str]] = []
    name = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\s*\(")
    for i, line in enumerate(lines):
        match = name.search(line)
        if not match:
            continue
        end = _call_at(line, match.end() - 1)
        if end is None:
            continue
        call = line[match.start() : end]
        rest = line[end:]
        expected = None
        if line.lstrip().startswith(">>>") and not rest.strip():
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            expected = following if following and not following.startswith(">>>") else None
        else:
            arrow = _ARROW.match(rest)
            expected = arrow.group(1).rstrip(".,;") if arrow else None
        if expected and _literal_call(call) and _literal(expected):
            found.append((call, expected))
    return list(dict.fromkeys(found))


def example_tests(prompt: str, entry_point: str) -> str | None:
    """A HumanEval-style `check(candidate)` built from the examples of a function's docstring, or None when the
    prompt has none: what a programmer can test a solution with, knowing only the prompt.

    Args:
        prompt: the function's signature and docstring, as the task shows it.
        entry_point: the function's name.

    Returns:
        Test code with one assert per example (`candidate` in place of the function's name).
    """
    examples = _examples(prompt, entry_point)
    if not examples:
        return None
    body = [f"    assert candidate{call[len(entry_point) :].lstrip()} == {expected}" for call, expected in examples]
    return "def check(candidate):\n" + "\n".join(body) + "\n"
