"""The local policy's prefix cache: keys and values of recent prompts, reused by the longest common token prefix."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PrefixCache"]

States = list[tuple[Any, Any]]  # one (keys, values) pair per decoder layer, each `[kv_heads, positions, head_dim]`


@dataclass
class _Entry:
    tokens: np.ndarray
    states: States
    nbytes: int
    first_turn: bool  # a system turn, run on its own: kept when a longer sequence starting with it is stored


class PrefixCache:
    """Keeps the per-layer keys and values of recent token sequences, found again by their longest common prefix.

    Two kinds of entries:

    - the first turn of a prompt (the system turn, which carries the tool schemas: often most of a first-turn prompt),
      run through the model on its own the first time a prompt starts with it, so that every episode of a family
      shares it;
    - with `turns`, every finished turn: the prompt and the tokens generated after it. An episode's next prompt is
      the same conversation plus the answer and the tool results, so its prefill computes only what is new (vLLM's
      automatic prefix caching, for one process). When a turn is stored, the entries of its conversation's earlier
      turns (prefixes of it) are dropped.

    A lookup takes the entry sharing the most leading tokens with the prompt, at most all but its last token (the
    prefill must compute at least one position to get the next token's logits). The keys and values of a position
    depend only on the tokens up to it, so any common prefix is reusable, even where the rendered conversation
    tokenizes an answer differently from the tokens generated (the match stops there). Least recently used entries
    go first once `max_bytes` is reached.

    Args:
        max_bytes: the most bytes of keys and values kept (0 keeps nothing: every prompt is computed whole).
        turns: also keep finished turns (False: only first turns, the cache of the shared system prompt).
        min_tokens: shorter matches are not used, and shorter first turns not cached.
    """

    def __init__(self, max_bytes: int = 2 << 30, *, turns: bool = True, min_tokens: int = 16) -> None:
        self.max_bytes = max_bytes
        self.turns = turns
        self.min_tokens = min_tokens
        self.hits = 0  # prompts whose prefill started from cached keys and values
        self.misses = 0  # first turns run through the model on their own (then cached)
        self.cached_tokens = 0  # prompt tokens taken from the cache instead of computed
        self.nbytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def first_turn(ids: list[int], end_id: int) -> list[int]:
        """The prompt's first turn, through `end_id` and the token after it (`[]` when the prompt has no more)."""
        try:
            boundary = ids.index(end_id) + 2
        except ValueError:
            return []
        return ids[:boundary] if len(ids) > boundary else []

    def lookup(self, model: Any, ids: list[int], end_id: int) -> tuple[States | None, int]:
        """Cached keys and values for the start of `ids`.

        When no entry covers the prompt's first turn, the first turn is run through the model and cached first.
        Call under `torch.inference_mode()`.

        Args:
            model: the causal LM.
            ids: the prompt's token ids.
            end_id: the end-of-turn token id (`<|im_end|>`).

        Returns:
            `(states, n)`: the first `n` positions of `states` (whose tensors may hold more) are the keys and values
            of `ids[:n]`; `(None, 0)` when nothing is cached. The tensors are shared: copy, never modify them.
        """
        if self.max_bytes <= 0:
            return None, 0
        entry, length = self._longest(ids)
        first = self.first_turn(ids, end_id)
        if len(first) > length and len(first) >= self.min_tokens:
            entry, length = self._run(model, first), len(first)
        if entry is None or length < self.min_tokens:
            return None, 0
        self.hits += 1
        self.cached_tokens += length
        return entry.states, length

    def store(self, tokens: list[int], states: States) -> None:
        """Keep a finished turn: `states` are the keys and values of `tokens` (copies, owned by the cache from now)."""
        if self.max_bytes <= 0 or not self.turns or len(tokens) < self.min_tokens:
            return
        array = np.asarray(tokens, dtype=np.int64)
        for key, entry in list(self._entries.items()):  # earlier turns of this conversation: superseded
            if not entry.first_turn and len(entry.tokens) <= len(array) and _common(entry.tokens, array) == len(
                entry.tokens
            ):
                self._drop(key)
        self._add(_Entry(array, states, _nbytes(states), first_turn=False))

    def _longest(self, ids: list[int]) -> tuple[_Entry | None, int]:
        if not self._entries:
            return None, 0
        array = np.asarray(ids[:-1], dtype=np.int64)  # at least the last prompt token is computed
        best_key, best = None, 0
        for key, entry in self._entries.items():
            length = _common(entry.tokens, array)
            if length > best:
                best_key, best = key, length
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        return self._entries[best_key], best

    def _run(self, model: Any, prefix: list[int]) -> _Entry:
        import torch

        self.misses += 1
        ids = torch.tensor([prefix], dtype=torch.long, device=model.device)
        cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        states = [(layer.keys[0], layer.values[0]) for layer in cache.layers]
        entry = _Entry(np.asarray(prefix, dtype=np.int64), states, _nbytes(states), first_turn=True)
        self._add(entry)
        return entry

    def _add(self, entry: _Entry) -> None:
        if entry.nbytes > self.max_bytes:
            return
        while self._entries and self.nbytes + entry.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[self._next] = entry
        self._next += 1
        self.nbytes += entry.nbytes

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes


def _common(a: np.ndarray, b: np.ndarray) -> int:
    """The number of leading tokens `a` and `b` share."""
    length = min(len(a), len(b))
    differ = np.flatnonzero(a[:length] != b[:length])
    return int(differ[0]) if differ.size else length


def _nbytes(states: States) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in states)
