"""What collection records is what GRPO rewards, and what GRPO shows is what SFT shows.

Episodes are collected by the real loop through the collector-managed `mcpgym serve all` into a real SQLite store:
scripted experts on every built-in family, the real SmolLM2 as local policy, and malformed outputs. Each one is
then handed to the TRL reward functions as TRL would hand it (each assistant turn rendered with the chat template
and read back with TRL's `parse_response`), its calls replayed through the real MCP environment as TRL's tool loop
calls it; the rewards must equal the stored ones, component by component. The GRPO prompt is rendered by a real
`GRPOTrainer` with the MCP environment and must tokenize like the SFT row of the same task, including the tasks
that offer a subset of their servers' tools (weather, files, search) next to one that offers them all (code).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from text_policy import TextPolicy

from collector.chat_template import render_prompt, to_training_messages
from collector.collect import CollectConfig, run_collection
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks.model import Task
from training.datasets import GRPOOptions, SFTOptions, build_grpo, build_sft
from training.datasets.filters import FilterConfig
from training.environment import MCPEnvironmentFactory, task_environment_key, use_mcp_schemas
from training.rewards import reward_functions
from training.trainers.common import get_profile, load_model

pytestmark = pytest.mark.slow

FAMILIES = ("weather", "files", "search", "code")
COMPONENT = {"success_reward": "success", "efficiency_reward": "efficiency", "tool_use_reward": "tool_use",
             "format_reward": "format", "code_tests_reward": "code"}


def _malformed_script(task: Task, turn: int) -> str:
    if turn > 0:
        return "I could not find out."
    if task.family == "weather":
        return ('<tool_call>{"name": "get_current_weather", "arguments": {"location": "Paris"}}</tool_call>\n'
                '<tool_call>{"name": "get_current_weather", "arguments": {"location": </tool_call>\n'
                '<tool_call>{"name": "get_current_weather", "arguments": {"location": 7}}</tool_call>')
    return ('<tool_call>{"name": "read_text_file", "arguments": {"path": "no/such/file.txt"}}</tool_call>\n'
            '<tool_call>{"name": "write_file", "arguments": {"path": "x.txt"}}</tool_call>\n'
            '<tool_call>{"name": "list_directory", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "read_text_file", "arguments": {"path": "a.txt"}')


@pytest.fixture(scope="module")
def tokenizer_and_model() -> tuple[Any, Any]:
    model, tokenizer = load_model(None, get_profile("cpu"), padding_side="left")
    return tokenizer, model


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, tokenizer_and_model: tuple[Any, Any]) -> Path:
    """A trajectory store with scripted, local-policy and malformed episodes, recorded by the real loop."""
    from collector.policies.local import LocalPolicy

    root = tmp_path_factory.mktemp("parity")
    settings = CollectorSettings(workspace_root=root / "ws", step_timeout_s=900.0)  # a loaded CPU is slow
    db = root / "episodes.db"
    runs = [
        CollectConfig(db=db, run="gold", tasks=list(FAMILIES), policy="scripted", limit=8, concurrency=4, seed=5,
                      split="train", settings=settings),
        CollectConfig(db=db, run="bad", tasks=["weather", "files"], policy_instance=TextPolicy(
            script=_malformed_script), limit=2, concurrency=2, seed=5, split="train", settings=settings),
    ]
    tokenizer, model = tokenizer_and_model
    local = LocalPolicy(max_new_tokens=32, temperature=0.0, batch_size=1, loaded=(model, tokenizer))
    runs.append(CollectConfig(db=db, run="local", tasks=["weather"], policy_instance=local, limit=1,
                              max_turns=2, seed=5, split="train", settings=settings))
    for config in runs:
        summary = run_collection(config)
        assert summary.done > 0 and summary.failed == 0, (config.run, summary.errors)
    return db


@pytest.fixture(scope="module")
def factory(recorded: Path) -> Iterator[MCPEnvironmentFactory]:
    f = MCPEnvironmentFactory(settings=CollectorSettings(workspace_root=recorded.parent / "grpo-ws"))
    yield f
    f.close()


def _as_trl(tokenizer: Any, prompt: list[dict[str, Any]], after: list[dict[str, Any]], tools: list[dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """The completion as TRL hands it to reward functions: each assistant turn's text read by `parse_response`."""
    from trl.chat_template_utils import parse_response

    completion: list[dict[str, Any]] = []
    history = list(prompt)
    for message in after:
        if message["role"] == "assistant":
            prefix = render_prompt(tokenizer, history, tools)
            full = tokenizer.apply_chat_template(to_training_messages([*history, message]), tools=tools or None,
                                                 tokenize=False)
            assert full.startswith(prefix)
            text = full[len(prefix):]
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            completion.append(parse_response(tokenizer, ids, prefix=prefix_ids, tools=tools))
        else:
            completion.append({"role": "tool", "name": message.get("name"), "content": message.get("content")})
        history.append(message)
    return completion


