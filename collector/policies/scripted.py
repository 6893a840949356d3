"""The scripted policy: expert programs that solve the built-in task families through the real tools."""

from __future__ import annotations

import time

from collector.errors import PolicyError
from collector.policies._expert_kit import read_episode
from collector.policies._experts import EXPERTS
from collector.policies.base import Completion
from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["ScriptedPolicy"]


class ScriptedPolicy:
    """Synthetic gold data: for each family (weather, files, search, code, schema) an expert program plans tool
    calls, reads the tool results in `messages`, and gives a concise final answer.

    The experts behave like a good agent: independent lookups go out in parallel in one turn, they make the
    task's `optimal_steps` tool calls, and they answer from what the tools returned (a tool error ends the episode
    with an answer that says so). They know the task's metadata (cities, paths, the reference solution), which is
    what makes them experts; every fact in an answer still comes through a real tool call.

    Example:
        >>> policy = ScriptedPolicy()
        >>> completion = await policy.complete(task_messages, session.tools, task=task)  # doctest: +SKIP
    """

    name = "scripted"

    def __init__(self, model: str = "expert") -> None:
        """Create the policy.

        Args:
            model: the label recorded as the episode's model.
        """
        self.model = model

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion:
        """The next assistant turn for `task` given the conversation so far.

        Args:
            messages: the episode's messages (the task's opening messages, then assistant and tool turns).
            tools: the OpenAI tools offered (names may be namespaced `server__tool`).
            task: the task being solved.

        Returns:
            An assistant message with `tool_calls` (arguments as JSON strings, ids unique in the episode), or a
            final answer in `content`.

        Raises:
            PolicyError: no expert exists for the task's family, or a tool it needs is not offered.
        """
        start = time.perf_counter()
        expert = EXPERTS.get(task.family)
        if expert is None:
            raise PolicyError(
                f"the scripted policy has no expert for family {task.family!r}; it solves: {', '.join(EXPERTS)}"
            )
        message = expert(read_episode(messages, tools, task))
        return Completion(message=message, latency_s=time.perf_counter() - start)

    async def aclose(self) -> None:
        """Nothing to release."""
