"""The episode loop: a policy and a tool session take turns until a final answer, then the verifier and rewards."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from collector.errors import CollectorError, PolicyError, ToolSessionError
from collector.policies.base import Completion, Policy
from collector.pool import ToolSession
from collector.rewards import reward_components, total_reward
from collector.tasks.model import Task, VerifyContext
from collector.tools import NAMESPACE_SEP, ToolResult
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
    """Everything recorded about one episode (see DESIGN.md, data contract 3)."""

    status: str = "done"  # done | failed
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_call_rows: list[dict[str, Any]] = field(default_factory=list)
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


def _plain_name(session: ToolSession, name: str) -> str:
    ref = session.resolve(name)
    if ref is not None:
        return ref.tool
    return name.split(NAMESPACE_SEP, 1)[1] if NAMESPACE_SEP in name else name


def _call_args(arguments: str) -> dict[str, Any] | None:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


async def _policy_step(policy: Policy, messages: list[dict[str, Any]], session: ToolSession, task: Task,
                       timeout: float) -> Completion:
    clean: list[Message] = [
        {k: v for k, v in m.items() if k not in ("malformed", "latency_s")} for m in messages  # type: ignore[misc]
    ]
    async with asyncio.timeout(timeout):  # no extra task (wait_for would add a loop turn per step)
        return await policy.complete(clean, session.tools, task=task)


async def _run_turn(session: ToolSession, result: EpisodeResult, assistant: dict[str, Any], turn: int) -> None:
    """Run the turn's tool calls concurrently and append their tool messages (in call order)."""
    calls = assistant["tool_calls"]
    for i, call in enumerate(calls):
        call.setdefault("id", f"call_{turn}_{i}")
        call.setdefault("type", "function")
    pending = [session.call(str(c["function"].get("name", "")), c["function"].get("arguments", "")) for c in calls]
    outcomes: list[ToolResult] = [await pending[0]] if len(pending) == 1 else list(await asyncio.gather(*pending))
    for call, out in zip(calls, outcomes, strict=True):
        name = str(call["function"].get("name", ""))
        result.tool_calls += 1
        result.tool_errors += int(out.is_error)
        if out.malformed:
            result.malformed_calls += 1
            assistant["malformed"] = True
        result.messages.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": out.text})
        result.tool_call_rows.append({
            "call_id": call["id"], "turn": turn, "server": out.server or None, "tool": out.tool or name,
            "arguments": call["function"].get("arguments"), "result": out.text, "is_error": int(out.is_error),
            "malformed": int(out.malformed), "error_kind": out.error_kind, "duration_s": round(out.duration_s, 6),
        })


async def _judge(task: Task, session: ToolSession, result: EpisodeResult, ok_calls: int) -> None:
    from collector.verifiers import verify

    files = None
    if task.verifier.type == "file_state" and FILES_SERVER in session.servers:
        files = await session.snapshot_files()
    calls = [
        {"name": r["tool"] if r["server"] else _plain_name(session, r["tool"]),
         "arguments": _call_args(r["arguments"] or "")}
        for r in result.tool_call_rows
    ]
    ctx = VerifyContext(final_answer=result.final_answer, files=files, tool_calls=calls,
                        run_tests=session.run_tests if EXEC_SERVER in session.servers else None)
    verdict = await verify(task.verifier, ctx)
    result.verdict = verdict
    result.reward_components = reward_components(
        score=float(verdict["score"]), passed=bool(verdict["passed"]), tool_calls=result.tool_calls,
        ok_tool_calls=ok_calls, malformed_calls=result.malformed_calls,
        has_final_answer=bool(result.final_answer.strip()), optimal_steps=task.optimal_steps,
    )
    result.reward = total_reward(result.reward_components)


async def run_episode(task: Task, policy: Policy, session: ToolSession, *, config: LoopConfig | None = None
                      ) -> EpisodeResult:
    """Run one episode to its end; never raises for the episode's own failures (they are recorded).

    Args:
        task: the task (its messages open the episode; its setup files are written first).
        policy: produces assistant turns.
        session: the episode's tool session (fresh workspace).
        config: turn and timeout limits.

    Returns:
        The episode: messages (OpenAI format, malformed turns marked), tool-call rows, verdict, rewards, metrics,
        and status `done` or `failed` with an error type and message.
    """
    cfg = config or LoopConfig()
    start = time.perf_counter()
    result = EpisodeResult(messages=[dict(m) for m in task.messages], tools=list(session.tools))
    try:
        await session.setup_workspace(task.setup_files)
        for turn in range(cfg.max_turns):
            try:
                completion = await _policy_step(policy, result.messages, session, task, cfg.step_timeout_s)
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
            assistant["latency_s"] = round(completion.latency_s, 6)
            if completion.malformed:
                assistant["malformed"] = True
                result.malformed_calls += len(completion.malformed)
            result.messages.append(assistant)
            if not assistant.get("tool_calls"):
                result.final_answer = str(assistant.get("content") or "")
                break
            await _run_turn(session, result, assistant, turn)
        else:
            result.error_type = "max_turns"
            result.error_message = f"no final answer after {cfg.max_turns} turns"
        if result.status != "failed":
            ok_calls = sum(1 for r in result.tool_call_rows if not r["is_error"])
            await _judge(task, session, result, ok_calls)
    except ToolSessionError as exc:
        result.fail("server_error", str(exc))
    except CollectorError as exc:
        result.fail(type(exc).__name__, str(exc))
    result.wall_time_s = time.perf_counter() - start
    return result
