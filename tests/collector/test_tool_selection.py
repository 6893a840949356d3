"""The tool-selection family: generation, the tool_use verifier, the expert through the real servers, and the policies
that must fail (call everything, call on no-tool tasks, hedge, skip the call and guess)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from collector.errors import VerifierError
from collector.loop import EpisodeResult, LoopConfig, run_episode
from collector.policies.base import Completion
from collector.policies.scripted import ScriptedPolicy
from collector.pool import ToolPool
from collector.tasks import tool_selection
from collector.tasks._schema_sample import SchemaSampleError, sample_arguments
from collector.tasks.model import Task, VerifierSpec, VerifyContext
from collector.tasks.registry import load_tasks
from collector.types import Message, OpenAITool
from collector.verifiers import validate_spec, verify

KINDS = {"select", "no_tool", "sequential", "parallel", "recover"}


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return tool_selection.generate(seed=0)


def test_generation_is_deterministic_with_splits_and_a_quarter_without_tools(tasks: list[Task]) -> None:
    assert [t.model_dump() for t in tasks] == [t.model_dump() for t in tool_selection.generate(seed=0)]
    assert len(tasks) == 240 and len({t.id for t in tasks}) == 240
    kinds = Counter(t.metadata["kind"] for t in tasks)
    assert set(kinds) == KINDS
    assert kinds["no_tool"] / len(tasks) == tool_selection.NO_TOOL_SHARE == 0.25
    assert {t.metadata["sub"] for t in tasks if t.metadata["kind"] == "no_tool"} == {"from_context", "unsupported"}
    splits = Counter(t.split for t in tasks)
    assert 0.1 < splits["test"] / len(tasks) < 0.3
    for task in tasks:
        validate_spec(task.verifier)
        assert task.verifier.type == "tool_use"
        assert len(task.servers) >= 2  # several servers' tools are offered, always
        assert task.optimal_steps == len([c for c in task.verifier.calls or [] if not c.get("optional")]) + (
            1 if task.metadata["kind"] == "recover" else 0
        )
    loaded = load_tasks(["tool-selection"], split="test", seed=0)
    assert loaded and {t.split for t in loaded} == {"test"} and {t.family for t in loaded} == {"tool-selection"}


def _spec(calls: list[dict[str, Any]], *, ordered: bool = False, answer: str | None = None) -> VerifierSpec:
    answer_spec = None if answer is None else VerifierSpec(type="regex", pattern=answer)
    return VerifierSpec(type="tool_use", calls=calls, ordered=ordered, answer=answer_spec)


async def _judge(spec: VerifierSpec, calls: list[tuple[str, dict[str, Any] | None]], answer: str = "") -> bool:
    ctx = VerifyContext(final_answer=answer, tool_calls=[{"name": n, "arguments": a} for n, a in calls])
    return bool((await verify(spec, ctx))["passed"])


async def test_tool_use_verifier_rules() -> None:
    lookup = {"name": "get_air_quality", "arguments": {}, "accept": {"location": ["Oslo", "Oslo, Norway"]}}
    spec = _spec([lookup], answer=r"\A42\Z")
    assert await _judge(spec, [("get_air_quality", {"location": "oslo, norway "})], "42")
    assert await _judge(spec, [("almanac__get_air_quality", {"location": "Oslo"})], "42")  # namespaced name
    assert not await _judge(spec, [("get_air_quality", {"location": "Lima"})], "42")  # wrong argument
    assert not await _judge(spec, [("get_air_quality", {"location": "Oslo", "x": 1})], "42")  # unknown argument
    assert not await _judge(spec, [("get_air_quality", None)], "42")  # arguments that were not JSON
    assert not await _judge(spec, [("get_air_quality", {"location": "Oslo"})] * 2, "42")  # one call too many
    assert not await _judge(spec, [("get_air_quality", {"location": "Oslo"})], "42 or 40")  # hedged answer
    assert not await _judge(spec, [], "42")  # the answer without the call
    defaults = _spec(
        [
            {
                "name": "get_current_weather",
                "arguments": {"location": "Oslo"},
                "defaults": {"units": "metric"},
                "free": ["days"],
            }
        ]
    )
    assert await _judge(defaults, [("get_current_weather", {"location": "Oslo", "units": "metric", "days": 3})])
    assert not await _judge(defaults, [("get_current_weather", {"location": "Oslo", "units": "imperial"})])
    no_call = _spec([], answer=r"\ASorry, I can't")
    assert await _judge(no_call, [], "Sorry, I can't do that.")
    assert not await _judge(no_call, [("get_sun_times", {"location": "Oslo"})], "Sorry, I can't do that.")
    typo = {"name": "w", "arguments": {"location": "Pariss"}, "optional": True}
    recover = _spec([typo, {"name": "w", "arguments": {"location": "Paris"}}], ordered=True)
    assert await _judge(recover, [("w", {"location": "Pariss"}), ("w", {"location": "Paris"})])
    assert await _judge(recover, [("w", {"location": "Paris"})])  # right at once: also fine
    assert not await _judge(recover, [("w", {"location": "Paris"}), ("w", {"location": "Pariss"})])
    assert not await _judge(recover, [("w", {"location": "Pariss"})])
    pair = _spec([{"name": "a", "arguments": {}, "together": True}, {"name": "b", "arguments": {}, "together": True}])
    one_turn = VerifyContext(
        tool_calls=[{"name": "b", "arguments": {}, "turn": 0}, {"name": "a", "arguments": {}, "turn": 0}]
    )
    two_turns = VerifyContext(
        tool_calls=[{"name": "a", "arguments": {}, "turn": 0}, {"name": "b", "arguments": {}, "turn": 1}]
    )
    assert (await verify(pair, one_turn))["passed"] and not (await verify(pair, two_turns))["passed"]
    assert await _judge(pair, [("a", {}), ("b", {})])  # calls without turns (a JSONL context): not checked
    for bad, words in (
        (VerifierSpec(type="tool_use"), "'calls' is required"),
        (_spec([{"name": "x", "argumentz": {}}]), "unknown keys ['argumentz']"),
        (_spec([{"name": "x", "accept": {"a": []}}]), "non-empty lists"),
    ):
        with pytest.raises(VerifierError, match=words.replace("[", r"\[").replace("]", r"\]")):
            validate_spec(bad)


# through the real servers -----------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ToolPool]:
    data = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.setenv("MCPGYM_DATA_DIR", str(data))  # the gateway subprocess builds its search index here
    try:
        async with ToolPool() as p:
            yield p
    finally:
        mp.undo()


def _sample(tasks: list[Task], per_kind: int) -> list[Task]:
    picked: dict[tuple[str, str], list[Task]] = {}
    for task in tasks:
        group = picked.setdefault((task.metadata["kind"], str(task.metadata.get("sub"))), [])
        if len(group) < per_kind:
            group.append(task)
    return [t for group in picked.values() for t in group]


async def _play(pool: ToolPool, task: Task, policy: Any) -> EpisodeResult:
    async with pool.session(task.servers) as session:
        return await run_episode(task, policy, session, config=LoopConfig(max_turns=6, step_timeout_s=60))


@pytest.mark.asyncio(loop_scope="module")
async def test_expert_passes_every_kind_through_the_real_servers(pool: ToolPool, tasks: list[Task]) -> None:
    for task in _sample(tasks, per_kind=2):
        result = await _play(pool, task, ScriptedPolicy())
        kind = task.metadata["kind"]
        assert result.status == "done", (task.id, result.error_message)
        assert result.verdict is not None and result.verdict["passed"], (task.id, result.final_answer, result.verdict)
        assert result.tool_calls == task.optimal_steps
        assert result.tool_errors == (1 if kind == "recover" else 0)
        turns = [m for m in result.messages if m.get("role") == "assistant"]
        if kind == "parallel":  # the two independent calls go out in one turn
            assert len(turns) == 2 and len(turns[0]["tool_calls"]) == 2
        if kind in ("sequential", "recover"):  # the second call needs the first's result or error
            assert len(turns) == 3 and all(len(t["tool_calls"]) == 1 for t in turns[:2])
        if kind == "recover":
            first, second = (json.loads(t["tool_calls"][0]["function"]["arguments"]) for t in turns[:2])
            assert first["location"] == task.metadata["typo"] and first["location"] in task.messages[-1]["content"]
            error = next(m["content"] for m in result.messages if m.get("role") == "tool")
            assert second["location"] in error  # corrected from what the error said
        if kind == "no_tool":
            assert len(turns) == 1 and not turns[0].get("tool_calls")


class _Attack:
    """A policy that behaves like the expert except for one cheat (what `cheat` returns replaces its turn)."""

    name = "attack"
    model = "attack"

    def __init__(self) -> None:
        self.expert = ScriptedPolicy()
        self.rng = random.Random(0)

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion:
        honest = await self.expert.complete(messages, tools, task=task)
        return Completion(message=self.cheat(honest.message, messages, tools, task))

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        raise NotImplementedError

    def call_all(self, tools: list[OpenAITool], step: int) -> dict[str, Any]:
        calls = []
        for i, tool in enumerate(tools):
            try:
                args = sample_arguments(tool["function"]["parameters"], self.rng, optional_rate=0.0)
            except SchemaSampleError:
                args = {}
            calls.append(
                {
                    "id": f"all_{step}_{i}",
                    "type": "function",
                    "function": {"name": tool["function"]["name"], "arguments": json.dumps(args)},
                }
            )
        return {"role": "assistant", "content": None, "tool_calls": calls}


def _turn(messages: list[Message]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


class CallsEverything(_Attack):
    """First turn: every offered tool at once; then the expert's own correct path."""

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        if _turn(messages) == 0:
            spray = self.call_all(tools, 0)
            spray["tool_calls"] = (honest.get("tool_calls") or []) + spray["tool_calls"]
            return spray
        return honest


