"""Episode quality filters: each returns None to keep an episode, or the reason it was dropped."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.episode import MALFORMED_KINDS
from training.datasets.records import EpisodeRecord
from training.datasets.scrub import find_secrets

__all__ = [
    "FilterConfig",
    "TokenCounter",
    "apply_filters",
    "check_code",
    "check_format",
    "check_length",
    "check_reward",
    "check_status",
    "check_tool_errors",
    "check_turns",
    "extract_solution",
]

TokenCounter = Callable[[list[dict[str, Any]], list[dict[str, Any]]], int]

_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class FilterConfig:
    """Which SFT episodes to keep. None disables a limit.

    Attributes:
        require_passed: keep only episodes the verifier passed.
        min_reward: keep only episodes whose reward is at least this.
        max_turns: drop episodes with more assistant turns than this.
        max_tool_error_rate: drop episodes whose share of failing tool calls is above this (0..1).
        require_valid_format: drop episodes with a call the model wrote wrongly (an unoffered tool, non-JSON or
            schema-invalid arguments, an unreadable `<tool_call>` block), as collection recorded it.
        max_tokens: drop episodes longer than this many tokens (rendered with the chat template).
        code_families: families whose final solution must parse as Python and carry no secrets.
    """

    require_passed: bool = True
    min_reward: float | None = 0.0
    max_turns: int | None = None
    max_tool_error_rate: float | None = None
    require_valid_format: bool = True
    max_tokens: int | None = None
    code_families: tuple[str, ...] = ("code",)


def check_status(record: EpisodeRecord) -> str | None:
    """Drop episodes that did not finish (`failed` status)."""
    status = record.episode.get("status")
    return None if status == "done" else f"status {status}"


def check_reward(record: EpisodeRecord, require_passed: bool, min_reward: float | None) -> str | None:
    """Drop episodes the verifier failed, or whose reward is under `min_reward`."""
    if require_passed and not record.episode.get("passed"):
        return "not passed"
    if min_reward is not None and record.reward < min_reward:
        return "reward below threshold"
    return None


def check_turns(record: EpisodeRecord, max_turns: int | None) -> str | None:
    """Drop episodes with more assistant turns than `max_turns`."""
    if max_turns is None:
        return None
    turns = record.episode.get("turns") or sum(1 for m in record.messages if m["role"] == "assistant")
    return "too many turns" if int(turns) > max_turns else None


def check_tool_errors(record: EpisodeRecord, max_rate: float | None) -> str | None:
    """Drop episodes whose tool-error rate (failing calls / calls) is above `max_rate`."""
    if max_rate is None:
        return None
    calls = int(record.episode.get("tool_calls") or len(record.tool_calls))
    if calls == 0:
        return None
    errors = record.episode.get("tool_errors")
    if errors is None:
        errors = sum(1 for c in record.tool_calls if c.get("is_error"))
    return "tool error rate" if int(errors) / calls > max_rate else None


def check_format(record: EpisodeRecord) -> str | None:
    """Drop episodes in which the model wrote a call wrongly.

    The verdict on each call is the one collection recorded (`tool_calls.error_kind`, read by the episode core's
    rules when the call was made); it is not judged again here, so a dataset keeps exactly the episodes whose
    calls the reward counted as well formed.
    """
    if any(c.get("error_kind") in MALFORMED_KINDS or c.get("malformed") for c in record.tool_calls):
        return "invalid tool call"
    if record.episode.get("malformed_calls") or any(m.get("malformed") for m in record.messages):
        return "malformed output"
    return None


def check_length(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int | None, count: TokenCounter | None
) -> str | None:
    """Drop rows longer than `max_tokens` as counted by `count` (the tokenizer with the chat template)."""
    if max_tokens is None or count is None:
        return None
    return "too long" if count(messages, tools) > max_tokens else None


def extract_solution(record: EpisodeRecord) -> str | None:
    """The code of a code-family episode's final solution: the file the verifier reads, else the final answer."""
    verifier = record.task.get("verifier") or {}
    path = verifier.get("solution_path")
    if path:
        for msg in reversed(record.messages):
            for call in reversed(msg.get("tool_calls") or []):
                args = call.get("function", {}).get("arguments")
                try:
                    parsed = json.loads(args) if isinstance(args, str) else args
                except json.JSONDecodeError:
                    continue
                if isinstance(parsed, dict) and str(parsed.get("path", "")).lstrip("./") == path.lstrip("./"):
                    content = parsed.get("content")
                    if isinstance(content, str):
                        return content
    answer = record.episode.get("final_answer")
    if not answer:
        finals = [m for m in record.messages if m["role"] == "assistant" and m.get("content")]
        answer = finals[-1]["content"] if finals else None
    if not answer:
        return None
    blocks = _CODE_BLOCK.findall(answer)
    return blocks[-1] if blocks else str(answer)


def check_code(record: EpisodeRecord) -> str | None:
    """For code episodes: the final solution must exist, parse as Python and carry no secrets."""
    code = extract_solution(record)
    if code is None:
        return "code: no solution"
    try:
        ast.parse(code)
    except SyntaxError:
        return "code: does not parse"
    if find_secrets(code):
        return "code: secret in solution"
    return None


def apply_filters(record: EpisodeRecord, config: FilterConfig) -> str | None:
    """Run the episode-level filters in order; the first reason to drop wins."""
    checks: list[Callable[[], str | None]] = [
        lambda: check_status(record),
        lambda: check_reward(record, config.require_passed, config.min_reward),
        lambda: check_turns(record, config.max_turns),
        lambda: check_tool_errors(record, config.max_tool_error_rate),
        lambda: check_format(record) if config.require_valid_format else None,
        lambda: check_code(record) if record.family in config.code_families else None,
    ]
    for check in checks:
        reason = check()
        if reason:
            return reason
    return None
