"""TRL trainers: SFT and GRPO run configs, hardware profiles."""

from training.trainers.common import PROFILES, Profile
from training.trainers.grpo import GRPORunConfig, train_grpo
from training.trainers.sft import SFTRunConfig, train_sft

__all__ = ["PROFILES", "GRPORunConfig", "Profile", "SFTRunConfig", "train_grpo", "train_sft"]
