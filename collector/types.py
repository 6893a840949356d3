"""OpenAI chat-format types: the one message vocabulary used across mcpgym (store, policies, datasets)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "FunctionCall",
    "FunctionSpec",
    "Message",
    "OpenAITool",
    "ToolCall",
    "Verdict",
]


class FunctionCall(TypedDict):
    name: str
    arguments: str  # a JSON *string* (the OpenAI wire form); a dict only inside dataset building


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class Message(TypedDict, total=False):
    """One chat message. `role` is always present; the other keys depend on the role."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None
    tool_calls: list[ToolCall]  # assistant only
    tool_call_id: str  # tool only
    name: str  # tool only: the (namespaced) tool name that produced this result


class FunctionSpec(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]


class OpenAITool(TypedDict):
    type: Literal["function"]
    function: FunctionSpec


class Verdict(TypedDict):
    """A verifier's result: `score` in [0, 1]; `details` says why, for people and for reward functions."""

    passed: bool
    score: float
    details: dict[str, Any]
    error: NotRequired[str]
