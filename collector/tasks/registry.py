"""Task suites by name: the built-in families and user JSONL files, with a deterministic split, shuffle and limit."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from collector.errors import ConfigError
from collector.tasks._split import check_split, seeded_rng
from collector.tasks.model import Task, VerifierSpec

__all__ = [
    "FAMILIES", "LIVE_SUITES", "current_verifier", "interleave", "is_live_suite", "load_suite", "load_tasks",
    "suite_name",
]

# family name -> module with `generate(seed, n) -> list[Task]`
FAMILIES: dict[str, str] = {
    "weather": "collector.tasks.weather",
    "files": "collector.tasks.files",
    "search": "collector.tasks.search",
    "code": "collector.tasks.code",
    "tool-selection": "collector.tasks.tool_selection",
    "code-repair": "collector.tasks.code_repair",
    "test-writing": "collector.tasks.test_writing",
}
_SCHEMA = "schema"
_SELECTION = "schema-selection"
LIVE_SUITES = (_SCHEMA, _SELECTION)  # generated from the attached servers' live tool lists


def _live_parts(suite: str) -> tuple[str, list[str] | None] | None:
    """A live suite as (name, servers or None): `schema` -> ("schema", None), `schema:weather+files` -> the servers.

    None when `suite` is no live suite. A `:` form with an empty server list is a ConfigError.
    """
    head, sep, tail = suite.strip().partition(":")
    name = head.strip().lower()
    if name not in LIVE_SUITES:
        return None
    if not sep:
        return name, None
    servers = [s.strip() for s in tail.split("+") if s.strip()]
    if not servers:
        raise ConfigError(f"suite {suite!r} names no server: write {name}:SERVER or {name}:SERVER+SERVER")
    return name, list(dict.fromkeys(servers))


def is_live_suite(suite: str) -> bool:
    """Whether a suite is generated from the attached servers' tool lists (`schema`, `schema:weather+files`, ...)."""
    head, _, _ = suite.strip().partition(":")
    return head.strip().lower() in LIVE_SUITES


def suite_name(suite: str) -> str:
    """The canonical spelling of a suite: built-in and live names in lower case (servers as given), paths as is."""
    name = suite.strip()
    if name.lower() in FAMILIES:
        return name.lower()
    parts = _live_parts(name) if is_live_suite(name) else None
    if parts is not None:
        live, servers = parts
        return live if servers is None else f"{live}:{'+'.join(servers)}"
    return name


