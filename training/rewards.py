"""TRL reward functions `f(completions, **kwargs) -> list[float | None]`, composable with weights.

Each function scores one aspect of a rollout on its own scale; the weights (TRL's `reward_weights`) turn them into the
project's default reward: success 10, efficiency up to 2, 0.5 per correct tool use, 1 for a fully valid format, and
for code a unit-test pass ratio with a penalty for crashing code. The component formulas are the collector's
(`collector.rewards`), so a GRPO reward means the same as a recorded episode's reward.

Inputs: `completions` are TRL conversational completions (lists of assistant and tool messages). Keyword columns of
a GRPO dataset row arrive as lists: `task` (the Task dict) and `tools` (the OpenAI tools offered). When the trainer
runs the MCP environment, `environments` holds one `MCPEnvironment` per completion: the verdict and the tool-call log
then come from the real servers. A reward that cannot be computed is logged, counted in `failures`, and returned as
None (TRL leaves that function out for that sample) instead of a silent 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector import rewards as components
from collector.tasks.model import VerifierSpec, VerifyContext
from collector.types import Verdict
from training.datasets.filters import call_problems
from training.errors import RewardError

__all__ = [
    "CRASH_PENALTY",
    "RewardWeights",
    "Rollout",
    "code_tests_reward",
    "efficiency_reward",
    "failures",
    "format_reward",
    "reward_functions",
    "success_reward",
    "summarize",
    "tool_use_reward",
    "total_reward",
]

logger = logging.getLogger(__name__)

CRASH_PENALTY = 1.0
"""Subtracted from the pass ratio (before weighting) when the code crashed, timed out or did not run."""

_UNVERIFIABLE_OFFLINE = ("file_state", "unit_tests")

failures: Counter[str] = Counter()
"""How many samples each reward function could not score (logged and returned as None)."""


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward functions (TRL `reward_weights`, in the order of `reward_functions`).

    Attributes:
        success: times the verifier's score in [0, 1].
        efficiency: times optimal_steps / calls made (1 at or under optimal), for passed rollouts.
        tool_use: per correct tool use (offered name, schema-valid arguments, no error), up to optimal_steps.
        format: for a fully valid format (every call well formed, a final text answer).
        code_tests: times the unit-test pass ratio minus CRASH_PENALTY when the code crashed (code tasks only).
    """

    success: float = components.SUCCESS_WEIGHT
    efficiency: float = components.EFFICIENCY_WEIGHT
    tool_use: float = components.TOOL_USE_WEIGHT
    format: float = components.FORMAT_WEIGHT
    code_tests: float = 2.0


class _State(Protocol):
    call_log: list[dict[str, Any]]

    def verdict(self, final_answer: str = "") -> Verdict: ...


class _Env(Protocol):
    """What reward functions use of an environment (`training.environment.MCPEnvironment`)."""

    state: _State


@dataclass
class Rollout:
    """What a reward function needs to know about one completion.

    Attributes:
        calls: every tool call, `{"name", "arguments" (dict, or the raw string when it was not JSON), "error"}`.
        malformed: calls the model wrote that could not be parsed as calls (raw `<tool_call>` text left in content)
            plus calls to unoffered tools or with schema-invalid arguments.
        final_answer: the last assistant text after the last tool call ("" when none).
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0
    final_answer: str = ""

    @property
    def ok_calls(self) -> int:
        return sum(1 for c in self.calls if not c["error"] and not c.get("invalid"))


def _is_error_result(content: Any) -> bool:
    text = str(content).lstrip()
    return text.startswith(("{'error'", '{"error"', "Error:"))


def summarize(completion: Sequence[dict[str, Any]] | str, tools: Sequence[dict[str, Any]] | None,
              environment: _Env | None = None) -> Rollout:
    """Read a completion: its calls (checked against the offered tools), malformed output and final answer.

    Args:
        completion: TRL conversational completion (assistant/tool messages) or plain text.
        tools: the OpenAI tools offered (None: names are not checked).
        environment: the rollout's MCP environment; its call log says which calls errored.

    Returns:
        The rollout summary.
    """
    if isinstance(completion, str):
        completion = [{"role": "assistant", "content": completion}]
    schemas = None
    if tools is not None:
        schemas = {}
        for tool in tools:
            fn = tool.get("function", tool)
            schemas[str(fn.get("name"))] = dict(fn.get("parameters") or {"type": "object"})
    rollout = Rollout()
    results: list[Any] = []
    for msg in completion:
        role = msg.get("role")
        content = msg.get("content") or ""
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if role == "assistant":
            if "<tool_call>" in content:
                rollout.malformed += content.count("<tool_call>")
            for call in msg.get("tool_calls") or []:
                fn = call.get("function", call)
                name = str(fn.get("name") or "")
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError:
                        pass
                problem = call_problems(name, args, schemas) if schemas is not None else None
                if problem:
                    rollout.malformed += 1
                rollout.calls.append({"name": name, "arguments": args, "error": False, "invalid": bool(problem)})
            rollout.final_answer = "" if msg.get("tool_calls") else str(content).strip()
        elif role == "tool":
            results.append(content)
    if environment is not None:
        log = environment.state.call_log
        for call, entry in zip(rollout.calls, log, strict=False):
            call["error"] = bool(entry.get("is_error"))
    else:
        for call, result in zip(rollout.calls, results, strict=False):
            call["error"] = _is_error_result(result)
    return rollout


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside a loop: run on a fresh one
        return pool.submit(asyncio.run, coro).result()


def _verdict(task: dict[str, Any], rollout: Rollout, environment: _Env | None) -> Verdict:
    if environment is not None:
        return environment.state.verdict(rollout.final_answer)
    from collector.verifiers import verify

    spec = VerifierSpec.model_validate(task["verifier"])
    if spec.type in _UNVERIFIABLE_OFFLINE:
        raise RewardError(
            f"the {spec.type} verifier needs the task's workspace; train with the MCP environment "
            "(environment_factory) to score these tasks"
        )
    calls = [{"name": c["name"].split("__", 1)[-1], "arguments": c["arguments"] if isinstance(c["arguments"], dict)
              else None} for c in rollout.calls]
    ctx = VerifyContext(final_answer=rollout.final_answer, files=None, tool_calls=calls)
    verdict: Verdict = _run(verify(spec, ctx))
    return verdict


def _per_sample(fn: Callable[..., float | None]) -> Callable[..., list[float | None]]:
    """Turn a one-sample scorer into a TRL reward function; a failing sample is logged, counted and scored None."""

    @functools.wraps(fn)
    def reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        tasks = kwargs.get("task") or [None] * n
        tools = kwargs.get("tools") or [None] * n
        envs = kwargs.get("environments") or [None] * n
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            try:
                if tasks[i] is None:
                    raise RewardError("no 'task' column: GRPO rows must carry the task (mcpgym dataset grpo)")
                rollout = summarize(completion, tools[i], envs[i])
                out.append(fn(tasks[i], rollout, envs[i]))
            except Exception as exc:  # noqa: BLE001 - a reward that cannot be computed is marked, never a silent 0
                failures[fn.__name__] += 1
                logger.warning("reward %s could not score sample %d: %s: %s", fn.__name__, i, type(exc).__name__, exc)
                out.append(None)
        return out

    return reward


def _optimal(task: dict[str, Any]) -> int:
    return int(task.get("optimal_steps") or 1)


@_per_sample
def success_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """The verifier's score in [0, 1] (weight 10)."""
    return min(max(float(_verdict(task, rollout, env)["score"]), 0.0), 1.0)


