"""Tests of the built-in task families and the registry: determinism, split stability, mixing, bad names."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from collector.errors import ConfigError
from collector.tasks import code, files, search, weather
from collector.tasks._split import split_of
from collector.tasks.model import VerifyContext
from collector.tasks.registry import FAMILIES, load_tasks
from collector.verifiers import validate_spec, verify


def test_same_seed_gives_identical_tasks() -> None:
    for family in FAMILIES:
        a = load_tasks([family], seed=7, limit=30)
        b = load_tasks([family], seed=7, limit=30)
        assert [t.model_dump() for t in a] == [t.model_dump() for t in b], family
        assert len(a) == 30


def test_different_seeds_differ_but_split_is_by_id() -> None:
    a = {t.id: t for t in load_tasks(["files", "weather", "search"], seed=1)}
    b = {t.id: t for t in load_tasks(["files", "weather", "search"], seed=2)}
    assert set(a) != set(b)
    for task in list(a.values()) + list(b.values()):
        assert task.split == split_of(task.id)
    for shared in set(a) & set(b):  # a task generated from both seeds keeps its split
        assert a[shared].split == b[shared].split


def test_split_is_about_80_20_and_filters() -> None:
    tasks = load_tasks(["code"], seed=0)
    assert len(tasks) == 164
    counts = Counter(t.split for t in tasks)
    assert 0.12 < counts["test"] / len(tasks) < 0.28
    train = load_tasks(["code"], split="train", seed=0)
    test = load_tasks(["code"], split="test", seed=0)
    assert {t.id for t in train}.isdisjoint({t.id for t in test})
    assert len(train) + len(test) == 164
    assert all(t.split == "test" for t in test)


def test_limit_mixes_families_round_robin() -> None:
    tasks = load_tasks(["weather", "files", "search", "code"], seed=3, limit=8)
    assert [t.family for t in tasks] == ["weather", "files", "search", "code"] * 2
    assert len({t.id for t in tasks}) == 8


def test_unknown_suite_lists_accepted_names() -> None:
    with pytest.raises(ConfigError) as info:
        load_tasks(["weathr"])
    message = str(info.value)
    assert "weathr" in message
    for name in ("weather", "files", "search", "code", "schema", ".jsonl"):
        assert name in message


def test_bad_split_limit_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="accepted: train, test"):
        load_tasks(["code"], split="dev")
    with pytest.raises(ConfigError, match="limit"):
        load_tasks(["code"], limit=-1)
    with pytest.raises(ConfigError, match="does not exist"):
        load_tasks(["/nonexistent/tasks.jsonl"])
    with pytest.raises(ConfigError, match="schema"):
        load_tasks(["schema"])
    with pytest.raises(ConfigError, match="no task suite"):
        load_tasks([" "])


def test_every_generated_spec_is_valid_and_tasks_are_well_formed() -> None:
    for family in FAMILIES:
        for task in load_tasks([family], seed=0, limit=60):
            validate_spec(task.verifier)
            assert task.family == family
            assert task.messages[-1]["role"] == "user" and task.messages[-1]["content"]
            assert task.servers and task.optimal_steps >= (0 if task.metadata.get("kind") == "no_tool" else 1)


def test_weather_expected_values_are_the_providers() -> None:
    from mcp_servers.weather import offline

    tasks = weather.generate(seed=0, n=60)
    kinds = Counter(t.metadata["kind"] for t in tasks)
    assert set(kinds) == set(weather.KINDS)
    for task in tasks:
        meta = task.metadata
        if meta["kind"] == "lookup":
            now = offline.current(meta["cities"][0], meta["date"], "metric")
            assert task.verifier.expected == getattr(now, meta["field"])
        if meta["kind"] == "imperial":
            now = offline.current(meta["cities"][0], meta["date"], "imperial")
            assert task.verifier.expected == getattr(now, meta["field"])
        if meta["kind"] == "compare":
            values = [getattr(offline.current(c, meta["date"]), meta["field"]) for c in meta["cities"]]
            best = max(values) if meta["pick"] == "max" else min(values)
            assert meta["answer"] == meta["cities"][values.index(best)]
            assert len(meta["cities"]) >= 2


def test_weather_refuses_unfixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPGYM_WEATHER__FIXED_DATE", "today")
    with pytest.raises(ConfigError, match="fixed date"):
        weather.generate(seed=0, n=3)


def test_files_kinds_and_setup() -> None:
    tasks = files.generate(seed=0, n=14)
    assert Counter(t.metadata["kind"] for t in tasks) == Counter({k: 2 for k in files.KINDS})
    for task in tasks:
        if task.metadata["kind"] in ("edit", "append", "move", "delete", "find_content", "find_name"):
            assert task.setup_files
        if task.metadata["kind"] == "move":
            assert task.verifier.files is not None and task.verifier.files[task.metadata["source"]] is None


async def test_files_find_answer_must_be_the_whole_path() -> None:
    task = next(t for t in files.generate(seed=0, n=14) if t.metadata["kind"] == "find_content")
    path = task.metadata["answer"]
    others = sorted(set(task.setup_files) - {path})
    cases = (
        (path, True),
        (f"I grepped for it.\nAnswer: ./{path}", True),
        (f"Answer: `{path}`", True),
        (f"other/{path}", False),
        (f"Answer: {path.upper()}", path == path.upper()),  # paths are case-sensitive
        ("no idea", False),
        (", ".join([*others, path]), False),  # every path listed
        ("\n".join([path, *others]), False),  # reordered: the right one first does not help
        (f"Answer: {path} or {others[0]}", False),
    )
    for answer, ok in cases:
        v = await verify(task.verifier, VerifyContext(final_answer=answer))
        assert v["passed"] is ok, answer


def test_search_masks_the_title() -> None:
    tasks = search.generate(seed=0, n=50)
    assert len(tasks) == 50
    for task in tasks:
        excerpt = task.metadata["excerpt"]
        assert search.MASK in excerpt
        assert task.metadata["title"].casefold() not in excerpt.casefold()
        assert task.metadata["title"] in task.verifier.expected


def test_mask_title_rejects_leaky_or_short_excerpts() -> None:
    leaky = "Tomato is a red fruit eaten as a vegetable. Tomatoes grow in many countries of the world today."
    assert search.mask_title("Tomato", leaky) is None
    assert search.mask_title("Oslo", "A city.") is None
    made = search.mask_title(
        "Mole (animal)", "Moles are small mammals adapted to a subterranean lifestyle. They have cylindrical bodies."
    )
    assert made is not None and "Mole" in made[1] and "Moles" not in made[0]


def test_code_tasks_carry_humaneval() -> None:
    tasks = code.generate()
    assert len(tasks) == 164
    first = tasks[0]
    assert first.id == "code/humaneval-0" and first.servers == ["exec"]
    assert first.verifier.type == "unit_tests" and "def check(candidate)" in (first.verifier.test_code or "")
    assert first.verifier.entry_point == "has_close_elements"
    assert first.metadata["prompt"] in first.messages[-1]["content"]


def test_generated_answers_pass_their_own_verifiers() -> None:
    """The stored expected answer, in the form the prompt asks for, passes (a check that the verifier fits the task)."""

    async def run() -> None:
        for task in weather.generate(seed=5, n=40):
            answer = task.metadata["answer"]
            assert "`Answer: <" in task.messages[-1]["content"], task.id  # the prompt states the answer's form
            if task.verifier.type == "numeric":
                text = (
                    f"It is {answer}{task.verifier.unit or ''} right now.\nAnswer: {answer} {task.verifier.unit or ''}"
                )
            else:
                text = f"Answer: {answer}"
            v = await verify(task.verifier, VerifyContext(final_answer=text))
            assert v["passed"], (task.id, text, v)
        for task in search.generate(seed=5, n=40):
            assert "`Answer: <article title>`" in task.messages[-1]["content"]
            v = await verify(task.verifier, VerifyContext(final_answer=f"Found it.\nAnswer: {task.metadata['title']}"))
            assert v["passed"], task.id

    asyncio.run(run())


def test_same_tasks_in_another_process_with_another_hash_seed() -> None:
    """Generation depends on nothing process-specific (set order, hash randomization)."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, json\n"
        "from collector.tasks import load_tasks\n"
        "tasks = load_tasks(['weather', 'files', 'search', 'code'], seed=5, limit=80)\n"
        "print(hashlib.sha256(json.dumps([t.model_dump(mode='json') for t in tasks]).encode()).hexdigest())\n"
    )
    here = load_tasks(["weather", "files", "search", "code"], seed=5, limit=80)
    expected = hashlib.sha256(json.dumps([t.model_dump(mode="json") for t in here]).encode()).hexdigest()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == expected


