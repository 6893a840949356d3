"""The task model: a task is data (messages, servers it needs, workspace setup, verifier spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    # server -> the MCP tool names of that server offered to the model; a server not listed offers all its tools
    tools: dict[str, list[str]] = Field(default_factory=dict)
    setup_files: dict[str, str] = Field(default_factory=dict)
    optimal_steps: int = 1  # tool calls a good solution makes: the efficiency and tool-use rewards measure against it
    verifier: VerifierSpec
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_tools(self) -> Task:
        stray = [s for s in self.tools if s not in self.servers]
        if stray:
            raise ValueError(f"task {self.id!r}: tools lists server(s) {stray} that are not in its servers "
                             f"{self.servers}; list tools only of the task's servers")
        empty = [s for s, names in self.tools.items() if not names]
        if empty:
            raise ValueError(f"task {self.id!r}: tools offers no tool of server(s) {empty}; list at least one tool "
                             "or leave the server out (it then offers all its tools)")
        return self