def _restrict(
    suite: str, servers: list[str] | None, tools_by_server: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    if servers is None:
        return tools_by_server
    unknown = [s for s in servers if s not in tools_by_server]
    if unknown:
        raise ConfigError(
            f"suite {suite!r} names {', '.join(repr(s) for s in unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not an attached server; accepted: "
            f"{', '.join(sorted(tools_by_server))}"
        )
    return {s: tools_by_server[s] for s in servers}


def _is_path(suite: str) -> bool:
    return suite.endswith((".jsonl", ".json")) or "/" in suite or "\\" in suite or Path(suite).is_file()


def load_suite(
    suite: str, *, seed: int = 0, tools_by_server: dict[str, list[dict[str, Any]]] | None = None
) -> list[Task]:
    """Every task of one suite, in generation order (no split filter, no shuffle).

    Args:
        suite: a built-in family name (weather, files, search, code, ...), "schema" or "schema-selection" (need
            `tools_by_server`; `schema:weather+files` keeps only the tools of the named servers), or the path of a
            JSONL file of tasks.
        seed: the generation seed.
        tools_by_server: the live tool lists (MCP tool dicts) of the attached servers, for the schema suite.

    Raises:
        ConfigError: unknown suite name, unreadable or invalid JSONL file, schema without tool lists, or a server
            named after `schema:` that is not attached (the message lists the attached ones).
    """
    name = suite_name(suite)
    if name in FAMILIES:
        module = importlib.import_module(FAMILIES[name])
        tasks: list[Task] = module.generate(seed)
        return tasks
    parts = _live_parts(name) if is_live_suite(name) else None
    if parts is not None:
        name, only = parts
        if not tools_by_server:
            raise ConfigError(
                f"the {name!r} suite is generated from the attached servers' tool lists: "
                "pass tools_by_server (the collector does this after listing the tools)"
            )
        tools_by_server = _restrict(suite.strip(), only, tools_by_server)
        if name == _SELECTION:
            from collector.tasks.schema_selection import generate_selection_tasks

            return generate_selection_tasks(tools_by_server, seed=seed, n=100)
        from collector.tasks.schema_tasks import generate_schema_tasks

        return generate_schema_tasks(tools_by_server, seed=seed, n=100)
    if _is_path(name):
        if not Path(name).is_file():
            raise ConfigError(f"task file {name!r} does not exist")
        from collector.tasks.jsonl import load_jsonl_tasks

        return load_jsonl_tasks(name)
    accepted = ", ".join([*FAMILIES, *LIVE_SUITES])
    raise ConfigError(
        f"unknown task suite {name!r}; accepted: {accepted} (schema:SERVER+SERVER for some servers' tools), "
        "or the path of a .jsonl file of tasks"
    )


def interleave(groups: list[list[Task]]) -> list[Task]:
    """Round-robin over groups: the first of each, then the second of each, and so on."""
    out: list[Task] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def load_tasks(
    suites: list[str],
    *,
    split: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    tools_by_server: dict[str, list[dict[str, Any]]] | None = None,
) -> list[Task]:
    """Load and mix task suites deterministically.

    Each suite's tasks are filtered by split (by task id, so a task is always in the same split), shuffled with
    the seed, and the suites are interleaved round-robin, so `limit` takes a mix of every suite.

    Args:
        suites: built-in family names (weather, files, search, code, ...), live suites (schema, schema-selection,
            `schema:weather+files` for the named servers' tools only) or paths of JSONL task files.
        split: "train", "test", or None for both.
        seed: the generation and shuffle seed: the same seed gives the same tasks in the same order.
        limit: keep the first `limit` tasks of the mix.
        tools_by_server: live MCP tool lists by server name, needed only by the schema suite.

    Returns:
        The tasks, without duplicate ids (the first occurrence wins).

    Raises:
        ConfigError: an unknown suite (the message lists the accepted ones), a bad split or limit, no suite, or an
            invalid task file.
    """
    check_split(split)
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    names = [suite_name(s) for s in suites if s.strip()]
    if not names:
        raise ConfigError(f"no task suite given; accepted: {', '.join([*FAMILIES, *LIVE_SUITES])}, or a .jsonl path")
    groups: list[list[Task]] = []
    for name in dict.fromkeys(names):
        tasks = load_suite(name, seed=seed, tools_by_server=tools_by_server)
        if split is not None:
            tasks = [t for t in tasks if t.split == split]
        seeded_rng(seed, "shuffle", name).shuffle(tasks)
        groups.append(tasks)
    seen: set[str] = set()
    mixed: list[Task] = []
    for task in interleave(groups):
        if task.id not in seen:
            seen.add(task.id)
            mixed.append(task)
    return mixed if limit is None else mixed[:limit]


def current_verifier(task: dict[str, Any]) -> dict[str, Any]:
    """The verifier a stored built-in task is judged by today (as a spec dict).

    Tasks generated before the answer forms were declared carry the old, lenient specs: a search task's `contains`
    over the title's names, a files find task's `regex` over the path, a weather compare task's `regex` that wanted
    the winner named first. Their answers are read today by `exact` over the same names or path (the old prompts
    already asked for "the article title only", "the city name only" and "its path"). Any other task keeps its
    spec.

    Args:
        task: the task as stored with an episode (a Task's JSON dump).

    Returns:
        The spec to judge it by (the stored one when nothing changed).
    """
    spec = dict(task.get("verifier") or {})
    family, meta = task.get("family"), task.get("metadata") or {}
    kind = meta.get("kind")
    if family == "search" and kind == "masked_lead" and spec.get("type") == "contains":
        from collector.tasks.search import title_answer

        expected = spec.get("expected")
        names = [expected] if isinstance(expected, str) else list(expected or [])
        return title_answer(names).model_dump(mode="json")
    if (
        family == "files"
        and kind in ("find_content", "find_name")
        and spec.get("type") == "regex"
        and meta.get("answer")
    ):
        from collector.tasks.files import path_answer

        return path_answer(str(meta["answer"])).model_dump(mode="json")
    if family == "weather" and kind == "compare" and spec.get("type") == "regex" and meta.get("answer"):
        from collector.tasks.weather import answer_names

        names = answer_names(str(meta["answer"]), [str(c) for c in meta.get("cities") or []])
        return VerifierSpec(type="exact", expected=names).model_dump(mode="json")
    return spec
