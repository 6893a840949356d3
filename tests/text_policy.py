"""A policy that plays fixed model outputs (raw text), read exactly as the local policy reads its model's output.

The real SmolLM2 rarely writes a given malformed `<tool_call>` block on demand; this policy stands in for the model
only: its texts go through `collector.chat_template.parse_completion`, the local policy's own parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from collector.chat_template import parse_completion
from collector.policies.base import Completion
from collector.tasks.model import Task
from collector.types import Message, OpenAITool

Script = Callable[[Task, int], str]


class TextPolicy:
    """Plays `outputs[turn]` (or `script(task, turn)`) as the model's raw text; the last output repeats."""

    name = "local"

    def __init__(self, outputs: Sequence[str] = (), *, script: Script | None = None, model: str = "text") -> None:
        self.outputs = list(outputs)
        self.script = script
        self.model = model

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion:
        start = time.perf_counter()
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        text = self.script(task, turn) if self.script else self.outputs[min(turn, len(self.outputs) - 1)]
        parsed = parse_completion(text)
        return Completion(message=parsed.to_message(), raw_text=text, malformed=parsed.malformed,
                          prompt_tokens=1, completion_tokens=1, latency_s=time.perf_counter() - start)

    async def aclose(self) -> None:
        """Nothing to release."""
