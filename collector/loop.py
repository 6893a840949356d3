"""The episode loop: a policy and a tool session take turns until a final answer, then the verifier and rewards."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from collector.episode import CallRecord, MessageRecord, ToolIndex, judge, parse_call, tool_message
from collector.errors import CollectorError, PolicyError, ToolSessionError
from collector.policies.base import Completion, Policy
from collector.pool import ToolSession
from collector.tasks.model import Task
from collector.types import Message, Verdict
from collector.workspace import EXEC_SERVER, FILES_SERVER

__all__ = ["EpisodeResult", "LoopConfig", "run_episode"]


@dataclass(frozen=True)
class LoopConfig:
    """Limits of one episode.

    Attributes:
        max_turns: assistant turns before the episode ends without a final answer.
        step_timeout_s: timeout of one policy step; exceeding it fails the episode (`policy_timeout`).
    """

    max_turns: int = 10
    step_timeout_s: float = 300.0


@dataclass
class EpisodeResult:
    """Everything recorded about one episode (docs/architecture.md, data contract).

    `records` are the episode's messages (OpenAI messages, with what is recorded beside each one) and `calls` its
    tool calls, each read once by `collector.episode.parse_call`.
    """

    status: str = "done"  # done | failed
    records: list[MessageRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)
    final_answer: str = ""
    verdict: Verdict | None = None
    reward_components: dict[str, float] | None = None
    reward: float | None = None
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    malformed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time_s: float = 0.0
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def opening(cls, messages: list[dict[str, Any]], tools: list[Any] | None = None) -> EpisodeResult:
        """An episode that starts with a task's opening messages."""
        return cls(records=[MessageRecord(dict(m)) for m in messages], tools=list(tools or []))

    @property
    def messages(self) -> list[Message]:
        """The episode's OpenAI messages, exactly as the policy saw and wrote them."""
        return [r.message for r in self.records]  # type: ignore[misc]

    @property
    def tool_call_rows(self) -> list[dict[str, Any]]:
        """The calls as rows of the store's `tool_calls` table."""
        return [c.store_row() for c in self.calls]

    def store_messages(self) -> list[dict[str, Any]]:
        """The messages in the form `Store.finish_episode` takes (annotations in their own columns)."""
        return [r.store_row() for r in self.records]

    def fail(self, error_type: str, message: str) -> None:
        """Mark the episode failed (a failed episode is data, not a crash)."""
        self.status = "failed"
        self.error_type = error_type
        self.error_message = message[:4000]

    def store_fields(self) -> dict[str, Any]:
        """The episode row's columns for `Store.finish_episode`."""
        verdict = self.verdict
        return {
            "status": self.status,
            "tools": self.tools,
            "final_answer": self.final_answer,
            "passed": None if verdict is None else int(bool(verdict["passed"])),
            "score": None if verdict is None else float(verdict["score"]),
            "reward": self.reward,
            "reward_components": self.reward_components,
            "verdict_details": None if verdict is None else verdict.get("details"),
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "malformed_calls": self.malformed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_time_s": round(self.wall_time_s, 6),
            "error_type": self.error_type,
            "error_message": self.error_message,
        }


async def _policy_step(policy: Policy, result: EpisodeResult, session: ToolSession, task: Task,
                       timeout: float) -> Completion:
    async with asyncio.timeout(timeout):  # no extra task (wait_for would add a loop turn per step)
        return await policy.complete(result.messages, session.tools, task=task)


def _read_calls(completion: Completion, assistant: dict[str, Any], index: ToolIndex, turn: int) -> list[CallRecord]:
    """Read the turn's calls once each (a block the text parser could not read keeps the parser's kind)."""
    parse_errors = {int(m["index"]): str(m.get("kind") or "invalid_json")
                    for m in completion.malformed if isinstance(m.get("index"), int)}
    calls = []
    for i, call in enumerate(assistant["tool_calls"]):
        call.setdefault("id", f"call_{turn}_{i}")
        call.setdefault("type", "function")
        fn = call.get("function") or {}
        calls.append(parse_call(str(fn.get("name") or ""), fn.get("arguments", ""), index, call_id=str(call["id"]),
                                parse_error=parse_errors.get(i), turn=turn))
    return calls


