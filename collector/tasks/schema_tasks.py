"""Schema tasks for any MCP server: requests sampled from its tools' JSON schemas, verified by the calls made."""

from __future__ import annotations

import asyncio
import json
import random
from typing import TYPE_CHECKING, Any

import jsonschema

from collector.errors import ConfigError
from collector.tasks._schema_sample import SchemaSampleError, sample_arguments
from collector.tasks._split import check_split, content_id, seeded_rng, split_of
from collector.tasks.model import Task, VerifierSpec

if TYPE_CHECKING:
    from collector.policies.base import Policy

_Planned = tuple[str, str, str, list[dict[str, Any]]]  # (server, kind, user request, expected calls)

__all__ = ["FAMILY", "agenerate_schema_tasks", "generate_schema_tasks", "render_arguments"]

FAMILY = "schema"
SYSTEM_PROMPT = (
    "You are an assistant that operates tools precisely. Make exactly the tool calls the user asks for, with "
    "exactly the argument values given (independent calls in parallel, in one turn), then reply briefly."
)
_SINGLE_TEMPLATES = (
    "Call the `{tool}` tool with {args}.",
    "Please use `{tool}` with {args}.",
    "Run `{tool}` ({purpose}) with {args}.",
    "I need `{tool}`: {args}. Make that one call.",
)
_MULTI_TEMPLATES = (
    "Make these {n} tool calls, in parallel:\n{items}",
    "Please do all of the following at once (they are independent):\n{items}",
)
_REPHRASE_PROMPT = (
    "Rewrite the request below as a natural message a user would send to an assistant. Keep every tool name and "
    "every argument value exactly as written. Reply with the rewritten message only."
)


