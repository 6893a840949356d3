"""Tool selection over any attached MCP servers: a request for one tool's purpose, the other servers' tools offered
as distractors.

The schema-task machinery (`schema_tasks`, `_schema_sample`) samples a tool's arguments from its JSON schema; the
request states what the tool is for (the first sentence of its description) and the argument values, but never the
tool's name, and the task offers the tools of the tool's own server and of up to two other attached servers. The
`tool_use` verifier wants exactly that one call. These tasks belong to the `tool-selection` family (kind
`schema_select`); the suite is `schema-selection`, generated from the live tool lists like the `schema` suite.

No-tool tasks are not generated here: whether a request is served depends on servers this module cannot know (a
user may attach a booking server), so they come from the built-in `tool-selection` suite only.
"""

from __future__ import annotations

import re
from typing import Any

from collector.errors import ConfigError
from collector.tasks._split import check_split, content_id, seeded_rng, split_of
from collector.tasks.model import Task, VerifierSpec
from collector.tasks.schema_tasks import _sample_call, render_arguments
from collector.tasks.tool_selection import FAMILY, SYSTEM_PROMPT

__all__ = ["SUITE", "generate_selection_tasks"]

SUITE = "schema-selection"
_TEMPLATES = (
    "Please {purpose}, with {args}. Use the one tool that does this.",
    "I need a tool to {purpose}. Call it with {args}, then tell me briefly what it returned.",
    "Can you {purpose}? Use {args}.",
)


def _purpose(tool: dict[str, Any]) -> str:
    """What the tool is for, as a clause: its description's first sentence, before any colon or parenthesis, cut
    at a word near 120 characters, first letter lower-cased ("get the weather right now in a city")."""
    text = " ".join(str(tool.get("description") or "").split())
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!?")
    text = re.split(r"[:(]", text, maxsplit=1)[0].strip(" ,;")
    if len(text) > 120:
        text = text[:120].rsplit(" ", 1)[0]
    return text[:1].lower() + text[1:]


def _offered(server: str, tool: dict[str, Any], usable: dict[str, list[dict[str, Any]]], rng: Any) -> list[str]:
    """The target's server and up to two others whose tools neither share the target's name nor its purpose."""
    purpose = _purpose(tool)
    others = []
    for name, tools in usable.items():
        if name == server:
            continue
        if any(t["name"] == tool["name"] or _purpose(t) == purpose for t in tools):
            continue  # the verifier compares bare names, and a twin purpose would make two right answers
        others.append(name)
    rng.shuffle(others)
    return [server, *sorted(others[:2])]


def generate_selection_tasks(
    tools_by_server: dict[str, list[dict[str, Any]]], *, seed: int, n: int = 100, split: str | None = None
) -> list[Task]:
    """Tool-selection tasks over the attached servers' tools.

    Args:
        tools_by_server: MCP tool dicts (name, description, inputSchema) by server name, e.g. `ToolPool.list_tools()`.
        seed: the generation seed.
        n: how many tasks to plan (fewer when the tools allow fewer); the split filter applies after.
        split: "train", "test" or None.

    Returns:
        Tasks of family `tool-selection`, kind `schema_select`, each verified by the one expected call.

    Raises:
        ConfigError: fewer than two attached servers have described tools (nothing to choose among).
    """
    check_split(split)
    rng = seeded_rng(seed, SUITE)
    usable = {
        s: [t for t in tools if t.get("name") and str(t.get("description") or "").strip()]
        for s, tools in sorted(tools_by_server.items())
    }
    usable = {s: tools for s, tools in usable.items() if tools}
    if len(usable) < 2:
        raise ConfigError(
            f"the '{SUITE}' suite needs at least two attached servers with described tools (the other servers' tools "
            f"are the distractors); got {sorted(usable) or 'none'}"
        )
    pairs = [(server, tool) for server, tools in usable.items() for tool in tools]
    rng.shuffle(pairs)
    cache: dict[str, Any] = {}
    tasks: dict[str, Task] = {}
    for i in range(n * 3):
        if len(tasks) >= n:
            break
        server, tool = pairs[i % len(pairs)]
        offered = _offered(server, tool, usable, rng)
        call = _sample_call(tool, rng, cache)
        if len(offered) < 2 or call is None:
            continue
        user = rng.choice(_TEMPLATES).format(purpose=_purpose(tool), args=render_arguments(call["arguments"]))
        expected = {"name": call["name"], "arguments": call["arguments"], "defaults": call["defaults"]}
        task_id = content_id(FAMILY, f"schema_select-{server}", user, ",".join(offered))
        tasks.setdefault(
            task_id,
            Task(
                id=task_id,
                family=FAMILY,
                split=split_of(task_id),
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
                servers=offered,
                optimal_steps=1,
                verifier=VerifierSpec(type="tool_use", calls=[expected]),
                metadata={
                    "kind": "schema_select",
                    "server": server,
                    "target": tool["name"],
                    "plan": [{"tool": tool["name"], "arguments": call["arguments"]}],
                },
            ),
        )
    return [t for t in tasks.values() if split is None or t.split == split]