@_per_sample
def efficiency_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """1 for a passed rollout with at most optimal_steps calls, optimal/calls above that, 0 when failed (weight 2)."""
    passed = bool(_verdict(task, rollout, env)["passed"])
    value = components.efficiency_reward(passed, len(rollout.calls), _optimal(task))
    return value / components.EFFICIENCY_WEIGHT


@_per_sample
def tool_use_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """Correct tool uses (offered tool, schema-valid arguments, no error), counted up to optimal_steps (weight 0.5)."""
    return components.tool_use_reward(rollout.ok_calls, _optimal(task)) / components.TOOL_USE_WEIGHT


@_per_sample
def format_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """1 when every call was well formed and the rollout ended with a final text answer (weight 1)."""
    return components.format_reward(rollout.malformed, bool(rollout.final_answer)) / components.FORMAT_WEIGHT


@_per_sample
def code_tests_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float | None:
    """Unit-test pass ratio minus CRASH_PENALTY when the code crashed or timed out; None for non-code tasks."""
    if (task.get("verifier") or {}).get("type") != "unit_tests":
        return None
    if env is None:
        raise RewardError("code_tests_reward runs the unit tests in the sandbox: it needs the MCP environment")
    details = env.state.verdict(rollout.final_answer).get("details") or {}
    total = int(details.get("tests_total") or 0)
    ratio = int(details.get("tests_passed") or 0) / total if total else 0.0
    crashed = bool(details.get("error")) or bool(details.get("timed_out")) or total == 0
    return ratio - (CRASH_PENALTY if crashed else 0.0)


def reward_functions(weights: RewardWeights | None = None, *, success: bool = True, code: bool = True
                     ) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """The reward functions and their weights, ready for `GRPOTrainer(reward_funcs=...)` and `GRPOConfig.reward_weights`.

    Args:
        weights: the weights (defaults: success 10, efficiency 2, tool use 0.5, format 1, code tests 2).
        success: include `success_reward` (leave it out when the MCP environment owns the success reward through
            its `get_reward`).
        code: include the code unit-test reward (needs the MCP environment with the exec server).
    """
    w = weights or RewardWeights()
    funcs: list[Callable[..., list[float | None]]] = [efficiency_reward, tool_use_reward, format_reward]
    values = [w.efficiency, w.tool_use, w.format]
    if success:
        funcs.insert(0, success_reward)
        values.insert(0, w.success)
    if code:
        funcs.append(code_tests_reward)
        values.append(w.code_tests)
    return funcs, values


def total_reward(completions: list[Any], weights: RewardWeights | None = None, **kwargs: Any) -> list[float]:
    """The weighted sum of every reward function per completion (a None component counts as 0 here).

    Args:
        completions: TRL completions.
        weights: the weights.
        **kwargs: the dataset columns (`task`, `tools`) and `environments`, as TRL passes them.
    """
    funcs, values = reward_functions(weights, code=bool(kwargs.get("environments")))
    columns = [f(completions, **kwargs) for f in funcs]
    return [sum(w * (col[i] or 0.0) for w, col in zip(values, columns, strict=True)) for i in range(len(completions))]
