"""Deduplication: exact (hash of normalized messages) and near-duplicate (MinHash LSH)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasketch import MinHash, MinHashLSH

__all__ = ["Deduplicator", "exact_key", "normalize"]

_WS = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalize(messages: Sequence[dict[str, Any]], *, skip_system: bool = False) -> str:
    """Normalized text of a conversation: roles, contents and tool calls, lower-cased, whitespace collapsed.

    Tool-call ids are left out (they differ between otherwise identical episodes).

    Args:
        messages: OpenAI messages (arguments as strings or dicts).
        skip_system: leave system messages out (a long shared system prompt would make every pair look similar).
    """
    parts = []
    for msg in messages:
        if skip_system and msg["role"] == "system":
            continue
        calls = [
            {"name": c["function"]["name"], "arguments": c["function"].get("arguments")}
            for c in msg.get("tool_calls") or []
        ]
        parts.append(f"<{msg['role']}> {msg.get('content') or ''} {json.dumps(calls, sort_keys=True) if calls else ''}")
    return _WS.sub(" ", "\n".join(parts).lower()).strip()


def exact_key(messages: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the normalized conversation."""
    return hashlib.sha256(normalize(messages).encode()).hexdigest()


@dataclass
class _Seen:
    exact: set[str]
    lsh: MinHashLSH | None


class Deduplicator:
    """Remembers what it has kept and says whether a new conversation duplicates one of them.

    Args:
        near_threshold: Jaccard similarity (word 3-shingles) above which two conversations are near-duplicates;
            None turns near-duplicate detection off.
        num_perm: MinHash permutations.
        shingle: words per shingle.
    """

    def __init__(self, near_threshold: float | None = 0.9, *, num_perm: int = 128, shingle: int = 3) -> None:
        if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
        self.num_perm = num_perm
        self.shingle = shingle
        self._seen = _Seen(set(), MinHashLSH(threshold=near_threshold, num_perm=num_perm) if near_threshold else None)
        self._count = 0

    def _minhash(self, text: str) -> MinHash:
        tokens = _TOKEN.findall(text)
        mh = MinHash(num_perm=self.num_perm, seed=1)
        n = self.shingle
        grams = [" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))]
        for gram in grams:
            mh.update(gram.encode())
        return mh

    def check(self, messages: Sequence[dict[str, Any]]) -> str | None:
        """Return "exact duplicate" / "near duplicate" for a repeat, else remember the conversation and return None."""
        key = exact_key(messages)
        if key in self._seen.exact:
            return "exact duplicate"
        mh = None
        if self._seen.lsh is not None:
            mh = self._minhash(normalize(messages, skip_system=True))
            if self._seen.lsh.query(mh):
                return "near duplicate"
        self._seen.exact.add(key)
        if self._seen.lsh is not None and mh is not None:
            self._seen.lsh.insert(str(self._count), mh)
        self._count += 1
        return None