async def test_weather_compare_wants_one_city() -> None:
    task = next(t for t in weather.generate(seed=0, n=40) if t.metadata["kind"] == "compare")
    winner = task.metadata["answer"]
    loser = next(c for c in task.metadata["cities"] if c != winner)
    answers = {
        winner: True,
        f"Answer: {winner}": True,
        f"{winner} is {'warmer' if task.metadata['pick'] == 'max' else 'colder'} than {loser}.\nAnswer: {winner}": True,
        f"{loser} or {winner}": False,  # naming every city does not pass
        f"{winner}, {loser}": False,  # nor does naming the winner first
        f"Answer: {winner} (or {loser})": False,
        f"It is {winner}.": False,  # not the declared form: a sentence is not a city name
        loser: False,
        "": False,
    }
    for answer, ok in answers.items():
        v = await verify(task.verifier, VerifyContext(final_answer=answer))
        assert v["passed"] is ok, answer
    assert weather.answer_names(winner, task.metadata["cities"]) == task.verifier.expected


async def test_weather_numbers_hedged_padded_and_reordered() -> None:
    tasks = weather.generate(seed=3, n=40)
    for task in (t for t in tasks if t.verifier.type == "numeric"):
        value = float(task.metadata["answer"])
        unit = task.verifier.unit or ""
        other = value + 7.5
        cases = {
            f"Answer: {value:g} {unit}": True,
            f"It is {value:g} {unit} (about {other:g} {unit} yesterday).": True,  # an aside is not the answer
            f"Earlier it was {other:g} {unit}.\nAnswer: {value:g} {unit}": True,  # padding before the answer line
            f"Answer: {value:g} {unit} or {other:g} {unit}": False,
            f"Answer: {other:g} {unit} or {value:g} {unit}": False,  # reordered
            f"{value:g} {unit}, {other:g} {unit}": False,
            f"Answer: {other:g} {unit}": False,
        }
        for answer, ok in cases.items():
            v = await verify(task.verifier, VerifyContext(final_answer=answer))
            assert v["passed"] is ok, (task.metadata["kind"], answer, v)


