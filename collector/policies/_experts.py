"""Expert programs for the built-in task families: each decides the next assistant turn from the tool results."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from collector.errors import PolicyError
from collector.policies._coding_experts import code_repair, test_writing
from collector.policies._expert_kit import Call, Episode, ToolOutput, answer, example_tests, tool_turn
from collector.policies._selection_expert import tool_selection

__all__ = ["EXPERTS"]

Expert = Callable[[Episode], dict[str, Any]]


def _failed(outputs: list[ToolOutput]) -> str | None:
    errors = [o.text.strip() for o in outputs if o.is_error or o.data is None and not o.text]
    return errors[0][:300] if errors else None


def _sorry(what: str, error: str) -> dict[str, Any]:
    return answer(f"I could not {what}: {error}")


# weather ----------------------------------------------------------------------------------------------------------

_LABELS = {"temperature": "temperature", "relative_humidity_pct": "relative humidity", "wind_speed": "wind speed"}


def _with_unit(value: float, field: str, data: dict[str, Any]) -> str:
    labels = data.get("unit_labels") or {}
    if field == "relative_humidity_pct":
        return f"{value:g}%"
    unit = labels.get("wind_speed" if field.startswith("wind") else "temperature", "")
    return f"{value:g} {unit}".strip() if field.startswith("wind") else f"{value:g}{unit}"


def weather(ep: Episode) -> dict[str, Any]:
    """Weather tasks: one lookup (or several in parallel), then an answer computed from the tool results."""
    meta = ep.task.metadata
    kind, cities = meta.get("kind"), list(meta.get("cities") or [])
    if not cities:
        raise PolicyError(f"weather task {ep.task.id!r} has no cities in its metadata; the expert cannot plan it")
    units = "imperial" if kind == "imperial" else "metric"
    if ep.step == 0:
        if kind == "forecast":
            days = int(meta["days"])
            return tool_turn(ep, [Call("get_forecast", {"location": cities[0], "days": days, "units": units})])
        return tool_turn(ep, [Call("get_current_weather", {"location": c, "units": units}) for c in cities])
    outputs = ep.last
    error = _failed(outputs)
    if error or any(not isinstance(o.data, dict) for o in outputs):
        return _sorry("get the weather", error or "the tool returned no data")
    field = str(meta.get("field", "temperature"))
    if kind == "forecast":
        data = outputs[0].data
        day = data["days"][int(meta["day_index"])]
        value = day[field]
        word = "high" if field == "temperature_max" else "low"
        unit = (data.get("unit_labels") or {}).get("temperature", "°C")
        return answer(f"The {word} in {cities[0]} on {day['date']} will be {value:g}{unit}.\nAnswer: {value:g} {unit}")
    values = [o.data[field] for o in outputs]
    if kind in ("lookup", "imperial"):
        label = _LABELS.get(field, field)
        stated = _with_unit(values[0], field, outputs[0].data)
        return answer(f"The {label} in {cities[0]} is {stated} right now.\nAnswer: {stated}")
    if kind == "compare":
        best = max(values) if meta.get("pick", "max") == "max" else min(values)
        winner = cities[values.index(best)]
        label = _LABELS.get(field, field)
        return answer(
            f"{winner} has the {'highest' if meta.get('pick', 'max') == 'max' else 'lowest'} {label} of "
            f"{', '.join(cities)} right now.\nAnswer: {winner}"
        )
    if kind == "difference":
        diff = round(values[0] - values[1], 1)
        return answer(f"It is {values[0]:g} in {cities[0]} and {values[1]:g} in {cities[1]}.\nAnswer: {diff:g}")
    raise PolicyError(f"no weather expert for kind {kind!r}")


# files ------------------------------------------------------------------------------------------------------------


def _edited_line(text: str, key: str, old: str) -> str | None:
    for line in text.splitlines():
        if re.fullmatch(rf"\s*{re.escape(key)}\s*[=:]\s*{re.escape(old)}\s*", line):
            return line
    return None


def files(ep: Episode) -> dict[str, Any]:
    """Files tasks: write, read-then-edit, move, find-then-delete, or find, through the files tools."""
    meta = ep.task.metadata
    kind = meta.get("kind")
    error = _failed(ep.last)
    if error:
        return _sorry("finish the task", error)
    if kind == "create":
        if ep.step == 0:
            return tool_turn(ep, [Call("write_file", {"path": meta["path"], "content": meta["content"]})])
        return answer(f"Created `{meta['path']}`.")
    if kind == "move":
        if ep.step == 0:
            return tool_turn(ep, [Call("move_file", {"source": meta["source"], "destination": meta["destination"]})])
        return answer(f"Moved `{meta['source']}` to `{meta['destination']}`.")
    if kind in ("append", "edit"):
        if ep.step == 0:
            return tool_turn(ep, [Call("read_text_file", {"path": meta["path"]})])
        if ep.step == 1:
            text = ep.last[0].text
            if kind == "append":
                body = text if not text or text.endswith("\n") else text + "\n"
                return tool_turn(
                    ep, [Call("write_file", {"path": meta["path"], "content": body + meta["line"] + "\n"})]
                )
            line = _edited_line(text, meta["key"], meta["old"])
            if line is None:
                return answer(f"`{meta['path']}` has no line setting {meta['key']} to {meta['old']}; nothing changed.")
            new_line = line.replace(meta["old"], meta["new"])
            edit = {"path": meta["path"], "edits": [{"old_text": line, "new_text": new_line}]}
            return tool_turn(ep, [Call("edit_file", edit)])
        if kind == "append":
            return answer(f"Added the line at the end of `{meta['path']}`.")
        return answer(f"Changed `{meta['key']}` from {meta['old']} to {meta['new']} in `{meta['path']}`.")
    if kind == "delete":
        if ep.step == 0:
            return tool_turn(ep, [Call("search_files", {"path": meta["folder"], "pattern": "*.tmp"})])
        if ep.step == 1:
            found = [p for p in (ep.last[0].data or {}).get("matches", []) if p.endswith(".tmp")]
            if not found:
                return answer(f"There are no .tmp files in `{meta['folder']}/`.")
            return tool_turn(ep, [Call("delete_path", {"path": p}) for p in found])
        return answer(f"Deleted {len(ep.last)} .tmp file(s) from `{meta['folder']}/`.")
    if kind in ("find_content", "find_name"):
        if ep.step == 0:
            if kind == "find_content":
                return tool_turn(ep, [Call("grep", {"pattern": re.escape(meta["token"]), "path": "."})])
            return tool_turn(ep, [Call("search_files", {"path": ".", "pattern": meta["pattern"]})])
        matches = (ep.last[0].data or {}).get("matches", [])
        paths = [m["path"] if isinstance(m, dict) else str(m) for m in matches]
        if not paths:
            return answer("No file matches.")
        how = f"mentions `{meta.get('token')}`" if kind == "find_content" else f"matches `{meta['pattern']}`"
        return answer(f"`{paths[0]}` {how}.\nAnswer: {paths[0]}")
    raise PolicyError(f"no files expert for kind {kind!r}")


# search -----------------------------------------------------------------------------------------------------------

_STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "from",
        "as",
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "which",
        "who",
        "whom",
        "whose",
        "their",
        "his",
        "her",
        "they",
        "he",
        "she",
        "also",
        "has",
        "have",
        "had",
        "not",
        "but",
        "than",
        "into",
        "such",
        "other",
    }
)


def _query(excerpt: str, max_terms: int = 14) -> str:
    words = [
        w for w in re.findall(r"[A-Za-z][\w'-]+|\d{3,4}", excerpt.replace("___", " ")) if w.casefold() not in _STOP
    ]
    return " ".join(dict.fromkeys(words[:max_terms]))


def _hits(output: ToolOutput) -> list[dict[str, Any]]:
    data = output.data
    hits = data.get("hits") or data.get("results") if isinstance(data, dict) else data
    return [h for h in hits or [] if isinstance(h, dict) and h.get("title")]


def _title_answer(title: str) -> dict[str, Any]:
    return answer(f"The excerpt is the beginning of the article on {title}.\nAnswer: {title}")


def search(ep: Episode) -> dict[str, Any]:
    """Search tasks: search for the excerpt's key words (a second, shorter query if needed) and answer with the
    title of the hit that is the article (the expert knows the answer and picks it among the real results)."""
    meta = ep.task.metadata
    excerpt = str(meta.get("excerpt") or ep.task.messages[-1]["content"])
    accepted = [a.casefold() for a in (ep.task.verifier.expected or [])] if ep.task.verifier.expected else []
    if ep.step == 0:
        return tool_turn(ep, [Call("search", {"query": _query(excerpt), "k": 10})])
    error = _failed(ep.last)
    if error:
        return _sorry("search the encyclopedia", error)
    hits = _hits(ep.last[0])
    for hit in hits:
        if str(hit["title"]).casefold() in accepted:
            return _title_answer(str(hit["title"]))
    if ep.step == 1:
        return tool_turn(ep, [Call("search", {"query": _query(excerpt, 6), "k": 10})])
    first_hits = _hits(ep.turns[0][0])
    best = first_hits or hits
    return _title_answer(str(best[0]["title"])) if best else answer("I could not find the article.")


# code -------------------------------------------------------------------------------------------------------------


def code(ep: Episode) -> dict[str, Any]:
    """Code tasks: test the reference solution against tests written from the examples of the prompt (the task's
    hidden tests never appear in a call), then answer with it; without examples, run it once to check it loads."""
    meta = ep.task.metadata
    prompt = str(meta.get("prompt", ""))
    solution = prompt + str(meta.get("canonical_solution", ""))
    entry_point = str(meta.get("entry_point") or ep.task.verifier.entry_point or "")
    if not solution.strip() or not entry_point:
        raise PolicyError(f"code task {ep.task.id!r} carries no reference solution or entry point for the expert")
    if ep.step == 0:
        tests = example_tests(prompt, entry_point)
        if tests is None:
            return tool_turn(ep, [Call("run_python", {"code": solution})])
        return tool_turn(ep, [Call("run_tests", {"code": solution, "test_code": tests, "entry_point": entry_point})])
    result = ep.last[0].data if isinstance(ep.last[0].data, dict) else {}
    if "total" in result:
        status = f"It passes {result.get('passed')}/{result.get('total')} of the examples from the docstring."
    else:
        status = "It loads without errors." if result.get("exit_code") == 0 else ""
    return answer(f"```python\n{solution.rstrip()}\n```\n{status}".strip())


# schema -----------------------------------------------------------------------------------------------------------


def schema(ep: Episode) -> dict[str, Any]:
    """Schema tasks: make exactly the requested calls, all in one turn, then confirm."""
    if ep.step == 0:
        calls = ep.task.verifier.calls or []
        return tool_turn(ep, [Call(c["name"], dict(c.get("arguments") or {})) for c in calls])
    errors = sum(o.is_error for o in ep.last)
    return answer(f"Made {len(ep.last)} call(s)" + (f"; {errors} returned an error." if errors else "."))


EXPERTS: dict[str, Expert] = {
    "weather": weather, "files": files, "search": search, "code": code, "schema": schema,
    "tool-selection": tool_selection, "code-repair": code_repair, "test-writing": test_writing,
}
