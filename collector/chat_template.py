"""The one tool-calling chat template (ChatML with `<tool_call>` JSON), shared by the local policy and training."""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from collector.types import Message, OpenAITool, ToolCall

__all__ = [
    "CHAT_TEMPLATE",
    "MALFORMED_KINDS",
    "RESPONSE_TEMPLATE",
    "ParsedCompletion",
    "install_chat_template",
    "parse_completion",
    "render_prompt",
    "to_training_messages",
]

CHAT_TEMPLATE: str = resources.files("collector").joinpath("templates/chatml_tools.jinja").read_text(encoding="utf-8")
"""Jinja source of the template (TRL's Qwen2.5 training template, with `{% generation %}` markers)."""

# Transformers' response-parsing spec for this output format (the one TRL uses for the Qwen family), so that
# `tokenizer.parse_response` and TRL's GRPO tool loop can read tool calls without recognising the template by name.
RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {"open": "<think>", "close_pattern": r"</think>\s*", "content": "text"},
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}

MALFORMED_KINDS = ("invalid_json", "missing_name", "invalid_arguments", "unclosed_tag")
"""Why a `<tool_call>` block could not be read as it stood:

- invalid_json: the text between the tags is not a JSON object;
- missing_name: the object has no non-empty string `name`;
- invalid_arguments: `arguments` is missing or not a JSON object;
- unclosed_tag: `<tool_call>` with no `</tool_call>` before the end of the output.
"""

_OPEN = "<tool_call>"
_CLOSE = "</tool_call>"
_END_MARKERS = ("<|im_end|>", "<|endoftext|>")
_NAME_RE = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGS_KEY_RE = re.compile(r'"arguments"\s*:\s*')


@dataclass
class ParsedCompletion:
    """A model's output read as an assistant turn.

    Attributes:
        content: the text outside the `<tool_call>` blocks, stripped; None when empty and there are tool calls.
        tool_calls: one OpenAI tool call per block, in order, with a fresh id. `arguments` is the JSON text the
            model wrote for a well-formed call, and the verbatim text between the tags for a malformed one.
        malformed: one entry per malformed block: `{"kind", "text", "index"}` (`index` into `tool_calls`,
            `kind` in MALFORMED_KINDS, `text` the verbatim block content).
    """

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    malformed: list[dict[str, Any]] = field(default_factory=list)

    def to_message(self) -> dict[str, Any]:
        """The OpenAI assistant message for this turn (`tool_calls` only when there are any)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = copy.deepcopy(self.tool_calls)
        return message


def install_chat_template(tokenizer: Any) -> Any:
    """Give a tokenizer the project's chat template and response-parsing spec.

    Args:
        tokenizer: a transformers tokenizer.

    Returns:
        The same tokenizer, with `chat_template` and `response_template` set.
    """
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.response_template = copy.deepcopy(RESPONSE_TEMPLATE)
    return tokenizer


def render_prompt(tokenizer: Any, messages: list[Message], tools: list[OpenAITool] | None) -> str:
    """Render a conversation and its tools as the prompt for the next assistant turn.

    Args:
        tokenizer: a transformers tokenizer (its own template is ignored; CHAT_TEMPLATE is used).
        messages: OpenAI chat messages; tool-call `arguments` as JSON strings (as stored).
        tools: OpenAI tools offered to the model, or None / [] for none.

    Returns:
        The prompt text, ending with the assistant header `<|im_start|>assistant\\n`.

    Raises:
        ValueError: a message has an unknown role or the conversation is empty.
    """
    text = tokenizer.apply_chat_template(
        to_training_messages(messages),
        tools=list(tools) if tools else None,
        chat_template=CHAT_TEMPLATE,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert isinstance(text, str)
    return text


def to_training_messages(messages: list[Message] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert stored OpenAI messages into the form the chat template (and TRL) expects.

    A well-formed tool call's `arguments` JSON string becomes a dict. A malformed call (see `parse_completion`)
    keeps its verbatim string, which the template renders as emitted: an `arguments` string is taken as a
    verbatim block when the name is empty, when it is not a JSON object, or when it is an object naming the
    call itself (`{"name": <the call's name>, ...}`, the whole block rather than its arguments). A `None`
    content becomes "" except on an assistant turn with tool calls. The input is not modified.

    Args:
        messages: OpenAI chat messages.

    Returns:
        New message dicts: `role`, `content`, and `tool_calls` / `tool_call_id` / `name` where present.

    Raises:
        ValueError: the list is empty, or a message has a missing or unknown role.
    """
    if not messages:
        raise ValueError("messages is empty: a conversation needs at least one message")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"messages[{i}] has role {role!r}; accepted roles: system, user, assistant, tool")
        new: dict[str, Any] = {"role": role}
        content = msg.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        calls = msg.get("tool_calls") if role == "assistant" else None
        new["content"] = "" if content is None and not calls else content
        if calls:
            new["tool_calls"] = [_template_call(c) for c in calls]
        for key in ("tool_call_id", "name"):
            if key in msg:
                new[key] = msg[key]
        out.append(new)
    return out


