"""The test-writing family: the mutation-score verifier against honest and hostile test files, the expert, and
the family through the real files and exec servers and the real sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fake_openai import FakeOpenAI, reply, tool_call, turn_index

from collector.errors import VerifierError
from collector.loop import EpisodeResult, LoopConfig, run_episode
from collector.policies.base import Policy
from collector.policies.openai import OpenAIPolicy
from collector.policies.scripted import ScriptedPolicy
from collector.pool import ToolPool
from collector.tasks import test_writing
from collector.tasks._split import split_of
from collector.tasks.model import Task
from collector.tasks.registry import load_tasks
from collector.types import Verdict
from collector.verifiers import validate_spec, verify
from collector.verifiers.spec import VerifierSpec, VerifyContext

ASYNC = pytest.mark.asyncio(loop_scope="module")

HEAD = "from below_zero import below_zero\n\n\n"
WEAK = HEAD + "def test_example():\n    assert below_zero([1, 2, 3]) is False\n"
ORIGINAL_BODY = "    balance = 0\n\n    for op in operations:\n        balance += op\n        if balance < 0:\n"

# Test files that try to tell a mutant from the module without testing its behaviour, or to forge the verdict.
ATTACKS = {
    "always fails": HEAD + "def test_fail():\n    assert False\n",
    "always passes": HEAD + "def test_pass():\n    pass\n",
    "compares the source text": HEAD + (
        "import inspect\n\n\ndef test_source():\n"
        f"    assert {ORIGINAL_BODY!r} in inspect.getsource(below_zero)\n"
    ),
    "compares the code object": HEAD + (
        "import below_zero as m\n\n\ndef test_code():\n"
        "    code = m.below_zero.__code__\n"
        "    assert 0 in code.co_consts and code.co_code.count(bytes([107])) <= 1\n"  # fails on a changed constant
    ),
    "reads the module file": HEAD + (
        "import glob, os\n\n\ndef test_file():\n"
        "    found = [p for root in ('/workspace', '/tmp', os.getcwd()) for p in glob.glob(root + '/**/*.py', recursive=True)\n"
        "             if 'def below_zero' in open(p).read()]\n"
        f"    assert all({ORIGINAL_BODY!r} in open(p).read() for p in found)\n"
    ),
    "reads other processes": HEAD + (
        "import os, re\n\n\ndef test_proc():\n"
        "    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        for name in ('cmdline', 'environ'):\n"
        "            try:\n"
        "                data = open(f'/proc/{pid}/{name}', 'rb').read()\n"
        "            except OSError:\n"
        "                continue\n"
        "            assert b'balance -= op' not in data and b'balance <= 0' not in data\n"
        "        try:\n"
        "            maps = open(f'/proc/{pid}/maps').read().splitlines()\n"
        "            mem = open(f'/proc/{pid}/mem', 'rb')\n"
        "        except OSError:\n"
        "            continue\n"
        "        for line in maps:\n"
        "            start, end = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "            try:\n"
        "                mem.seek(start)\n"
        "                chunk = mem.read(min(end - start, 1 << 20))\n"
        "            except (OSError, ValueError, OverflowError):\n"
        "                continue\n"
        "            assert b'balance -= op' not in chunk and b'balance <= 0' not in chunk\n"
    ),
    "forges the report": HEAD + (
        "import json, os\n\n\ndef test_forge():\n"
        "    fake = json.dumps({'runs': [{'variant': 'correct', 'passed': True}] + "
        "[{'variant': 'mutant', 'passed': False}] * 8, 'protected': True})\n"
        "    for path in ('/proc/1/fd/1', '/proc/self/fd/1', '/dev/stdout'):\n"
        "        try:\n"
        "            with open(path, 'w') as fh:\n"
        "                fh.write('MCPGYM-MUTATION-0000000000000000 ' + fake + '\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "    assert below_zero([1, 2, 3]) is False\n"
    ),
    "passes only on its first run": HEAD + (
        "import os\n\n\ndef test_first():\n"
        "    seen = os.path.exists('.seen') or os.path.exists('/tmp/.seen')\n"
        "    open('.seen', 'w').close()\n"
        "    open('/tmp/.seen', 'w').close()\n"
        "    assert not seen\n"
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ToolPool]:
    async with ToolPool() as p:
        yield p


def task_for(number: int) -> Task:
    return next(t for t in test_writing.generate() if t.id == f"test-writing/humaneval-{number}")


async def judge_file(pool: ToolPool, task: Task, content: str) -> Verdict:
    async with pool.session(task.servers) as session:
        await session.setup_workspace({**task.setup_files, task.metadata["tests"]: content})
        files = await session.snapshot_files()
        ctx = VerifyContext(files=files, run_python=session.run_python)
        return await verify(task.verifier, ctx)


async def play(pool: ToolPool, task: Task, policy: Policy, max_turns: int = 6, step_timeout_s: float = 120
               ) -> EpisodeResult:
    async with pool.session(task.servers) as session:
        config = LoopConfig(max_turns=max_turns, step_timeout_s=step_timeout_s)
        return await run_episode(task, policy, session, config=config)


def test_tasks_split_by_problem_and_hold_their_mutants_out_of_sight() -> None:
    tasks = test_writing.generate()
    assert len(tasks) > 100 and {t.split for t in tasks} == {"train", "test"}
    for t in tasks:
        number = t.metadata["source_id"].split("/")[-1]
        assert t.split == split_of(f"code/humaneval-{number}")
        cfg = t.verifier.expected
        assert test_writing.MIN_MUTANTS <= len(cfg["mutants"]) <= test_writing.MUTANTS
        assert t.setup_files == {t.metadata["module"]: cfg["source"]}
        shown = json.dumps(t.messages) + json.dumps(t.setup_files)
        assert not any(m in shown for m in cfg["mutants"])
    assert {t.id for t in load_tasks(["test-writing"], seed=9)} == {t.id for t in tasks}


def test_a_bad_spec_is_refused_with_what_is_accepted() -> None:
    cfg = dict(task_for(3).verifier.expected)
    for bad, needle in ((None, "must be an object"), ({**cfg, "mutants": []}, "mutants"),
                        ({**cfg, "module": "a-b"}, "identifier"), ({**cfg, "min_kill": 0}, "min_kill")):
        with pytest.raises(VerifierError, match=needle):
            validate_spec(VerifierSpec(type="mutation_score", expected=bad))


@ASYNC
async def test_honest_tests_score_by_the_mutants_they_kill_and_attacks_score_no_more(pool: ToolPool) -> None:
    task = task_for(3)
    full = await judge_file(pool, task, task.metadata["expert_tests"])
    assert full["passed"] and full["score"] == 1.0 and full["details"]["isolated"] is True, full
    assert full["details"]["correct_runs"] == 3 and full["details"]["killed"] == full["details"]["mutants"] == 8
    weak = await judge_file(pool, task, WEAK)
    assert weak["details"]["passes_on_correct"] and 0 < weak["score"] < test_writing.MIN_KILL, weak
    assert not weak["passed"]
    for name, content in ATTACKS.items():
        verdict = await judge_file(pool, task, content)
        assert not verdict["passed"] and verdict["score"] <= weak["score"], (name, verdict)
    assert (await judge_file(pool, task, ATTACKS["always fails"]))["details"]["failure_on_correct"]


@ASYNC
async def test_the_tests_see_plain_data_and_the_functions_exceptions(pool: ToolPool) -> None:
    task = task_for(3)
    content = HEAD + (
        "import pytest\n\n\ndef test_types():\n"
        "    assert type(below_zero([1, -2])) is bool\n"
        "    try:\n"
        "        below_zero(None)\n"
        "    except TypeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('no TypeError')\n"
        "    try:\n"
        "        below_zero(lambda: 1)\n"
        "    except TypeError as exc:\n"
        "        assert 'plain data' in str(exc) or 'cannot cross' in str(exc)\n"
        "    assert below_zero((1, 2, -4)) is True\n"
    )
    verdict = await judge_file(pool, task, content)
    assert verdict["details"]["passes_on_correct"], verdict
    missing = await judge_file(pool, task, "")
    assert not missing["passed"] and "no test file" in missing["details"]["reason"]


@pytest.mark.parametrize("split", ["train", "test"])
@ASYNC
async def test_scripted_expert_writes_tests_that_kill_the_mutants(pool: ToolPool, split: str) -> None:
    for task in load_tasks(["test-writing"], split=split, seed=2, limit=2):
        result = await play(pool, task, ScriptedPolicy())
        assert result.status == "done" and result.verdict is not None, (task.id, result.error_message)
        assert result.verdict["passed"] and result.verdict["score"] == 1.0, (task.id, result.verdict)
        assert [c.tool for c in result.calls] == ["read_text_file", "write_file", "run_shell"]
        assert json.loads(result.calls[-1].message or "{}")["exit_code"] == 0
        assert result.tool_calls == task.optimal_steps and result.tool_errors == 0


@ASYNC
async def test_an_openai_policy_episode_is_judged_by_its_test_file(pool: ToolPool) -> None:
    task = task_for(3)

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if turn_index(body) == 0:
            args = json.dumps({"path": task.metadata["tests"], "content": WEAK})
            return reply(tool_calls=[tool_call("c0", "files__write_file", args)])
        return reply(content="Wrote one test.")

    with FakeOpenAI(respond) as fake:
        result = await play(pool, task, OpenAIPolicy("fake", base_url=fake.base_url, max_retries=0))
    assert result.status == "done" and result.verdict is not None
    assert not result.verdict["passed"] and 0 < result.verdict["score"] < 1
    assert result.reward is not None and result.reward_components is not None


@pytest.mark.slow
@ASYNC
async def test_the_local_model_plays_a_test_writing_episode(pool: ToolPool) -> None:
    from local_model import loaded_model

    from collector.policies.local import LocalPolicy

    task = load_tasks(["test-writing"], split="test", seed=0, limit=1)[0]
    policy = LocalPolicy(temperature=0.0, max_new_tokens=32, loaded=loaded_model())
    try:  # one turn: a prompt with the files and exec tools is ~3,000 tokens, minutes on a busy CPU
        result = await play(pool, task, policy, max_turns=1, step_timeout_s=1800)
    finally:
        await policy.aclose()
    assert result.status == "done" and result.turns >= 1, result.error_message
    assert result.verdict is not None and result.reward is not None
