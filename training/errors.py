"""Errors raised by training: datasets, rewards, the GRPO environment, trainers and evaluation.

    TrainingError                  base of everything below; the CLI turns it into a clean message
    ├── DatasetError               bad dataset options or input (unknown run, bad proportions, empty result)
    ├── RewardError                a reward function was given completions it cannot score
    ├── EnvironmentSetupError      the MCP GRPO environment could not start, list tools or prepare a workspace
    ├── TrainerConfigError         bad trainer options (unknown profile, missing data directory, bad model)
    └── EvaluationError            evaluation could not run (no tasks, unknown model)
"""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "EnvironmentSetupError",
    "EvaluationError",
    "RewardError",
    "TrainerConfigError",
    "TrainingError",
]


class TrainingError(Exception):
    """Base class of the training package's errors."""


class DatasetError(TrainingError):
    """Bad dataset options or input; the message names what was wrong and what is accepted."""


class RewardError(TrainingError):
    """A reward function cannot score what it was given."""


class EnvironmentSetupError(TrainingError):
    """The MCP GRPO environment could not start its servers or prepare a task's workspace."""


class TrainerConfigError(TrainingError):
    """Bad trainer options."""


class EvaluationError(TrainingError):
    """Evaluation could not run."""