def _replay(env: Any, completion: list[dict[str, Any]]) -> None:
    """Run the completion's calls through the environment as TRL's tool loop does (and as collection ran them)."""
    from collector.episode import read_completion

    methods = {n for n in dir(type(env)) if not n.startswith("_") and n not in ("reset", "state")}
    for call in read_completion(completion, env.state.index).calls:
        if call.name not in methods or (call.from_text and call.malformed):
            continue  # an unoffered name is never dispatched; an unreadable block never ran
        arguments = call.arguments if call.arguments is not None else {}
        getattr(env, call.name)(**arguments)


def test_trl_rewards_equal_the_recorded_rewards_component_by_component(
        recorded: Path, factory: MCPEnvironmentFactory, tokenizer_and_model: tuple[Any, Any]) -> None:
    tokenizer, _ = tokenizer_and_model
    funcs, weights = reward_functions(allow_untrusted_tests=True)
    store = Store(recorded, readonly=True)
    checked: dict[str, int] = {}
    malformed_seen = 0
    try:
        for episode in store.episodes(["gold", "bad", "local"]):
            if episode["status"] != "done":
                continue
            task = episode["task"]
            messages = store.messages(episode["id"])
            opening = len(task["messages"])
            prompt, after = messages[:opening], messages[opening:]
            tools = episode["tools"] or []
            completion = _as_trl(tokenizer, prompt, after, tools)
            env = factory.environment_class(task["servers"], task.get("tools"))()
            env.reset(prompt=prompt, task=task, tools=tools)
            _replay(env, completion)
            stored = episode["reward_components"]
            got: dict[str, float] = {}
            for fn, weight in zip(funcs, weights, strict=True):
                [value] = fn([completion], task=[task], tools=[tools], environments=[env])
                if value is not None:
                    got[COMPONENT[fn.__name__]] = weight * value
            env.state.close()
            assert got == pytest.approx(stored), (episode["run_id"], task["id"], got, stored)
            assert sum(got.values()) == pytest.approx(episode["reward"])
            key = f"{episode['run_id']}:{episode['family']}"
            checked[key] = checked.get(key, 0) + 1
            malformed_seen += int(episode["malformed_calls"] or 0)
    finally:
        store.close()
    assert {f"gold:{f}" for f in FAMILIES} <= set(checked), checked
    assert "bad:weather" in checked and "bad:files" in checked and "local:weather" in checked, checked
    assert malformed_seen >= 4  # the malformed run's blocks were recorded, and scored the same


def test_grpo_prompts_tokenize_like_sft_rows_for_every_family(
        recorded: Path, factory: MCPEnvironmentFactory, tokenizer_and_model: tuple[Any, Any]) -> None:
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    tokenizer, model = tokenizer_and_model
    sft = build_sft(str(recorded), ["gold"], SFTOptions(eval_fraction=0.0, dedup=False,
                                                        filters=FilterConfig(min_reward=None)))
    grpo = build_grpo(str(recorded), ["gold"], GRPOOptions(eval_fraction=0.0))
    sft_by_prompt = {}
    for row in sft.splits["train"]:
        first = next(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
        sft_by_prompt[str(row["messages"][:first])] = (row["messages"][:first], row["tools"])
    args = GRPOConfig(output_dir=str(recorded.parent / "trainer"), max_steps=1, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=8, report_to="none",
                      **get_profile("cpu").trainer_kwargs(generates=True))
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
                          train_dataset=_dataset(grpo.splits["train"]), processing_class=tokenizer,
                          environment_factory=dict(factory.factories_for(r["task"] for r in grpo.splits["train"])))
    use_mcp_schemas(trainer, factory)
    families = set()
    subsets = set()
    for row in grpo.splits["train"]:
        opening = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
        match = sft_by_prompt.get(str(to_training_messages(opening)))
        if match is None:
            continue
        sft_messages, sft_tools = match
        trainer._batch_environments = [task_environment_key(row["task"])]
        grpo_ids = trainer._tokenize_prompts([row["prompt"]])[0][0]
        offered = [t["function"]["name"] for t in trainer._env_tools[task_environment_key(row["task"])]]
        assert offered == [t["function"]["name"] for t in sft_tools]
        subset = row["task"].get("tools") or {}
        if subset:  # the GRPO prompt shows the task's subset, as collection and the SFT row do
            assert sorted(offered) == sorted(n for names in subset.values() for n in names), row["task"]["id"]
            subsets.add(row["task"]["family"])
        sft_ids = tokenizer.apply_chat_template(sft_messages, tools=sft_tools or None, add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
        assert list(grpo_ids) == list(sft_ids), row["task"]["id"]
        families.add(row["task"]["family"])
    assert families == set(FAMILIES)
    assert subsets == {"weather", "files", "search"}  # code (HumanEval) offers every exec tool


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset, Features, Json, List, Value

    features = Features({"prompt": List(Json()), "task": Json(), "environment": Value("string")})
    return Dataset.from_list([{"prompt": r["prompt"], "task": r["task"],
                               "environment": task_environment_key(r["task"])} for r in rows], features=features)