class CallsWhenNothingFits(_Attack):
    """On no-tool tasks, looks something up first (then gives the right answer)."""

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        if _turn(messages) == 0:
            name = next(t["function"]["name"] for t in tools if t["function"]["name"].endswith("get_current_weather"))
            call = {"id": "peek", "type": "function", "function": {"name": name, "arguments": '{"location": "Oslo"}'}}
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return honest


class Hedges(_Attack):
    """The expert's calls, then an answer that names the right value and another candidate."""

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        if honest.get("tool_calls"):
            return honest
        text = str(honest.get("content") or "")
        if task.metadata.get("sub") == "unsupported":
            return {"role": "assistant", "content": "It might be about 20, or sorry, I can't tell."}
        return {"role": "assistant", "content": f"{text} or maybe {text}1"}


def _stated(task: Task) -> str:
    """The task's expected value(s) in its declared form, as a lucky or well-informed policy would state them."""
    value = task.metadata.get("answer")
    values = value if isinstance(value, list) else [value]
    units = task.metadata.get("units") or [""] * len(values)
    return "; ".join(f"{v} {u}".strip() if u in ("°C", "km/h") else str(v) for v, u in zip(values, units, strict=True))


class OneCallPerTurn(_Attack):
    """The parallel tasks' two independent calls, one per turn, then the right answer."""

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        turn = _turn(messages)
        if turn < 2:
            step = task.metadata["plan"][turn]
            name = next(t["function"]["name"] for t in tools if t["function"]["name"].endswith("__" + step["tool"]))
            call = {
                "id": f"one_{turn}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(step["arguments"])},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": f"Answer: {_stated(task)}"}


