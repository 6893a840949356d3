"""MCP tools as OpenAI tools: the one conversion function, the one namespace split, the one argument check, and
tool results. The episode's rules built on them (call records, judging, rewards) are in `collector.episode`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from collector.chat_template import MALFORMED_KINDS as _PARSE_KINDS
from collector.types import OpenAITool

__all__ = [
    "MALFORMED_KINDS",
    "NAMESPACE_SEP",
    "ToolRef",
    "ToolResult",
    "check_arguments",
    "first_sentence",
    "mcp_tool_to_openai",
    "namespaced",
    "parse_arguments",
    "split_name",
    "truncate_output",
]

NAMESPACE_SEP = "__"
MALFORMED_KINDS = frozenset({"unknown_tool", "invalid_json", "invalid_arguments", *_PARSE_KINDS})
"""Error kinds of a call the model wrote wrongly (the one set; every other error kind is the tool's or the server's):

- unknown_tool: the name is not an offered tool;
- invalid_json: the arguments (or the whole `<tool_call>` block) are not JSON;
- invalid_arguments: the arguments are not an object, or do not match the tool's input schema;
- missing_name, unclosed_tag: a `<tool_call>` block with no name, or never closed (`collector.chat_template`).
"""


def namespaced(server: str, tool: str, *, several: bool) -> str:
    """The name the model sees: `server__tool` when several servers are attached, else the tool's own name."""
    return f"{server}{NAMESPACE_SEP}{tool}" if several else tool


def split_name(name: str, servers: list[str] | tuple[str, ...]) -> tuple[str | None, str]:
    """The one namespace split: `(server, tool)` of a name as the model emitted it.

    With several servers attached, exposed names are `server__tool` and the split is at the *first* separator (a
    tool's own name may contain `__`; a server's name may not). With one server, names are the tools' own names.

    Args:
        name: the emitted name.
        servers: the servers attached to the episode.

    Returns:
        `(server, tool)`; server is None when the name names no attached server.
    """
    if len(servers) == 1:
        return servers[0], name
    head, sep, tail = name.partition(NAMESPACE_SEP)
    if sep and head in servers and tail:
        return head, tail
    return None, name


def first_sentence(text: str) -> str:
    """The first sentence of a description: up to the first period followed by a space or a line end, else its first
    line (`"Get the forecast. Use this for ..."` -> `"Get the forecast."`)."""
    text = text.strip()
    match = re.search(r"\.(\s|$)", text)
    head = text[: match.start() + 1] if match else text
    return head.split("\n")[0].strip()


def _short_schema(schema: Any) -> Any:
    """The schema with every `description` cut to its first sentence (recursively: nested objects, items, $defs)."""
    if isinstance(schema, list):
        return [_short_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            out[key] = first_sentence(value)
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: _short_schema(v) for k, v in value.items()}  # property names are not keywords
        else:
            out[key] = _short_schema(value)
    return out


