"""Token-level rows from the tokens the policy sampled, and how far re-tokenizing the messages drifts from them.

An episode whose assistant turns carry stored tokens (`Store.message_tokens`) becomes one row per token segment:
`input_ids` (the first turn's prompt, then per turn the tokens it sampled, then what the next prompt adds: tool
results and the template's turn markers), `loss_mask` (1 on the policy's own tokens, 0 on prompts and tool results)
and `logprobs` (the sampling log-probability on the policy's tokens, 0.0 elsewhere). A turn whose prompt does not
begin with the previous prompt and answer (the policy re-rendered the conversation differently from what it had
sampled) starts a new segment: the tokens are never re-tokenized, so no row holds tokens the policy did not see.

The drift report re-tokenizes each such turn with the collector's chat template and counts the turns whose tokens
differ from the stored ones: the gap that training on re-tokenized messages would open between the data and what the
policy sampled (RL importance ratios are computed on the sampled tokens).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from collector.store import Store
from collector.types import Message, OpenAITool

__all__ = ["DriftReport", "episode_token_rows", "turn_drifts", "write_token_rows"]


@dataclass
class DriftReport:
    """How the stored tokens compare with the messages re-tokenized by the chat template.

    Attributes:
        episodes: episodes with stored tokens.
        turns: assistant turns with stored tokens.
        drifted_turns: turns whose re-tokenized form differs from the stored tokens.
        examples: a few drifted turns (episode id, message index, first differing position).
        rows: token-level rows written.
        episodes_without_tokens: selected episodes that carry no tokens (not in the token rows).
    """

    episodes: int = 0
    turns: int = 0
    drifted_turns: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    episodes_without_tokens: int = 0

    @property
    def drift_rate(self) -> float:
        """Drifted turns / turns."""
        return self.drifted_turns / self.turns if self.turns else 0.0


def episode_token_rows(episode: dict[str, Any], turns: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The token-level rows of one episode (see the module docstring).

    Args:
        episode: the episode row (`Store.episodes`).
        turns: its stored tokens by message index (`Store.message_tokens`).
    """
    rows: list[dict[str, Any]] = []
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []

    def flush() -> None:
        if ids:
            rows.append({"episode_id": episode["id"], "run_id": episode["run_id"], "task_id": episode["task_id"],
                         "sample_index": episode["sample_index"], "reward": episode.get("reward"),
                         "segment": len(rows), "input_ids": list(ids), "loss_mask": list(mask),
                         "logprobs": list(logprobs)})
        ids.clear()
        mask.clear()
        logprobs.clear()

    for idx in sorted(turns):
        turn = turns[idx]
        prompt = turn.get("prompt_token_ids")
        if prompt is None:  # the policy did not say what it was prompted with: the turn's tokens alone
            flush()
        elif prompt[: len(ids)] == ids and ids:
            added = prompt[len(ids):]
            ids.extend(added)
            mask.extend([0] * len(added))
            logprobs.extend([0.0] * len(added))
        else:
            flush()
            ids.extend(prompt)
            mask.extend([0] * len(prompt))
            logprobs.extend([0.0] * len(prompt))
        sampled = list(turn["token_ids"])
        ids.extend(sampled)
        mask.extend([1] * len(sampled))
        lps = turn.get("logprobs") or [0.0] * len(sampled)
        logprobs.extend(float(x) for x in lps)
        if prompt is None:
            flush()
    flush()
    return rows


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    return {k: message[k] for k in ("role", "content", "tool_calls", "tool_call_id", "name") if k in message}


def turn_drifts(tokenizer: Any, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None,
                turns: dict[int, dict[str, Any]]) -> list[tuple[int, int]]:
    """The turns whose re-tokenized messages differ from their stored tokens.

    Each assistant message `idx` with stored tokens is rendered with the chat template together with the messages
    before it (as SFT on messages would see it); the stored prompt and sampled tokens must be where the rendering
    puts them (the template may add a newline after the turn's end token).

    Returns:
        (message index, first differing token position) per drifted turn.
    """
    from collector.chat_template import CHAT_TEMPLATE, render_prompt, to_training_messages

    out: list[tuple[int, int]] = []
    for idx in sorted(turns):
        turn = turns[idx]
        history = [_clean(m) for m in messages[:idx]]
        rendered = render_prompt(tokenizer, cast(list[Message], history), cast(list[OpenAITool], list(tools or [])))
        prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        full = tokenizer.apply_chat_template(to_training_messages([*history, _clean(messages[idx])]),
                                             tools=list(tools or []) or None, chat_template=CHAT_TEMPLATE,
                                             tokenize=True, return_dict=False)
        stored_prompt = turn.get("prompt_token_ids")
        expected = (stored_prompt if stored_prompt is not None else prompt_ids) + list(turn["token_ids"])
        reference = list(full) if stored_prompt is not None else prompt_ids + list(full)[len(prompt_ids):]
        if reference[: len(expected)] != expected:
            first = next((i for i, (a, b) in enumerate(zip(reference, expected, strict=False)) if a != b),
                         min(len(reference), len(expected)))
            out.append((idx, first))
    return out


def write_token_rows(db: str | Path, out: str | Path, *, runs: Sequence[str] = (), families: Sequence[str] = (),
                     passed_only: bool = False, tokenizer: Any | None = None) -> DriftReport:
    """Write `tokens.jsonl` (token-level rows) and `drift.json` (the drift report) into `out`.

    Args:
        db: the trajectory database.
        out: the dataset directory (created).
        runs: runs to read (default: all).
        families: task families to keep (default: all).
        passed_only: keep only episodes the verifier passed (as SFT does by default).
        tokenizer: the policy's tokenizer with the chat template, for the drift report (None: no drift counted).

    Returns:
        The report (also written as `drift.json`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = DriftReport()
    store = Store(db, readonly=True)
    try:
        with (out / "tokens.jsonl").open("w", encoding="utf-8") as fh:
            for ep in store.episodes(list(runs) or None, status="done", families=list(families) or None):
                if passed_only and not ep.get("passed"):
                    continue
                turns = store.message_tokens(ep["id"])
                if not turns:
                    report.episodes_without_tokens += 1
                    continue
                report.episodes += 1
                report.turns += len(turns)
                if tokenizer is not None:
                    for idx, position in turn_drifts(tokenizer, store.messages(ep["id"]), ep.get("tools"), turns):
                        report.drifted_turns += 1
                        if len(report.examples) < 20:
                            report.examples.append({"episode_id": ep["id"], "message": idx, "position": position})
                for row in episode_token_rows(ep, turns):
                    fh.write(json.dumps(row) + "\n")
                    report.rows += 1
    finally:
        store.close()
    data = {**asdict(report), "drift_rate": report.drift_rate, "drift_counted": tokenizer is not None}
    (out / "drift.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return report
