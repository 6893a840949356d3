"""A real one-step GRPO run of SmolLM2-135M on the CPU, with the MCP environment over a stdio weather server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from collector.servers import ServerSpec
from collector.store import Store
from training.datasets import GRPOOptions, build_grpo, save_dataset
from training.errors import TrainerConfigError
from training.trainers.grpo import GRPORunConfig, train_grpo

pytestmark = pytest.mark.slow

WEATHER = {"weather": ServerSpec(name="weather", command=sys.executable,
                                 args=("-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"))}


@pytest.fixture
def grpo_data(store: Store, add_episode, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    tool = {"type": "function", "function": {"name": "get_current_weather", "description": "Weather now.",
                                             "parameters": {"type": "object", "properties": {
                                                 "location": {"type": "string"}}, "required": ["location"]}}}
    messages = [
        {"role": "user", "content": "Is it raining in Oslo right now? Use the tools."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_current_weather", "arguments": json.dumps({"location": "Oslo"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Oslo: light rain, 7 °C"},
        {"role": "assistant", "content": "Yes, light rain in Oslo."},
    ]
    add_episode("expert", "weather-oslo", "weather", messages, tools=[tool],
                verifier={"type": "contains", "expected": ["rain", "dry"]})
    built = build_grpo(str(store.path), ["expert"], GRPOOptions(eval_fraction=0.0))
    row = built.splits["train"][0]
    row["task"]["servers"] = ["weather"]
    return save_dataset(built, tmp_path / "grpo")


def test_grpo_with_the_mcp_environment_and_a_checkpoint_per_step(grpo_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    config = GRPORunConfig(data=grpo_data, out=out, max_steps=2, num_generations=2, batch_size=2,
                           max_completion_length=24, max_tool_calls=1, learning_rate=1e-5, save_steps=1)
    assert train_grpo(config, servers=WEATHER) == out
    run = json.loads((out / "mcpgym-train.json").read_text())
    assert run["kind"] == "grpo" and run["save_steps"] == 1
    logged = run["log"][0]
    assert "rewards/success_reward/mean" in logged and "rewards/format_reward/mean" in logged
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    # the step-1 checkpoint: loadable like the final one, with the run record up to its step; the last step is `out`
    step = json.loads((out / "step-1" / "mcpgym-train.json").read_text())
    assert step["step"] == 1 and [e["step"] for e in step["log"]] == [1]
    assert (out / "step-1" / "config.json").is_file() and (out / "step-1" / "tokenizer_config.json").is_file()
    assert (out / "step-1" / "model.safetensors").is_file()
    assert sorted(p.name for p in out.glob("step-*")) == ["step-1"]


def test_batch_shape_is_checked(grpo_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainerConfigError, match="multiple of num_generations"):
        train_grpo(GRPORunConfig(data=grpo_data, out=tmp_path, num_generations=4, batch_size=6), servers=WEATHER)
    with pytest.raises(TrainerConfigError, match="not a dataset directory"):
        train_grpo(GRPORunConfig(data=grpo_data.parent / "missing", out=tmp_path), servers=WEATHER)
    with pytest.raises(TrainerConfigError, match="save_steps must be 0"):
        train_grpo(GRPORunConfig(data=grpo_data, out=tmp_path, save_steps=-1), servers=WEATHER)