def mcp_tool_to_openai(tool: dict[str, Any], *, name: str | None = None, short: bool = False) -> OpenAITool:
    """Convert one MCP tool definition into an OpenAI function tool.

    This is the only place where that conversion happens (docs/architecture.md, data contract): collection, SFT
    rows and the GRPO prompts all show the model these dicts.

    Args:
        tool: the MCP tool as a dict (`name`, `description`, `inputSchema`, optional `title`/`annotations`).
        name: the name to expose (a namespaced name); defaults to the tool's own name.
        short: cut the tool's and every argument's description to its first sentence (the collector setting
            `tool_descriptions=short`); names, types, enums, bounds and defaults are kept.

    Returns:
        `{"type": "function", "function": {"name", "description", "parameters"}}`.
    """
    schema = dict(tool.get("inputSchema") or tool.get("input_schema") or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    description = str(tool.get("description") or tool.get("title") or "")
    if short:
        schema = _short_schema(schema)
        description = first_sentence(description)
    return {
        "type": "function",
        "function": {"name": name or str(tool["name"]), "description": description, "parameters": schema},
    }


@dataclass
class ToolRef:
    """A tool offered in a session: the exposed name, its server, its MCP name and its argument schema."""

    exposed: str
    server: str
    tool: str
    schema: dict[str, Any]
    _validator: Any = field(default=None, repr=False)

    def validator(self) -> Any:
        """A cached jsonschema validator for the tool's input schema."""
        if self._validator is None:
            cls = jsonschema.validators.validator_for(self.schema, default=jsonschema.Draft202012Validator)
            self._validator = cls(self.schema)
        return self._validator


@dataclass
class ToolResult:
    """The outcome of one tool call as the model and the store see it.

    Attributes:
        text: what the model reads (tool output, or an error message it can act on).
        is_error: the call failed (server-side tool error, malformed call, timeout).
        structured: the tool's structured content, when it returned any.
        duration_s: wall time of the call.
        server: the server that ran it ("" for a call that never reached a server).
        tool: the un-namespaced tool name ("" when unknown).
        error_kind: None, "tool_error", "unknown_tool", "invalid_json", "invalid_arguments", "timeout",
            "protocol_error".
        truncated: the text was cut to the output budget.
    """

    text: str
    is_error: bool = False
    structured: Any = None
    duration_s: float = 0.0
    server: str = ""
    tool: str = ""
    error_kind: str | None = None
    truncated: bool = False

    @property
    def malformed(self) -> bool:
        """The model's call itself was malformed (unknown tool, invalid JSON, schema-violating arguments)."""
        return self.error_kind in MALFORMED_KINDS


def check_arguments(ref: ToolRef, arguments: Any) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """The one argument check: parse a call's arguments and validate them against the tool's input schema.

    Args:
        ref: the tool called.
        arguments: the arguments as emitted: a JSON string ("" means `{}`), or an already-decoded value.

    Returns:
        `(arguments, error kind, message)`: the decoded arguments (None when they are not a JSON object), and for a
        bad call its kind ("invalid_json" or "invalid_arguments") and a message that tells the model what to fix.
    """
    if isinstance(arguments, str):
        text = arguments if arguments.strip() else "{}"
        try:
            args = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, "invalid_json", (
                f"Error: the arguments of '{ref.exposed}' are not valid JSON ({exc.msg} at position {exc.pos}). "
                "Send a JSON object matching the tool's parameters.")
    else:
        args = {} if arguments is None else arguments
    if not isinstance(args, dict):
        return None, "invalid_arguments", (
            f"Error: the arguments of '{ref.exposed}' must be a JSON object, got {type(args).__name__}.")
    try:
        error = jsonschema.exceptions.best_match(ref.validator().iter_errors(args))
    except jsonschema.exceptions.SchemaError:
        error = None  # the server's schema is broken, not the call: the server judges the arguments
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        return args, "invalid_arguments", (
            f"Error: invalid arguments for '{ref.exposed}' at {where}: {error.message}. "
            f"Expected parameters: {json.dumps(ref.schema.get('properties', {}), sort_keys=True)[:1500]}")
    return args, None, None


def parse_arguments(ref: ToolRef, arguments_json: str) -> tuple[dict[str, Any] | None, ToolResult | None]:
    """`check_arguments` as a result: `(arguments, None)` when valid, else `(None, error result)` the model reads."""
    args, kind, message = check_arguments(ref, arguments_json)
    if kind is None:
        return args, None
    return None, ToolResult(str(message), is_error=True, server=ref.server, tool=ref.tool, error_kind=kind)


def truncate_output(text: str, budget: int) -> tuple[str, bool]:
    """Cut `text` to `budget` characters (head and tail kept) with a visible marker naming what was dropped."""
    if len(text) <= budget:
        return text, False
    marker = f"\n[... truncated: {len(text) - budget} of {len(text)} characters omitted ...]\n"
    keep = max(budget - len(marker), 0)
    head = keep * 3 // 4
    tail = keep - head
    return text[:head] + marker + (text[len(text) - tail:] if tail else ""), True


def result_text(content: list[Any]) -> str:
    """Flatten MCP content blocks into the text a model reads."""
    parts: list[str] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', 'unknown type')}]")
        elif kind == "resource":
            res = block.resource
            parts.append(getattr(res, "text", None) or f"[resource: {getattr(res, 'uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {getattr(block, 'uri', '')}]")
        else:
            parts.append(str(block))
    return "\n".join(parts)
