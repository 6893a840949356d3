"""The task model: a task is data (messages, servers it needs, workspace setup, verifier spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.verifiers.spec import VERIFIER_TYPES, VerifierSpec, VerifyContext

__all__ = ["VERIFIER_TYPES", "Task", "VerifierSpec", "VerifyContext"]  # the verifier's types live in verifiers.spec


class Task(BaseModel):
    """One task. `messages` are OpenAI chat messages (system and user) that open the episode."""

    model_config = ConfigDict(extra="forbid")

    id: str
    family: str
    split: Literal["train", "test"] = "train"
    messages: list[dict[str, Any]]
    servers: list[str] = Field(default_factory=list)
    setup_files: dict[str, str] = Field(default_factory=dict)
    optimal_steps: int = 1  # tool calls a good solution makes: the efficiency and tool-use rewards measure against it
    verifier: VerifierSpec
    metadata: dict[str, Any] = Field(default_factory=dict)
