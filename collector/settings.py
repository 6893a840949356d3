"""Environment settings of the collector: one `BaseSettings`, prefix `MCPGYM_`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CollectorSettings"]


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "mcpgym"


class CollectorSettings(BaseSettings):
    """All collector settings. Example: `MCPGYM_CALL_TIMEOUT_S=30 MCPGYM_MAX_TOOL_OUTPUT_CHARS=8000 mcpgym collect ...`.

    Attributes:
        data_dir: shared cache directory (models, indexes); `MCPGYM_DATA_DIR`.
        model_cache_dir: where converted local checkpoints live (default `<data_dir>/models`).
        workspace_root: parent of the run-scoped workspace roots of the collector-managed server (default: a
            temporary directory, removed at the end unless `keep_workspaces`).
        keep_workspaces: keep the managed server's workspaces after the run (for debugging).
        call_timeout_s: timeout of one MCP tool call; a timed-out call is a tool error the model can read.
        step_timeout_s: timeout of one policy step (one assistant turn); a timeout fails the episode.
        connect_timeout_s: timeout of opening an MCP session (or asking an HTTP server its revision) and listing its
            tools.
        server_start_timeout_s: how long to wait for the managed server's `/healthz`.
        max_tool_output_chars: tool outputs longer than this are truncated with a visible marker.
        mcp_mode: MCP protocol negotiation: `auto` (probe, fall back to the initialize handshake) or `legacy`.
        mcp_client: how an episode reaches an HTTP server: `auto` (sessionless requests, one POST per call, to a
            server that speaks MCP 2026-07-28, asked once with `server/discover`; the MCP SDK's client session
            otherwise) or `sdk` (always the SDK's client session). stdio servers and `mcp_mode=legacy` always use
            the SDK's session.
        tool_descriptions: what the model is shown of each tool's and argument's description: `full`, or `short`
            (the first sentence of each; shorter prompts, see `collector.tools.mcp_tool_to_openai`).
        openai_timeout_s: HTTP timeout of one chat-completions request.
        openai_max_retries: retries on 429, 5xx and connection errors (exponential backoff).
        openai_backoff_s: first backoff delay; doubles each retry, capped at `openai_backoff_max_s`.
        openai_backoff_max_s: largest backoff delay.
    """

    model_config = SettingsConfigDict(env_prefix="MCPGYM_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    model_cache_dir: Path | None = None
    workspace_root: Path | None = None
    keep_workspaces: bool = False
    call_timeout_s: float = Field(default=60.0, gt=0)
    step_timeout_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    server_start_timeout_s: float = Field(default=60.0, gt=0)
    max_tool_output_chars: int = Field(default=16_000, ge=200)
    mcp_mode: Literal["auto", "legacy"] = "auto"
    mcp_client: Literal["auto", "sdk"] = "auto"
    tool_descriptions: Literal["full", "short"] = "full"
    openai_timeout_s: float = Field(default=120.0, gt=0)
    openai_max_retries: int = Field(default=4, ge=0)
    openai_backoff_s: float = Field(default=0.5, ge=0)
    openai_backoff_max_s: float = Field(default=20.0, ge=0)

    @property
    def models_dir(self) -> Path:
        """The directory of converted local model checkpoints."""
        return self.model_cache_dir or self.data_dir / "models"
