"""The code-repair family: syntax-tree mutants, the shipped mutant table, the expert and the verifier, through the
real files and exec servers and the real sandbox."""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fake_openai import FakeOpenAI, reply, tool_call, turn_index

from collector.collect import CollectConfig, run_collection
from collector.loop import EpisodeResult, LoopConfig, run_episode
from collector.policies.base import Policy
from collector.policies.openai import OpenAIPolicy
from collector.policies.scripted import ScriptedPolicy
from collector.pool import ToolPool
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks import code_repair
from collector.tasks._mutant_table import apply_edit, build_table, load_table, module_source, visible_check
from collector.tasks._mutate import OPERATORS, fix_edit, mutants, source_hash
from collector.tasks._split import split_of
from collector.tasks.code import load_problems
from collector.tasks.model import Task
from collector.tasks.registry import load_tasks

ASYNC = pytest.mark.asyncio(loop_scope="module")

SAMPLE = ("HumanEval/0", "HumanEval/12", "HumanEval/62")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ToolPool]:
    async with ToolPool() as p:
        yield p


def problem(task_id: str) -> dict[str, Any]:
    return next(p for p in load_problems() if p["task_id"] == task_id)


async def play(pool: ToolPool, task: Task, policy: Policy, max_turns: int = 6, step_timeout_s: float = 120
               ) -> EpisodeResult:
    async with pool.session(task.servers) as session:
        config = LoopConfig(max_turns=max_turns, step_timeout_s=step_timeout_s)
        return await run_episode(task, policy, session, config=config)


def test_mutants_change_one_place_parse_and_are_undone_by_their_fix() -> None:
    p = problem("HumanEval/0")
    source = module_source(p)
    found = mutants(source, p["prompt"].count("\n") + 1)
    assert {m.operator for m in found} >= {"comparison", "operator", "swap_args", "drop_branch", "constant"}
    assert [m.id for m in found] == [m.id for m in mutants(source, p["prompt"].count("\n") + 1)]  # deterministic
    prompt_lines = p["prompt"].count("\n")
    for m in found:
        ast.parse(m.source)
        assert m.source != source and m.line > prompt_lines  # never in the prompt (signature, docstring)
        old, new = fix_edit(m.source, source)
        assert m.source.count(old) == 1 and m.source.replace(old, new) == source


def test_the_shipped_table_rebuilds_for_a_sample_and_its_mutants_load_identically() -> None:
    table = load_table()
    problems = [problem(t) for t in SAMPLE]
    rebuilt = build_table(problems)["problems"]
    for p in problems:
        assert rebuilt[p["task_id"]] == table[p["task_id"]]
        for m in table[p["task_id"]]["mutants"]:
            assert m["operator"] in OPERATORS
            assert source_hash(apply_edit(module_source(p), m["edit"])) == m["hash"]


@ASYNC
async def test_table_mutants_fail_the_full_tests_in_the_sandbox(pool: ToolPool) -> None:
    async with pool.session(["exec"]) as session:
        for task_id in SAMPLE:
            p = problem(task_id)
            right = await session.run_tests(module_source(p), p["test"], p["entry_point"])
            assert right["passed"] == right["total"] > 0, right
            for m in load_table()[task_id]["mutants"][:4]:
                report = await session.run_tests(apply_edit(module_source(p), m["edit"]), p["test"], p["entry_point"])
                assert report["passed"] < report["total"] or report["error"] or report["timed_out"], (task_id, m)


def test_tasks_split_by_problem_and_are_the_same_from_any_seed() -> None:
    tasks = code_repair.generate()
    assert len(tasks) > 300 and {t.split for t in tasks} == {"train", "test"}
    for t in tasks:
        number = t.metadata["source_id"].split("/")[-1]
        assert t.split == split_of(f"code/humaneval-{number}")
        assert t.servers == ["files", "exec"] and t.verifier.solution_path == t.metadata["module"]
        assert t.verifier.test_code == problem(t.metadata["source_id"])["test"]  # the hidden tests are the full ones
    table = load_table()
    by_problem: dict[str, list[str]] = {}
    for t in tasks:
        by_problem.setdefault(t.metadata["source_id"], []).append(t.metadata["mutant"]["operator"])
    for source_id, ops in by_problem.items():  # as many kinds of bug as the problem's mutants allow
        available = {m["operator"] for m in table[source_id]["mutants"]}
        assert len(ops) <= code_repair.PER_PROBLEM and len(set(ops)) == min(len(ops), len(available))
    assert [t.id for t in load_tasks(["code-repair"], seed=3)] != [t.id for t in load_tasks(["code-repair"], seed=4)]
    assert {t.id for t in load_tasks(["code-repair"], seed=3)} == {t.id for t in tasks}
    visible, shown = visible_check(problem("HumanEval/0")["test"])
    assert shown == 4 and visible.count("assert") == 4


@pytest.mark.parametrize("split", ["train", "test"])
@ASYNC
async def test_scripted_expert_repairs_through_the_real_servers(pool: ToolPool, split: str) -> None:
    for task in load_tasks(["code-repair"], split=split, seed=1, limit=2):
        result = await play(pool, task, ScriptedPolicy())
        assert result.status == "done" and result.verdict is not None, (task.id, result.error_message)
        assert result.verdict["passed"], (task.id, result.verdict)
        assert result.tool_calls == task.optimal_steps == 4 and result.tool_errors == 0
        names = [[c.tool for c in result.calls if c.turn == turn] for turn in range(3)]
        assert names == [["read_text_file", "run_shell"], ["edit_file"], ["run_shell"]]
        read, first_run, edit, second_run = result.calls
        assert json.loads(first_run.message or "{}")["exit_code"] != 0  # it saw the failure before fixing
        old = edit.arguments["edits"][0]["old_text"]  # the edit copies lines it read
        assert old in (read.message or "")
        assert json.loads(second_run.message or "{}")["exit_code"] == 0
        assert result.reward_components and result.reward_components["efficiency"] == 2.0


