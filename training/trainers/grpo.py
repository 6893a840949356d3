"""GRPO: a thin layer over TRL's GRPOTrainer with the MCP environment and the project's reward functions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.servers import ServerSpec
from training.environment import MCPEnvironmentFactory, task_environment_key, use_mcp_schemas
from training.errors import TrainerConfigError
from training.rewards import RewardWeights, reward_functions
from training.trainers.common import (
    config_dict,
    get_profile,
    load_model,
    load_splits,
    lora_config,
    save_checkpoint,
    uses_vllm,
)

__all__ = ["GRPORunConfig", "train_grpo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRPORunConfig:
    """Options of `mcpgym train grpo`.

    Attributes:
        data: dataset directory from `mcpgym dataset grpo`.
        out: where the final checkpoint is written.
        model: built-in model name or checkpoint directory (e.g. an SFT checkpoint; None: smollm2-135m).
        profile: "cpu" or "gpu" (vLLM generation, bf16).
        lora: train LoRA adapters (merged into the saved checkpoint).
        max_steps: optimizer steps.
        num_generations: completions per prompt (the group of GRPO).
        batch_size: completions per device per step (a multiple of num_generations).
        max_completion_length: tokens generated per completion, tool results included.
        max_tool_calls: tool-calling rounds per rollout.
        learning_rate: peak learning rate.
        beta: KL coefficient (0 drops the reference model, the TRL default).
        temperature: sampling temperature.
        weights: reward weights.
        seed: random seed.
        logging_steps: log every N steps.
        allow_untrusted_tests: score code with unit-test reports not marked trusted (see `training.rewards`).
        gradient_checkpointing: recompute activations in the backward pass (None: the profile's choice).
        precision: "auto", "fp32" or "bf16" (see `Profile.mixed_bf16`).
        save_steps: also save the model every N steps before the last, as `out/step-N` (0: only at the end); each
            loads like the final checkpoint, so one run gives a learning curve (`scripts/grpo_sweep.sh`).
    """

    data: Path
    out: Path
    model: str | None = None
    profile: str = "cpu"
    lora: bool = False
    max_steps: int = 50
    num_generations: int = 4
    batch_size: int = 4
    max_completion_length: int = 256
    max_tool_calls: int = 4
    learning_rate: float = 1e-6
    beta: float = 0.0
    temperature: float = 1.0
    weights: RewardWeights = field(default_factory=RewardWeights)
    seed: int = 0
    logging_steps: int = 1
    allow_untrusted_tests: bool = False
    gradient_checkpointing: bool | None = None
    precision: str = "auto"
    save_steps: int = 0


def _with_environment(dataset: Any) -> Any:
    """Add the `environment` column (the task's server set and tool subset) that routes each row to its environment."""
    return dataset.map(lambda row: {"environment": task_environment_key(row["task"])})


def _step_saver(trainer: Any, tokenizer: Any, config: GRPORunConfig) -> Any:
    """A callback that saves `out/step-N` every `config.save_steps` steps before the last (the run record so far)."""
    from transformers import TrainerCallback

    saved: set[int] = set()

    class StepSaver(TrainerCallback):
        # on_log, not on_step_end: the trainer logs a step after its step-end callbacks, and the record should hold it
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = int(state.global_step)
            if step % config.save_steps or step >= config.max_steps or step in saved:
                return
            saved.add(step)
            run = {"kind": "grpo", **config_dict(config), "step": step, "log": list(state.log_history)}
            save_checkpoint(trainer, tokenizer, config.out / f"step-{step}", run, during_training=True)
            logger.info("saved the step-%d checkpoint to %s", step, config.out / f"step-{step}")

    return StepSaver()


def train_grpo(config: GRPORunConfig, *, servers: Mapping[str, ServerSpec] | None = None) -> Path:
    """Train with GRPO against the live MCP servers and save the checkpoint.

    Args:
        config: the run options.
        servers: MCP servers to use (None: the collector's managed `mcpgym serve all` gateway, as in collection).

    Returns:
        The checkpoint directory (`config.out`).

    Raises:
        TrainerConfigError: bad data, model, profile or batch shape.
        EnvironmentSetupError: the MCP servers cannot be started or listed.
    """
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    profile = get_profile(config.profile)
    if config.save_steps < 0 or config.save_steps % config.logging_steps:
        raise TrainerConfigError(f"save_steps must be 0 (only the final checkpoint) or a positive multiple of "
                                 f"logging_steps ({config.logging_steps}), not {config.save_steps}")
    if config.num_generations < 2:
        raise TrainerConfigError("num_generations must be at least 2 (GRPO compares completions of one prompt)")
    if config.batch_size % config.num_generations:
        raise TrainerConfigError(
            f"batch size {config.batch_size} must be a multiple of num_generations {config.num_generations}"
        )
    train, _ = load_splits(config.data, ("prompt", "task"))
    train = _with_environment(train)
    model, tokenizer = load_model(config.model, profile, padding_side="left")
    funcs, weights = reward_functions(config.weights, allow_untrusted_tests=config.allow_untrusted_tests)
    args = GRPOConfig(
        output_dir=str(config.out / "trainer"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        max_tool_calling_iterations=config.max_tool_calls,
        learning_rate=config.learning_rate,
        beta=config.beta,
        temperature=config.temperature,
        reward_weights=weights,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_vllm=uses_vllm(profile),
        vllm_mode="colocate",
        **profile.trainer_kwargs(config.gradient_checkpointing, config.precision, generates=True),
    )
    factory = MCPEnvironmentFactory(servers)
    try:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=list[Any](funcs),
            args=args,
            train_dataset=train,
            processing_class=tokenizer,
            peft_config=lora_config(config.lora),
            environment_factory=dict[str, Any](factory.factories_for(train["task"])),
        )
        use_mcp_schemas(trainer, factory)  # prompts show the MCP tools' own schemas, as in collection and SFT
        if config.save_steps:
            trainer.add_callback(_step_saver(trainer, tokenizer, config))
        result = trainer.train()
        run = {"kind": "grpo", **config_dict(config), "metrics": result.metrics, "log": trainer.state.log_history}
        return save_checkpoint(trainer, tokenizer, config.out, run)
    finally:
        factory.close()
