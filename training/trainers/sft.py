"""SFT: a thin layer over TRL's SFTTrainer with assistant-only loss and the project's chat template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import TrainerConfigError
from training.trainers.common import (
    config_dict,
    get_profile,
    is_main_process,
    load_model,
    load_splits,
    lora_config,
    save_checkpoint,
)

__all__ = ["SFTRunConfig", "train_sft"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTRunConfig:
    """Options of `mcpgym train sft`.

    Attributes:
        data: dataset directory from `mcpgym dataset sft`.
        out: where the final checkpoint is written.
        model: built-in model name or checkpoint directory (None: smollm2-135m).
        profile: "cpu" or "gpu".
        lora: train LoRA adapters (merged into the saved checkpoint) instead of every weight.
        epochs: passes over the data (ignored when max_steps is set).
        max_steps: stop after this many optimizer steps (None: run the epochs).
        batch_size: sequences per device per step.
        grad_accum: gradient accumulation steps.
        learning_rate: peak learning rate.
        max_length: truncate sequences to this many tokens.
        seed: random seed.
        logging_steps: log the loss every N steps.
        eval: evaluate the loss on the eval split at the end of each epoch (when the dataset has one).
        gradient_checkpointing: recompute activations in the backward pass (None: the profile's choice).
        precision: "auto", "fp32" or "bf16" (see `Profile.mixed_bf16`).
    """

    data: Path
    out: Path
    model: str | None = None
    profile: str = "cpu"
    lora: bool = False
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 5e-5
    max_length: int = 2048
    seed: int = 0
    logging_steps: int = 5
    eval: bool = False
    gradient_checkpointing: bool | None = None
    precision: str = "auto"


def train_sft(config: SFTRunConfig, *, callbacks: Sequence[Any] = ()) -> Path:
    """Fine-tune a model on an SFT dataset and save the checkpoint (model + tokenizer with the chat template).

    Args:
        config: the run options.
        callbacks: transformers `TrainerCallback`s to add (e.g. a progress display).

    Returns:
        The checkpoint directory (`config.out`).

    Raises:
        TrainerConfigError: bad data directory, model or profile.
    """
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    profile = get_profile(config.profile)
    if config.batch_size < 1 or config.grad_accum < 1:
        raise TrainerConfigError("batch size and gradient accumulation must be at least 1")
    train, held = load_splits(config.data, ("messages", "tools"))
    model, tokenizer = load_model(config.model, profile, padding_side="right")
    use_eval = config.eval and held is not None and len(held) > 0
    args = SFTConfig(
        output_dir=str(config.out / "trainer"),
        assistant_only_loss=True,
        max_length=config.max_length,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if use_eval else "no",
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        **profile.trainer_kwargs(config.gradient_checkpointing, config.precision),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=held if use_eval else None,
        processing_class=tokenizer,
        peft_config=lora_config(config.lora),
        callbacks=list(callbacks) or None,
    )
    result = trainer.train()
    if is_main_process(trainer):  # one log line per run, not one per process
        logger.info("SFT finished: %s", result.metrics)
    run = {"kind": "sft", **config_dict(config), "metrics": result.metrics, "log": trainer.state.log_history}
    return save_checkpoint(trainer, tokenizer, config.out, run)
