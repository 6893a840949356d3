"""Environment settings of training: one `BaseSettings`, prefix `MCPGYM_TRAIN_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TrainingSettings"]


def _default_output_dir() -> Path:
    return Path.home() / ".cache" / "mcpgym" / "training"


class TrainingSettings(BaseSettings):
    """Defaults for dataset building, training and evaluation. Example: `MCPGYM_TRAIN_SEED=7 mcpgym dataset sft ...`.

    Attributes:
        output_dir: where `train` writes checkpoints when `--out` is not given.
        seed: seed for mixing, splitting and training.
        min_reward: default reward threshold for SFT episodes.
        dedup_threshold: default MinHash LSH Jaccard threshold for near-duplicates.
        num_perm: MinHash permutations.
        token_model: model (name or path) whose tokenizer measures lengths; None = the default local model.
    """

    model_config = SettingsConfigDict(env_prefix="MCPGYM_TRAIN_", extra="ignore")

    output_dir: Path = Field(default_factory=_default_output_dir)
    seed: int = 0
    min_reward: float = 0.0
    dedup_threshold: float = 0.9
    num_perm: int = 128
    token_model: str | None = None
