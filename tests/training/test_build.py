"""SFT and GRPO dataset building end to end on a real store: filters, scrubbing, dedup, mixing, split, saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_from_disk
from episode_factory import code_messages, weather_messages

from collector.store import Store
from training.datasets import FilterConfig, GRPOOptions, SFTOptions, build_grpo, build_sft, save_dataset
from training.errors import DatasetError

UNIT = {"type": "unit_tests", "test_code": "assert add(1, 2) == 3", "entry_point": "add"}
CITIES = ["Paris", "Berlin", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Dakar"]


@pytest.fixture
def filled(store: Store, add_episode) -> Store:  # type: ignore[no-untyped-def]
    for i, city in enumerate(CITIES):
        add_episode("expert", f"weather-{i}", "weather", weather_messages(city, 10 + i))
    add_episode("expert", "weather-0", "weather", weather_messages("Paris", 10))  # exact duplicate of the first
    add_episode("expert", "weather-9", "weather", weather_messages("Rome", 20), passed=False, reward=0.0)
    add_episode("expert", "weather-10", "weather", weather_messages("Nice", 20, arguments="{city: Nice"),
                malformed=1, error_kinds=["invalid_json"])  # as collection records a call that is not JSON
    add_episode("expert", "weather-11", "weather", weather_messages(
        "Bern", 9, answer="It is 9 degrees in Bern. (debug: Authorization: Bearer abcDEF1234567890ghiJKL)"))
    for i in range(4):
        add_episode("expert", f"code-{i}", "code", code_messages(f"def add(a, b):\n    return a + b + {i} - {i}"),
                    verifier=UNIT, tools=[])
    add_episode("expert", "code-9", "code", code_messages("def add(a, b) return a+b"), verifier=UNIT, tools=[])
    add_episode("other", "weather-0", "weather", weather_messages("Paris", 10), passed=False, reward=1.0)
    return store


def test_sft_build_counts_every_reason(filled: Store) -> None:
    built = build_sft(str(filled.path), ["expert"], SFTOptions(eval_fraction=0.0))
    report = built.report
    assert report.considered == 17
    assert report.dropped == {"not passed": 1, "invalid tool call": 1, "code: does not parse": 1,
                              "exact duplicate": 1}
    assert report.secrets == {"bearer_token": 1}
    rows = built.splits["train"]
    assert len(rows) == 13 and report.kept == 13
    assert report.families == {"weather": 9, "code": 4}
    call = rows[0]["messages"]
    assert all(isinstance(c["function"]["arguments"], dict)
               for r in rows for m in r["messages"] for c in m.get("tool_calls", []))
    assert not any("latency_s" in m or "malformed" in m for m in call)
    assert any("[REDACTED:bearer_token]" in (m["content"] or "") for r in rows for m in r["messages"])


def test_sft_mixing_and_task_split(filled: Store) -> None:
    options = SFTOptions(proportions={"weather": 0.5, "code": 0.5}, eval_fraction=0.25, seed=2)
    built = build_sft(str(filled.path), ["expert"], options)
    assert built.report.families == {"weather": 4, "code": 4}
    assert built.report.dropped["mixing: over family share"] == 5
    train_tasks = {r["messages"][-1]["content"] for r in built.splits["train"]}
    eval_tasks = {r["messages"][-1]["content"] for r in built.splits["eval"]}  # each task's answer is unique
    assert train_tasks.isdisjoint(eval_tasks)
    assert built.report.splits == {"train": 6, "eval": 2}


def test_sft_filters_are_options(filled: Store) -> None:
    strict = SFTOptions(filters=FilterConfig(min_reward=13.0), eval_fraction=0.0)
    with pytest.raises(DatasetError, match="no SFT rows left.*reward below threshold"):
        build_sft(str(filled.path), ["expert"], strict)
    loose = SFTOptions(filters=FilterConfig(require_passed=False, require_valid_format=False, min_reward=None),
                       dedup=False, eval_fraction=0.0)
    assert build_sft(str(filled.path), ["expert"], loose).report.kept == 16  # the code check still applies


def test_sft_max_tokens_needs_a_counter(filled: Store) -> None:
    with pytest.raises(DatasetError, match="token counter"):
        build_sft(str(filled.path), ["expert"], SFTOptions(filters=FilterConfig(max_tokens=10)))
    per_message = lambda m, t: 10 * len(m)
    built = build_sft(str(filled.path), ["expert"], SFTOptions(filters=FilterConfig(max_tokens=40),
                                                               eval_fraction=0.0), count_tokens=per_message)
    assert built.report.dropped["too long"] == 10  # weather rows (and the duplicate) have 5 messages, code rows 3
    assert built.report.families == {"code": 4}


def test_unknown_run_is_named(filled: Store) -> None:
    with pytest.raises(DatasetError, match="unknown run.*nope.*known runs: expert, other"):
        build_sft(str(filled.path), ["nope"])


def test_save_and_load_back(filled: Store, tmp_path: Path) -> None:
    built = build_sft(str(filled.path), ["expert"], SFTOptions(eval_fraction=0.25))
    out = save_dataset(built, tmp_path / "sft")
    dd = load_from_disk(str(out))
    assert set(dd) == {"train", "eval"}
    assert dd["train"][0] == built.splits["train"][0]
    lines = (out / "train.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == built.splits["train"][0]
    card = (out / "README.md").read_text()
    assert "| not passed | 1 |" in card and "| bearer_token | 1 |" in card
    assert json.loads((out / "report.json").read_text())["kept"] == built.report.kept


def test_grpo_rows_carry_the_task(filled: Store, tmp_path: Path) -> None:
    built = build_grpo(str(filled.path), [], GRPOOptions(eval_fraction=0.0, dedup=False))
    rows = {r["task"]["id"]: r for r in built.splits["train"]}
    assert len(rows) == 16  # one row per task across both runs
    row = rows["weather-0"]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["tools"][0]["function"]["name"] == "weather__get_weather"
    assert row["task"]["verifier"]["type"] == "contains"
    out = save_dataset(built, tmp_path / "grpo")
    assert load_from_disk(str(out))["train"][0]["task"]["id"] == built.splits["train"][0]["task"]["id"]


def test_grpo_drops_tasks_whose_reward_never_varies(filled: Store) -> None:
    built = build_grpo(str(filled.path), [], GRPOOptions(drop_constant_reward=True, eval_fraction=0.0))
    assert [r["task"]["id"] for r in built.splits["train"]] == ["weather-0"]  # 12.0, 12.0 and 1.0
    assert built.report.dropped == {"task: reward never varies": 15}


def test_grpo_with_one_sample_per_task_names_the_cause(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    for i, city in enumerate(CITIES[:3]):  # one episode per task: a reward cannot vary
        add_episode("run", f"weather-{i}", "weather", weather_messages(city, 10 + i), reward=12.0 - i)
    with pytest.raises(DatasetError) as err:
        build_grpo(str(store.path), [], GRPOOptions(drop_constant_reward=True, eval_fraction=0.0))
    message = str(err.value)
    assert "3 of 3 tasks have one finished episode" in message and "--samples" in message
    assert "leave out --drop-constant-reward" in message and "--min-reward" not in message


def test_grpo_prompts_are_scrubbed_and_deduplicated(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123"
    leaky = weather_messages("Paris", 10)
    leaky[1] = {"role": "user", "content": f"My key is {secret}. How warm is Paris?", "password": "hunter2"}
    add_episode("r", "leaky", "weather", leaky)
    for i in range(3):  # three task ids, one prompt and one workspace: one task
        add_episode("r", f"same-{i}", "weather", weather_messages("Oslo", 10 + i))
    add_episode("r", "other", "weather", weather_messages("Lima", 10))
    built = build_grpo(str(store.path), ["r"], GRPOOptions(eval_fraction=0.0))
    rows = {r["task"]["id"]: r for r in built.splits["train"]}
    assert set(rows) == {"leaky", "same-0", "other"}
    assert built.report.dropped == {"exact duplicate": 2}
    assert built.report.secrets == {"openai_key": 1}  # counted in the prompt (the task's copy is scrubbed too)
    row = rows["leaky"]
    assert secret not in json.dumps(row) and "hunter2" not in json.dumps(row)
    assert row["prompt"][1]["content"] == "My key is [REDACTED:openai_key]. How warm is Paris?"
    assert row["task"]["messages"][1]["content"] == row["prompt"][1]["content"]  # the task's copy too
    assert row["task"]["verifier"] == {"type": "contains", "expected": "degrees"}  # what is checked is untouched
    unscrubbed = build_grpo(str(store.path), ["r"], GRPOOptions(eval_fraction=0.0, scrub=False, dedup=False))
    assert len(unscrubbed.splits["train"]) == 5 and secret in json.dumps(unscrubbed.splits["train"])