def _template_call(call: Any) -> dict[str, Any]:
    function = call.get("function", call)
    name = function.get("name") or ""
    arguments = function.get("arguments")
    if isinstance(arguments, str) and name:
        try:
            decoded = json.loads(arguments)
        except ValueError:
            decoded = None
        # A malformed call's `arguments` is the block's verbatim text: when that text is a JSON object, it names
        # the call itself ({"name": <name>, ...}); a well-formed call's arguments object does not.
        if isinstance(decoded, dict) and decoded.get("name") != name:
            arguments = decoded
    elif arguments is None:
        arguments = ""
    new: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if "id" in call:
        new["id"] = call["id"]
    return new


def parse_completion(text: str) -> ParsedCompletion:
    """Read a model's raw output as an assistant turn, keeping malformed tool calls verbatim.

    Every `<tool_call>...</tool_call>` block becomes an OpenAI tool call with a fresh id. A block that is not
    `{"name": <non-empty string>, "arguments": <object>}` is kept verbatim (name if recoverable, else "";
    `arguments` = the text between the tags) and recorded in `malformed`; nothing is repaired. A trailing
    `<|im_end|>` (and anything after it) is dropped.

    Args:
        text: the generated text (without the prompt).

    Returns:
        The parsed turn.
    """
    for marker in _END_MARKERS:
        cut = text.find(marker)
        if cut != -1:
            text = text[:cut]
    pieces: list[str] = []
    calls: list[ToolCall] = []
    malformed: list[dict[str, Any]] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start == -1:
            pieces.append(text[pos:])
            break
        pieces.append(text[pos:start])
        body_start = start + len(_OPEN)
        end = text.find(_CLOSE, body_start)
        unclosed = end == -1
        inner = text[body_start:] if unclosed else text[body_start:end]
        name, arguments, kind = _read_call(inner)
        if unclosed:
            kind = "unclosed_tag"
        calls.append({"id": _fresh_id(), "type": "function", "function": {"name": name, "arguments": arguments}})
        if kind is not None:
            malformed.append({"kind": kind, "text": inner, "index": len(calls) - 1})
        if unclosed:
            break
        pos = end + len(_CLOSE)
    content = "".join(pieces).strip()
    return ParsedCompletion(content=content or (None if calls else ""), tool_calls=calls, malformed=malformed)


def _read_call(inner: str) -> tuple[str, str, str | None]:
    """(name, arguments text, malformed kind or None) of one block's inner text."""
    stripped = inner.strip()
    try:
        obj = json.loads(stripped)
    except ValueError:
        match = _NAME_RE.search(stripped)
        return (_unescape(match.group(1)) if match else ""), inner, "invalid_json"
    if not isinstance(obj, dict):
        return "", inner, "invalid_json"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return "", inner, "missing_name"
    arguments = obj.get("arguments")
    if not isinstance(arguments, dict):
        return name, inner, "invalid_arguments"
    return name, _arguments_text(stripped, arguments), None


def _arguments_text(obj_text: str, arguments: dict[str, Any]) -> str:
    """The exact text the model wrote for the `arguments` value (re-serialised only if it cannot be located)."""
    decoder = json.JSONDecoder()
    for match in _ARGS_KEY_RE.finditer(obj_text):
        try:
            value, end = decoder.raw_decode(obj_text, match.end())
        except ValueError:
            continue
        if value == arguments and re.match(r"\s*[,}]", obj_text[end:]):
            return obj_text[match.end() : end]
    return json.dumps(arguments, ensure_ascii=False)


def _unescape(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _fresh_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
