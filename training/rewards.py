"""TRL reward functions `f(completions, **kwargs) -> list[float | None]`, composable with weights.

Each function returns one component of the episode core's reward (`collector.episode`, formulas in
`collector.rewards`) divided by its default weight, so that with the default weights (TRL's `reward_weights`) a
GRPO reward is, component by component, the reward collection records for the same completion: success 10 x the
verdict, efficiency up to 2, 0.5 per correct tool call up to optimal_steps, 1 for a fully valid format, and for
code tasks the mean over tests of 1 / 0 / -0.5.

Inputs: `completions` are TRL conversational completions (lists of assistant and tool messages). Keyword columns of
a GRPO dataset row arrive as lists: `task` (the Task dict) and `tools` (the OpenAI tools offered). When the trainer
runs the MCP environment, `environments` holds one `MCPEnvironment` per completion: the calls' outcomes, the
verdict and the unit-test report then come from the real servers. A completion is read by
`collector.episode.read_completion` (the same call parsing, namespace split and schema check as collection). A
reward that cannot be computed is logged, counted in `failures`, and returned as None (TRL leaves that function out
for that sample) instead of a silent 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector import rewards as components
from collector.episode import CallRecord, Judgement, ToolIndex, judge, read_completion
from training.errors import RewardError

__all__ = [
    "RewardWeights",
    "Rollout",
    "UntrustedTestsError",
    "code_tests_reward",
    "efficiency_reward",
    "failures",
    "format_reward",
    "make_code_tests_reward",
    "reward_functions",
    "success_reward",
    "summarize",
    "tool_use_reward",
    "total_reward",
]

logger = logging.getLogger(__name__)

_UNVERIFIABLE_OFFLINE = ("file_state", "unit_tests")

failures: Counter[str] = Counter()
"""How many samples each reward function could not score (logged and returned as None)."""


class UntrustedTestsError(RewardError):
    """A unit-test report does not say the tests ran in an isolating sandbox, and the user did not allow that."""


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward functions (TRL `reward_weights`, in the order of `reward_functions`).

    The defaults are the episode core's weights, so the weighted sum is the reward collection records.

    Attributes:
        success: times 1 when the verifier passed the rollout.
        efficiency: times `max(0, 1 - (calls - optimal) / optimal)` (clamped to [0, 1]), for passed rollouts.
        tool_use: per correct tool call (offered tool, schema-valid arguments, no error), up to optimal_steps.
        format: for a fully valid format (every call well formed, a final text answer).
        code_tests: times the mean over tests of 1 (passed), 0 (failed assertion), -0.5 (other error or crash).
    """

    success: float = components.SUCCESS_WEIGHT
    efficiency: float = components.EFFICIENCY_WEIGHT
    tool_use: float = components.TOOL_USE_WEIGHT
    format: float = components.FORMAT_WEIGHT
    code_tests: float = components.CODE_WEIGHT


class _State(Protocol):
    calls: list[CallRecord]
    index: ToolIndex

    def judge(self, final_answer: str = "", calls: Sequence[CallRecord] | None = None) -> Judgement: ...


class _Env(Protocol):
    """What reward functions use of an environment (`training.environment.MCPEnvironment`)."""

    state: _State


@dataclass
class Rollout:
    """A completion read by the episode core's rules.

    Attributes:
        calls: every call, in order, with its error kind (malformed, the environment's outcome, or "not_run").
        final_answer: the last assistant text, when the completion ended on a turn without calls ("" otherwise).
    """

    calls: list[CallRecord] = field(default_factory=list)
    final_answer: str = ""

    @property
    def ok_calls(self) -> int:
        """Correct calls: well formed and ran without error."""
        return sum(1 for c in self.calls if c.ok)

    @property
    def malformed(self) -> int:
        """Calls the model wrote wrongly."""
        return sum(1 for c in self.calls if c.malformed)


def _index(task: dict[str, Any] | None, tools: Sequence[dict[str, Any]] | None, environment: _Env | None
           ) -> ToolIndex:
    if environment is not None:
        return environment.state.index
    return ToolIndex.from_openai(list(tools or []), list((task or {}).get("servers") or []))


def summarize(completion: Sequence[dict[str, Any]] | str, tools: Sequence[dict[str, Any]] | None,
              environment: _Env | None = None, task: dict[str, Any] | None = None) -> Rollout:
    """Read a completion: its calls (checked against the offered tools, once each) and its final answer.

    A well-formed call's outcome comes from the rollout's environment, which ran it (the environment's calls are
    matched in order, by name, to the completion's calls of offered tools); without an environment, from the tool
    message that answered it (an error result starts with "Error", in collection as in GRPO). A well-formed call
    that never ran (e.g. in a turn the trainer could not parse, which ends its rollout) is "not_run": neither
    correct nor malformed.

    Args:
        completion: TRL conversational completion (assistant/tool messages) or plain text.
        tools: the OpenAI tools offered (the row's `tools`; the environment's live tools when it is given).
        environment: the rollout's MCP environment.
        task: the task (its `servers` decide the namespace split when there is no environment).

    Returns:
        The rollout.
    """
    index = _index(task, tools, environment)
    transcript = read_completion(completion, index)
    ran = list(environment.state.calls) if environment is not None else None
    for call in transcript.calls:
        if ran is not None:
            # The trainer hands the environment every structured call of an offered tool (malformed ones included);
            # calls read from left-over text never reached it, unless they were answered (a replayed episode).
            sent = index.get(call.name) is not None and not (call.from_text and call.malformed)
            if sent and ran and ran[0].name == call.name:
                done = ran.pop(0)
                if not call.malformed:
                    call.error_kind, call.message, call.duration_s = done.error_kind, done.message, done.duration_s
            elif not call.malformed:
                call.error_kind = "not_run"
        elif call.malformed:
            continue
        elif call.message is None:
            call.error_kind = "not_run"
        elif str(call.message).lstrip().startswith(("Error", "{'error'", '{"error"')):
            call.error_kind = "tool_error"
    return Rollout(transcript.calls, transcript.final_answer)


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside a loop: run on a fresh one
        return pool.submit(asyncio.run, coro).result()