class SkipsAndGuesses(_Attack):
    """No call at all: answers at once with the right value (known from the task), as a lucky guess would."""

    def cheat(
        self, honest: dict[str, Any], messages: list[Message], tools: list[OpenAITool], task: Task
    ) -> dict[str, Any]:
        return {"role": "assistant", "content": _stated(task)}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("attack", "kinds"),
    [
        (CallsEverything, KINDS - {"no_tool"}),
        (CallsWhenNothingFits, {"no_tool"}),
        (Hedges, KINDS),
        (SkipsAndGuesses, KINDS - {"no_tool"}),
        (OneCallPerTurn, {"parallel"}),
    ],
)
async def test_cheating_policies_fail(
    pool: ToolPool, tasks: list[Task], attack: type[_Attack], kinds: set[str]
) -> None:
    sample = [t for t in _sample(tasks, per_kind=2) if t.metadata["kind"] in kinds]
    assert {t.metadata["kind"] for t in sample} == kinds
    for task in sample:
        result = await _play(pool, task, attack())
        assert result.status == "done", (task.id, result.error_message)
        assert result.verdict is not None and not result.verdict["passed"], (attack.__name__, task.id, result.verdict)
        assert result.reward_components is not None and result.reward_components["success"] == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_schema_selection_over_the_attached_servers(pool: ToolPool) -> None:
    from collector.errors import ConfigError
    from collector.tasks.schema_selection import generate_selection_tasks

    tools_by_server = await pool.list_tools()
    with pytest.raises(ConfigError, match="at least two attached servers"):
        generate_selection_tasks({"weather": tools_by_server["weather"]}, seed=0)
    made = generate_selection_tasks(tools_by_server, seed=0, n=60)
    assert len(made) >= 50 and {t.family for t in made} == {"tool-selection"}
    loaded = load_tasks(["schema-selection"], seed=0, tools_by_server=tools_by_server)
    assert {t.id for t in loaded} == {t.id for t in generate_selection_tasks(tools_by_server, seed=0, n=100)}
    targets = {(t.metadata["server"], t.metadata["target"]) for t in made}
    assert len({s for s, _ in targets}) == len(tools_by_server)  # every attached server takes part
    for task in made:
        assert len(task.servers) >= 2 and f"`{task.metadata['target']}`" not in task.messages[-1]["content"]
    picked = [t for t in made if t.metadata["server"] in ("weather", "almanac", "search")][:4]
    for task in picked:
        result = await _play(pool, task, ScriptedPolicy())
        assert result.verdict is not None and result.verdict["passed"], (task.id, result.verdict)
        result = await _play(pool, task, CallsEverything())
        assert result.verdict is not None and not result.verdict["passed"], (task.id, result.verdict)
