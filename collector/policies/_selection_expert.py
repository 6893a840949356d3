"""The expert of the tool-selection family: the one right tool, no tool, two chained calls, or a corrected call.

It knows the task's plan (which tool serves the request): that is its privileged knowledge, used only to choose.
Every argument it sends is in its context: the place as the user wrote it, a value read from an earlier tool
result or file, or the name a tool error suggested. Its answers are read from the tool results.
"""

from __future__ import annotations

import re
from typing import Any

from collector.errors import PolicyError
from collector.policies._expert_kit import Call, Episode, ToolOutput, answer, tool_turn

__all__ = ["tool_selection"]

_SORRY = "Sorry, I can't"  # the declared form of a refusal (collector.tasks.tool_selection.SORRY)
_SUGGESTION = re.compile(r"did you mean: ([^;?]+)")
_FILE_FIELD = re.compile(r"^\s*{key}\s*:\s*(.+?)\s*$", re.MULTILINE)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _read(data: Any, path: str) -> Any:
    """A value of a tool's JSON result by dotted path (`days.2.temperature_min`)."""
    node = data
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _stated(output: ToolOutput, field: str, unit: str) -> str:
    if output.is_error or not isinstance(output.data, dict):
        raise LookupError(output.text.strip()[:300] or "the tool returned no data")
    value = _read(output.data, field)
    if unit == "time" or isinstance(value, str):
        return str(value)
    return f"{_number(value)} {unit}" if unit in ("°C", "km/h") else _number(value)


def _final(ep: Episode, outputs: list[ToolOutput]) -> dict[str, Any]:
    meta = ep.task.metadata
    try:
        parts = [_stated(o, f, u) for o, f, u in zip(outputs, meta["fields"], meta["units"], strict=True)]
    except (LookupError, KeyError, IndexError, TypeError, ValueError) as exc:
        return answer(f"I could not get the value: {exc}")
    return answer(f"Answer: {'; '.join(parts)}")


def _argument(value: Any, previous: list[ToolOutput]) -> Any:
    """An argument of a planned call; a chained one is read from the previous turn's output."""
    if not isinstance(value, dict):
        return value
    source = previous[0] if previous else None
    if source is None or source.is_error:
        raise LookupError(source.text.strip()[:300] if source else "no earlier result")
    if "from_file" in value:
        pattern = re.compile(_FILE_FIELD.pattern.format(key=re.escape(value["from_file"])), re.MULTILINE)
        match = pattern.search(source.text)
        if match is None:
            raise LookupError(f"the file has no {value['from_file']!r} line")
        return match.group(1)
    if "from_result" in value and isinstance(source.data, dict):
        return _read(source.data, value["from_result"])
    if "from_error" in value:
        raise LookupError("a corrected name comes from an error only")
    raise LookupError(f"cannot read {value!r} from the earlier result")


def _planned(ep: Episode, index: int) -> Call:
    step = ep.task.metadata["plan"][index]
    args = {k: _argument(v, ep.last) for k, v in step["arguments"].items()}
    return Call(step["tool"], args)


def tool_selection(ep: Episode) -> dict[str, Any]:
    """Tool-selection tasks: see the module docstring; one turn per step, parallel calls in one turn."""
    meta = ep.task.metadata
    kind, plan = meta.get("kind"), list(meta.get("plan") or [])
    if kind == "no_tool":
        if meta.get("sub") == "from_context":
            return answer(f"Answer: {meta['answer']}")
        return answer(f"{_SORRY} do that: {meta.get('reason', 'none of my tools serves this request')}.")
    if not plan:
        raise PolicyError(f"tool-selection task {ep.task.id!r} has no plan in its metadata; the expert cannot solve it")
    try:
        if kind == "schema_select":
            if ep.step == 0:
                return tool_turn(ep, [_planned(ep, 0)])
            out = ep.last[0]
            verb = "failed" if out.is_error else "returned"
            return answer(f"I called {out.name}; it {verb}: {' '.join(out.text.split())[:200]}")
        if kind in ("select", "parallel"):
            if ep.step == 0:
                return tool_turn(ep, [_planned(ep, i) for i in range(len(plan))])
            return _final(ep, ep.last)
        if kind == "sequential":
            if ep.step < len(plan):
                return tool_turn(ep, [_planned(ep, ep.step)])
            return _final(ep, ep.last)
        if kind == "recover":
            if ep.step == 0:
                return tool_turn(ep, [_planned(ep, 0)])
            last = ep.last[0]
            if ep.step == 1 and last.is_error:
                suggestion = _SUGGESTION.search(last.text)
                if suggestion is None:
                    return answer(f"I could not get the value: {last.text.strip()[:300]}")
                step = plan[1]
                args = {
                    k: suggestion.group(1).strip() if isinstance(v, dict) else v for k, v in step["arguments"].items()
                }
                return tool_turn(ep, [Call(step["tool"], args)])
            return _final(ep, [last])
    except LookupError as exc:
        return answer(f"I could not get the value: {exc}")
    raise PolicyError(f"no tool-selection expert for kind {kind!r}")