def render_arguments(args: dict[str, Any]) -> str:
    """Argument values in words: `location set to "Oslo" and units set to "imperial"`."""
    if not args:
        return "no arguments"
    parts = [f"`{k}` set to {json.dumps(v, ensure_ascii=False)}" for k, v in args.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _purpose(tool: dict[str, Any]) -> str:
    text = (tool.get("description") or "").strip().split("\n")[0]
    first = text.split(". ")[0].rstrip(".")
    return (first[:1].lower() + first[1:])[:100] if first else tool["name"]


def _defaults(schema: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    return {k: p["default"] for k, p in props.items() if isinstance(p, dict) and "default" in p and k not in args}


def _validator(schema: dict[str, Any], cache: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=str)
    if key not in cache:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
            cache[key] = cls(schema)
        except jsonschema.SchemaError:
            cache[key] = None  # an invalid schema: its tool gets no tasks
    return cache[key]


def _sample_call(tool: dict[str, Any], rng: random.Random, cache: dict[str, Any]) -> dict[str, Any] | None:
    schema = tool.get("inputSchema") or {"type": "object", "properties": {}}
    validator = _validator(schema, cache)
    if validator is None:
        return None
    for _ in range(5):
        try:
            args = sample_arguments(schema, rng)
        except SchemaSampleError:
            continue
        if not validator.is_valid(args):
            continue
        return {"name": tool["name"], "arguments": args, "defaults": _defaults(schema, args)}
    return None


def _make_task(server: str, kind: str, user: str, calls: list[dict[str, Any]]) -> Task:
    task_id = content_id(FAMILY, f"{server}-{kind}", user, json.dumps(calls, sort_keys=True))
    return Task(
        id=task_id,
        family=FAMILY,
        split=split_of(task_id),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=[server],
        optimal_steps=len(calls),
        verifier=VerifierSpec(type="expected_calls", calls=calls, ordered=False),
        metadata={"kind": kind, "server": server, "tools": sorted({c["name"] for c in calls})},
    )


def _plan(tools_by_server: dict[str, list[dict[str, Any]]], seed: int, n: int) -> list[_Planned]:
    rng = seeded_rng(seed, FAMILY)
    usable = {s: [t for t in tools if t.get("name")] for s, tools in sorted(tools_by_server.items()) if tools}
    if not usable:
        raise ConfigError("schema tasks need at least one attached server with tools; none were listed")
    pairs = [(server, tool) for server, tools in usable.items() for tool in tools]
    planned: list[_Planned] = []
    seen: set[str] = set()
    cache: dict[str, Any] = {}
    servers = list(usable)
    attempts = single_i = multi_i = multi_failures = 0
    while len(planned) < n and attempts < n * 6:
        attempts += 1
        # every third task asks for several calls at once, unless no server's tools allow distinct calls
        multi = len(planned) % 3 == 2 and multi_failures < 5 * len(servers)
        if not multi:
            server, tool = pairs[single_i % len(pairs)]  # each tool in turn
            single_i += 1
            call = _sample_call(tool, rng, cache)
            if call is None:
                continue
            template = rng.choice(_SINGLE_TEMPLATES)
            user = template.format(tool=tool["name"], args=render_arguments(call["arguments"]), purpose=_purpose(tool))
            calls, kind = [call], "single"
        else:
            server = servers[multi_i % len(servers)]
            multi_i += 1
            k = rng.choice((2, 3))
            chosen = [rng.choice(usable[server]) for _ in range(k)]
            sampled = [_sample_call(t, rng, cache) for t in chosen]
            calls = [c for c in sampled if c is not None]
            keys = {json.dumps([c["name"], c["arguments"]], sort_keys=True) for c in calls}
            if len(calls) < 2 or len(keys) < len(calls):
                multi_failures += 1
                continue
            items = "\n".join(
                f"{i}. `{c['name']}` with {render_arguments(c['arguments'])}" for i, c in enumerate(calls, 1)
            )
            user = rng.choice(_MULTI_TEMPLATES).format(n=len(calls), items=items)
            kind = "parallel"
        if user in seen:
            continue
        seen.add(user)
        planned.append((server, kind, user, calls))
    return planned


def _keeps_values(text: str, calls: list[dict[str, Any]]) -> bool:
    for call in calls:
        if call["name"] not in text:
            return False
        for value in call["arguments"].values():
            token = value if isinstance(value, str) else json.dumps(value)
            if token not in text:
                return False
    return True


async def _rephrase(policy: Policy, text: str, calls: list[dict[str, Any]], server: str) -> str:
    probe = _make_task(server, "rephrase", text, calls)
    messages: list[Any] = [{"role": "system", "content": _REPHRASE_PROMPT}, {"role": "user", "content": text}]
    try:
        completion = await policy.complete(messages, [], task=probe)
    except Exception:  # noqa: BLE001 - a failing phrasing model falls back to the template, which is always correct
        return text
    rewritten = str(completion.message.get("content") or "").strip()
    return rewritten if rewritten and _keeps_values(rewritten, calls) else text


def _finish(planned: list[_Planned], split: str | None) -> list[Task]:
    tasks = [_make_task(server, kind, user, calls) for server, kind, user, calls in planned]
    return [t for t in tasks if split is None or t.split == split]


async def agenerate_schema_tasks(
    tools_by_server: dict[str, list[dict[str, Any]]],
    *,
    seed: int,
    n: int,
    split: str | None = None,
    policy: Policy | None = None,
) -> list[Task]:
    """The async form of `generate_schema_tasks`, for callers inside an event loop (required with a policy)."""
    check_split(split)
    planned = _plan(tools_by_server, seed, n)
    if policy is not None:
        rewritten = []
        for server, kind, user, calls in planned:
            rewritten.append((server, kind, await _rephrase(policy, user, calls, server), calls))
        planned = rewritten
    return _finish(planned, split)


def generate_schema_tasks(
    tools_by_server: dict[str, list[dict[str, Any]]],
    *,
    seed: int,
    n: int,
    split: str | None = None,
    policy: Policy | None = None,
) -> list[Task]:
    """Tasks that exercise the tools of any MCP server, verified by the calls made.

    For each tool, arguments are sampled from its `inputSchema` (types, enums, minimum/maximum, lengths, required,
    `$ref`, anyOf) and checked with jsonschema; a request is phrased by a template (or rewritten by `policy`, kept
    only when it still names every tool and value). Every third task asks for 2-3 independent calls at once, which
    the verifier matches in any order. Expected calls carry the schema defaults of omitted arguments, so a call that
    spells out a default still matches.

    Args:
        tools_by_server: MCP tool dicts (name, description, inputSchema) by server name.
        seed: the generation seed.
        n: how many tasks to plan (fewer when the tools allow fewer distinct requests); the split filter applies
            after.
        split: "train", "test" or None.
        policy: an LLM policy to phrase the requests; templates when None.

    Returns:
        Tasks with an `expected_calls` verifier (un-namespaced tool names).

    Raises:
        ConfigError: no tools were given, or a policy was given from inside a running event loop (use
            `agenerate_schema_tasks` there).
    """
    check_split(split)
    if policy is None:
        return _finish(_plan(tools_by_server, seed, n), split)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(agenerate_schema_tasks(tools_by_server, seed=seed, n=n, split=split, policy=policy))
    raise ConfigError(
        "generate_schema_tasks with a policy cannot run inside an event loop: await agenerate_schema_tasks"
    )