def _judgement(task: dict[str, Any], rollout: Rollout, environment: _Env | None) -> Judgement:
    if environment is not None:
        return environment.state.judge(rollout.final_answer, rollout.calls)
    kind = (task.get("verifier") or {}).get("type")
    if kind in _UNVERIFIABLE_OFFLINE:
        raise RewardError(
            f"the {kind} verifier needs the task's workspace; train with the MCP environment "
            "(environment_factory) to score these tasks"
        )
    judgement: Judgement = _run(judge(task, rollout.calls, rollout.final_answer))
    return judgement


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
                rollout = summarize(completion, tools[i], envs[i], tasks[i])
                out.append(fn(tasks[i], rollout, envs[i]))
            except UntrustedTestsError:
                raise
            except Exception as exc:  # noqa: BLE001 - a reward that cannot be computed is marked, never a silent 0
                failures[fn.__name__] += 1
                logger.warning("reward %s could not score sample %d: %s: %s", fn.__name__, i, type(exc).__name__, exc)
                out.append(None)
        return out

    return reward


def _optimal(task: dict[str, Any]) -> int:
    return int(task.get("optimal_steps") or 0)


@_per_sample
def success_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """1 when the verifier passed the rollout, else 0 (weight 10)."""
    return _judgement(task, rollout, env).components["success"] / components.SUCCESS_WEIGHT


@_per_sample
def efficiency_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """`max(0, 1 - (calls - optimal) / optimal)` clamped to [0, 1] for a passed rollout, 0 when failed (weight 2)."""
    return _judgement(task, rollout, env).components["efficiency"] / components.EFFICIENCY_WEIGHT


@_per_sample
def tool_use_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """Correct tool calls (offered tool, schema-valid arguments, no error), counted up to optimal_steps (weight 0.5)."""
    return components.tool_use_reward(rollout.ok_calls, _optimal(task)) / components.TOOL_USE_WEIGHT


@_per_sample
def format_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float:
    """1 when every call was well formed and the rollout ended with a final text answer (weight 1)."""
    has_answer = bool(rollout.final_answer.strip())
    return components.format_reward(rollout.malformed, has_answer) / components.FORMAT_WEIGHT


def make_code_tests_reward(allow_untrusted: bool = False) -> Callable[..., list[float | None]]:
    """The code reward function: the mean over tests of 1 (passed), 0 (failed assertion), -0.5 (anything else
    raised; every test when the whole run crashed or timed out); None for non-code tasks.

    Args:
        allow_untrusted: score reports that do not say the tests ran in an isolating sandbox (`trusted` false or
            missing). Without it such a report stops training with `UntrustedTestsError`: a reward from code run
            without isolation is not evidence the code works on its own.
    """

    def code_tests_reward(task: dict[str, Any], rollout: Rollout, env: _Env | None) -> float | None:
        if (task.get("verifier") or {}).get("type") != "unit_tests":
            return None
        if env is None:
            raise RewardError("code_tests_reward runs the unit tests in the sandbox: it needs the MCP environment")
        judgement = env.state.judge(rollout.final_answer, rollout.calls)
        if judgement.test_report is not None and not judgement.tests_trusted and not allow_untrusted:
            raise UntrustedTestsError(
                f"the unit tests of task {task.get('id')!r} ran in a sandbox that does not report itself as "
                "isolating (run_tests 'trusted' is false or missing), so their result is not scored. Run the exec "
                "server with an isolating sandbox, or allow it explicitly: `mcpgym train grpo "
                "--allow-untrusted-tests` (GRPORunConfig.allow_untrusted_tests)")
        return judgement.components.get("code", components.CODE_CRASH) / components.CODE_WEIGHT

    code_tests_reward.__doc__ = make_code_tests_reward.__doc__
    return _per_sample(code_tests_reward)


code_tests_reward = make_code_tests_reward()
"""The code reward function that refuses untrusted unit-test reports (see `make_code_tests_reward`)."""


def reward_functions(weights: RewardWeights | None = None, *, success: bool = True, code: bool = True,
                     allow_untrusted_tests: bool = False
                     ) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """The reward functions and their weights, ready for `GRPOTrainer(reward_funcs=...)` and `GRPOConfig.reward_weights`.

    Args:
        weights: the weights (defaults: success 10, efficiency 2, tool use 0.5, format 1, code tests 1).
        success: include `success_reward` (leave it out when the MCP environment owns the success reward through
            its `get_reward`).
        code: include the code unit-test reward (needs the MCP environment with the exec server).
        allow_untrusted_tests: let the code reward score unit-test reports that are not marked trusted.
    """
    w = weights or RewardWeights()
    funcs: list[Callable[..., list[float | None]]] = [efficiency_reward, tool_use_reward, format_reward]
    values = [w.efficiency, w.tool_use, w.format]
    if success:
        funcs.insert(0, success_reward)
        values.insert(0, w.success)
    if code:
        funcs.append(make_code_tests_reward(allow_untrusted_tests) if allow_untrusted_tests else code_tests_reward)
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