def _policy(fake: FakeOpenAI) -> OpenAIPolicy:
    return OpenAIPolicy("fake", base_url=fake.base_url, max_retries=0)


@ASYNC
async def test_the_verifier_judges_the_module_and_ignores_the_visible_tests(pool: ToolPool) -> None:
    task = load_tasks(["code-repair"], split="train", seed=0, limit=1)[0]
    module, tests = task.metadata["module"], task.metadata["tests"]
    fixed = module_source(problem(task.metadata["source_id"]))

    def writer(path: str, content: str) -> Any:
        def respond(body: dict[str, Any]) -> dict[str, Any]:
            if turn_index(body) == 0:
                args = json.dumps({"path": path, "content": content})
                return reply(tool_calls=[tool_call("c0", "files__write_file", args)])
            return reply(content="Done.")
        return respond

    cases = {
        "tests emptied": (writer(tests, "def test_nothing():\n    pass\n"), False),
        "no change": (lambda body: reply(content="Fixed it."), False),
        "module fixed": (writer(module, fixed), True),
        "module deleted": (writer(module, ""), False),
    }
    for name, (respond, passes) in cases.items():
        with FakeOpenAI(respond) as fake:
            result = await play(pool, task, _policy(fake))
        assert result.verdict is not None and result.verdict["passed"] is passes, (name, result.verdict)
        if not passes:
            assert result.verdict["score"] < 1.0, name


@pytest.mark.slow
@ASYNC
async def test_the_local_model_plays_a_code_repair_episode(pool: ToolPool) -> None:
    from local_model import loaded_model

    from collector.policies.local import LocalPolicy

    task = load_tasks(["code-repair"], split="test", seed=0, limit=1)[0]
    policy = LocalPolicy(temperature=0.0, max_new_tokens=32, loaded=loaded_model())
    try:  # one turn: a prompt with the files and exec tools is ~3,000 tokens, minutes on a busy CPU
        result = await play(pool, task, policy, max_turns=1, step_timeout_s=1800)
    finally:
        await policy.aclose()
    assert result.status == "done" and result.turns >= 1, result.error_message
    assert result.verdict is not None and result.reward is not None  # judged, whatever the model did


def test_both_coding_families_through_stdio_servers_named_by_servers(tmp_path: Path) -> None:
    mcpgym = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "mcpgym")
    config = {"mcpServers": {
        name: {"command": mcpgym, "args": ["serve", name, "--transport", "stdio", "--workspace", "{workspace}"]}
        for name in ("files", "exec")
    }}
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps(config))
    settings = CollectorSettings(workspace_root=tmp_path / "ws")
    cfg = CollectConfig(db=tmp_path / "t.db", run="gold", tasks=["code-repair", "test-writing"], policy="scripted",
                        servers=servers, limit=2, concurrency=2, seed=5, split="train", settings=settings)
    summary = run_collection(cfg)
    assert (summary.done, summary.failed, summary.passed) == (2, 0, 2), summary.errors
    episodes = list(Store(tmp_path / "t.db", readonly=True).episodes(["gold"]))
    assert {e["family"] for e in episodes} == {"code-repair", "test-writing"}


def test_the_grpo_environment_judges_both_coding_families() -> None:
    import sys

    from collector.servers import ServerSpec
    from training import environment

    def spec(name: str) -> ServerSpec:
        return ServerSpec(name=name, command=sys.executable,
                          args=("-m", "mcpgym.cli", "serve", name, "--transport", "stdio", "--workspace", "{workspace}"))

    factory = environment.MCPEnvironmentFactory({"files": spec("files"), "exec": spec("exec")})
    try:
        repair = load_tasks(["code-repair"], split="train", seed=0, limit=1)[0]
        writing = load_tasks(["test-writing"], split="train", seed=0, limit=1)[0]
        classes = factory.factories_for([repair, writing])  # one environment per tool subset
        env = classes[environment.task_environment_key(repair)]()
        assert not hasattr(env, "files__write_file")  # code-repair offers edit_file, not write_file
        env.reset(prompt=repair.messages, task=repair.model_dump(mode="json"))
        assert not env.state.judge("Done.").verdict["passed"]  # the bug is still there
        fix = repair.metadata["fix"]
        env.files__edit_file(path=repair.metadata["module"],  # type: ignore[attr-defined]
                             edits=[{"old_text": fix["old_text"], "new_text": fix["new_text"]}])
        assert env.state.judge("Fixed.").verdict["passed"]
        env.state.close()
        env = classes[environment.task_environment_key(writing)]()
        env.reset(prompt=writing.messages, task=writing.model_dump(mode="json"))
        env.files__write_file(path=writing.metadata["tests"], content=writing.metadata["expert_tests"])  # type: ignore[attr-defined]
        verdict = env.state.judge("Wrote the tests.").verdict
        assert verdict["passed"] and verdict["score"] == 1.0, verdict
        env.state.close()
    finally:
        factory.close()
