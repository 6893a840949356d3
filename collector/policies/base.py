"""The policy interface: the LLM side of an episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["Completion", "Policy", "TurnTokens"]


@dataclass
class TurnTokens:
    """The tokens of one assistant turn exactly as the policy sampled them (for token-level training data).

    Attributes:
        token_ids: the sampled tokens, in order (the end-of-turn token included where the policy samples one).
        logprobs: the log-probability each token had when it was sampled (None where the policy does not say).
        prompt_token_ids: the prompt the turn was sampled from, as the policy's tokenizer rendered it (None where the
            policy does not say).
    """

    token_ids: list[int]
    logprobs: list[float] | None = None
    prompt_token_ids: list[int] | None = None

    def record(self) -> dict[str, Any]:
        """The form the store keeps (`message_tokens`)."""
        return {"token_ids": list(self.token_ids), "logprobs": self.logprobs, "prompt_token_ids": self.prompt_token_ids}


@dataclass
class Completion:
    """One assistant turn.

    `message` is an OpenAI assistant message (`content`, optional `tool_calls` whose `arguments` are JSON strings
    kept exactly as the model emitted them). `raw_text` is the model's verbatim output where the policy sees text
    (local models). `malformed` lists what could not be parsed as it stood (`{"kind": ..., "text": ...}`); a
    malformed call is never repaired: it is kept verbatim and marked. `tokens` are the sampled tokens where the
    policy reports them (local: always; openai: where the endpoint returns them).
    """

    message: dict[str, Any]
    raw_text: str | None = None
    malformed: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    tokens: TurnTokens | None = None


class Policy(Protocol):
    """Produces the next assistant turn. Implementations: openai, local, scripted."""

    name: str  # "openai" | "local" | "scripted"
    model: str

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion: ...

    async def aclose(self) -> None: ...
