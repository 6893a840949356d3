"""One episode as a person reads it: turns, tool calls with pretty arguments, results, timings, verdict."""

from __future__ import annotations

import json
from typing import Any

from collector.store import Store

__all__ = ["episode_view", "pretty_json"]


def pretty_json(text: str | None) -> tuple[str, bool]:
    """Pretty-print a JSON string. Returns (text, ok); when it does not parse, the text is returned verbatim."""
    if text is None:
        return "", False
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False), True
    except (ValueError, TypeError):
        return text, False


def _call_view(call: dict[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any]:
    function = call.get("function") or {}
    raw = function.get("arguments")
    if not isinstance(raw, str):  # a dict stored by a lenient writer: show it as JSON
        raw = json.dumps(raw)
    arguments, ok = pretty_json(raw)
    malformed = not ok or bool(recorded and recorded.get("malformed"))
    return {
        "id": call.get("id") or "",
        "name": function.get("name") or "(no name)",
        "arguments": arguments,
        "malformed": malformed,
        "server": (recorded or {}).get("server"),
        "duration_s": (recorded or {}).get("duration_s"),
        "is_error": bool((recorded or {}).get("is_error")),
        "error_kind": (recorded or {}).get("error_kind"),
    }


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def episode_view(store: Store, episode_id: str) -> dict[str, Any]:
    """Everything the episode page shows, as plain data (also the JSON of `/api/episodes/{id}`).

    Returns:
        {"episode": row, "turns": [...], "messages": raw OpenAI messages, "tool_calls": raw tool-call rows,
        "previous_verdicts": the verdicts re-verification replaced, "verdict_changed": whether one of them differs
        from the current verdict}, where each turn is {"role", "content", "malformed", "latency_s", "tokens" and "mean_logprob" (the
        turn's sampled tokens, where stored), "calls": [...],
        "result": {...} | None}.

    Raises:
        StoreError: no such episode.
    """
    episode = store.get_episode(episode_id)
    messages = store.messages(episode_id)
    recorded_calls = store.tool_calls(episode_id)
    sampled = store.message_tokens(episode_id)  # the tokens each assistant turn was sampled as, where stored
    by_call_id = {c["call_id"]: c for c in recorded_calls if c.get("call_id")}
    call_names: dict[str, str] = {}
    turns: list[dict[str, Any]] = []
    for index, msg in enumerate(messages):
        role = msg["role"]
        turn: dict[str, Any] = {
            "index": index,
            "role": role,
            "content": msg.get("content") or "",
            "malformed": bool(msg.get("malformed")),
            "latency_s": msg.get("latency_s"),
            "tokens": len(sampled[index]["token_ids"]) if index in sampled else None,
            "mean_logprob": _mean(sampled[index]["logprobs"]) if index in sampled else None,
            "calls": [],
            "result": None,
        }
        for call in msg.get("tool_calls") or []:
            view = _call_view(call, by_call_id.get(call.get("id") or ""))
            call_names[view["id"]] = view["name"]
            turn["calls"].append(view)
            turn["malformed"] = turn["malformed"] or view["malformed"]
        if role == "tool":
            call_id = msg.get("tool_call_id") or ""
            recorded = by_call_id.get(call_id) or {}
            content = turn["content"]
            turn["result"] = {
                "call_id": call_id,
                "name": msg.get("name") or call_names.get(call_id) or recorded.get("tool") or "tool",
                "is_error": bool(recorded.get("is_error")),
                "error_kind": recorded.get("error_kind"),
                "duration_s": recorded.get("duration_s"),
                "chars": len(content),
                "preview": content.strip().splitlines()[0][:120] if content.strip() else "(empty)",
            }
        turns.append(turn)
    components = episode.get("reward_components") or {}
    previous = store.verdict_history(episode_id)  # verdicts `mcpgym reverify` replaced, oldest first
    return {
        "episode": episode,
        "previous_verdicts": previous,
        "verdict_changed": any(p["passed"] != episode.get("passed") for p in previous),
        "turns": turns,
        "reward_components": components if isinstance(components, dict) else {"value": components},
        "verdict_details": pretty_json(json.dumps(episode.get("verdict_details")))[0]
        if episode.get("verdict_details") is not None
        else "",
        "messages": messages,
        "tool_calls": recorded_calls,
        "step_time_s": sum(t["latency_s"] or 0.0 for t in turns)
        + sum((c.get("duration_s") or 0.0) for c in recorded_calls),
    }