async def _execute(session: ToolSession, call: CallRecord) -> None:
    """Run one well-formed call; a malformed one already holds the message the model reads."""
    if call.malformed or call.server is None or call.arguments is None:
        return
    out = await session.call_tool(call.server, call.tool, call.arguments)
    call.message = tool_message(out.text, out.is_error)
    call.error_kind = out.error_kind if out.error_kind is not None or not out.is_error else "tool_error"
    call.duration_s = out.duration_s


async def _run_turn(session: ToolSession, result: EpisodeResult, calls: list[CallRecord]) -> None:
    """Run the turn's calls concurrently and append their tool messages (in call order)."""
    if len(calls) == 1:
        await _execute(session, calls[0])
    else:
        await asyncio.gather(*(_execute(session, c) for c in calls))
    for call in calls:
        result.calls.append(call)
        result.tool_calls += 1
        result.tool_errors += int(call.is_error)
        result.malformed_calls += int(call.malformed)
        result.records.append(MessageRecord(
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": call.message or ""}))


async def _judge(task: Task, session: ToolSession, result: EpisodeResult) -> None:
    files = None
    needs_files = task.verifier.type in ("file_state", "mutation_score") or bool(task.verifier.solution_path)
    if needs_files and FILES_SERVER in session.servers:
        files = await session.snapshot_files()
    run_tests = session.run_tests if EXEC_SERVER in session.servers else None
    run_python = session.run_python if EXEC_SERVER in session.servers else None
    judgement = await judge(task, result.calls, result.final_answer, files=files, run_tests=run_tests,
                            run_python=run_python)
    result.verdict = judgement.verdict
    result.reward_components = judgement.components
    result.reward = judgement.reward


async def run_episode(task: Task, policy: Policy, session: ToolSession, *, config: LoopConfig | None = None
                      ) -> EpisodeResult:
    """Run one episode to its end; never raises for the episode's own failures (they are recorded).

    Args:
        task: the task (its messages open the episode; its setup files are written first).
        policy: produces assistant turns.
        session: the episode's tool session (fresh workspace).
        config: turn and timeout limits.

    Returns:
        The episode: message records (OpenAI messages, malformed turns marked beside them), call records (each
        call read once; a malformed call is counted once and never sent to a server), verdict, rewards, metrics,
        and status `done` or `failed` with an error type and message.
    """
    cfg = config or LoopConfig()
    start = time.perf_counter()
    result = EpisodeResult.opening(task.messages, session.tools)
    index = ToolIndex(session.refs.values(), session.servers)
    try:
        await session.setup_workspace(task.setup_files)
        for turn in range(cfg.max_turns):
            try:
                completion = await _policy_step(policy, result, session, task, cfg.step_timeout_s)
            except TimeoutError:
                result.fail("policy_timeout", f"the policy gave no answer within {cfg.step_timeout_s:g}s")
                break
            except PolicyError as exc:
                result.fail("policy_error", str(exc))
                break
            except Exception as exc:  # noqa: BLE001 - a policy bug is data about this episode, not a crash
                result.fail("policy_error", f"{type(exc).__name__}: {exc}")
                break
            result.turns += 1
            result.prompt_tokens += completion.prompt_tokens
            result.completion_tokens += completion.completion_tokens
            assistant: dict[str, Any] = {"role": "assistant", **completion.message}
            record = MessageRecord(assistant, latency_s=completion.latency_s,
                                   tokens=completion.tokens.record() if completion.tokens is not None else None)
            result.records.append(record)
            if not assistant.get("tool_calls"):
                result.final_answer = str(assistant.get("content") or "")
                break
            calls = _read_calls(completion, assistant, index, turn)
            record.malformed = any(c.malformed for c in calls)
            await _run_turn(session, result, calls)
        else:
            result.error_type = "max_turns"
            result.error_message = f"no final answer after {cfg.max_turns} turns"
        if result.status != "failed":
            await _judge(task, session, result)
    except ToolSessionError as exc:
        result.fail("server_error", str(exc))
    except CollectorError as exc:
        result.fail(type(exc).__name__, str(exc))
    result.wall_time_s = time.perf_counter() - start
    return result
