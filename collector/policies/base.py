"""The policy interface: the LLM side of an episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["Completion", "Policy"]


@dataclass
class Completion:
    """One assistant turn.

    `message` is an OpenAI assistant message (`content`, optional `tool_calls` whose `arguments` are JSON strings
    kept exactly as the model emitted them). `raw_text` is the model's verbatim output where the policy sees text
    (local models). `malformed` lists what could not be parsed as it stood (`{"kind": ..., "text": ...}`); a
    malformed call is never repaired: it is kept verbatim and marked.
    """

    message: dict[str, Any]
    raw_text: str | None = None
    malformed: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0


class Policy(Protocol):
    """Produces the next assistant turn. Implementations: openai, local, scripted."""

    name: str  # "openai" | "local" | "scripted"
    model: str

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion: ...

    async def aclose(self) -> None: ...