async def test_search_titles_hedged_padded_and_reordered() -> None:
    tasks = search.generate(seed=2, n=10)
    for task, other in itertools.pairwise(tasks):
        title, wrong = task.metadata["title"], other.metadata["title"]
        cases = {
            f"Answer: {title}": True,
            f"Answer: **{title}**.": True,
            f"The excerpt describes something else first.\nAnswer: {title}": True,
            f"{wrong}, {title}": False,
            f"{title}, {wrong}": False,
            f"Answer: {title} or {wrong}": False,
            f"Answer: I think it is {title}, but it could be {wrong}": False,
            f"Answer: {wrong}": False,
        }
        for answer, ok in cases.items():
            v = await verify(task.verifier, VerifyContext(final_answer=answer))
            assert v["passed"] is ok, (task.id, answer)


def test_code_answers_with_two_solutions_are_refused() -> None:
    from collector.verifiers._extract import Ambiguous, extract_code

    task = code.generate(n=3)[2]
    entry = str(task.verifier.entry_point)
    one = f"```python\ndef {entry}(x):\n    return 1\n```"
    two = f"```python\ndef {entry}(x):\n    return 2\n```"
    usage = f"```python\nprint({entry}(3))\n```"
    assert "```python" in task.messages[0]["content"]  # the system prompt states the form: one python block
    assert extract_code(one + "\n" + usage, entry_point=entry).startswith(f"def {entry}")
    for hedged in (one + "\nor\n" + two, two + "\n" + one):
        with pytest.raises(Ambiguous, match=entry):
            extract_code(hedged, entry_point=entry)


async def test_schema_calls_hedged_and_reordered() -> None:
    from collector.tasks.schema_tasks import generate_schema_tasks

    tools = {
        "weather": [
            {
                "name": "get_current_weather",
                "inputSchema": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}, "units": {"enum": ["metric", "imperial"]}},
                    "required": ["location", "units"],
                },
            }
        ]
    }
    tasks = generate_schema_tasks(tools, seed=1, n=6)
    multi = next(t for t in tasks if len(t.verifier.calls or []) > 1)
    calls = [{"name": c["name"], "arguments": c["arguments"]} for c in multi.verifier.calls or []]
    hedge = {"name": "get_current_weather", "arguments": {"location": "Atlantis", "units": "metric"}}
    for made, ok in ((calls, True), (calls[::-1], True), ([*calls, hedge], False), ([hedge, *calls], False)):
        v = await verify(multi.verifier, VerifyContext(tool_calls=made))
        assert v["passed"] is ok, made
