"""The shared prompt prefix of the local policy (system turn and tools): run through the model once, then reused."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["PrefixCache"]


class PrefixCache:
    """Keeps the per-layer keys and values of recent shared prompt prefixes.

    Episodes of one task family share their system turn, which carries the tool schemas: often most of the prompt.
    When every prompt of a prefill starts with the same system turn, that prefix is run through the model once (and
    then found here); its keys and values are copied into each row's cache, so only the rest of each prompt is
    computed.

    Args:
        max_entries: how many prefixes to keep (least recently used dropped first).
        min_tokens: shorter shared prefixes are not worth a cache entry.
    """

    def __init__(self, max_entries: int = 4, min_tokens: int = 16) -> None:
        self.max_entries = max_entries
        self.min_tokens = min_tokens
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()

    def shared_prefix(self, rows: list[list[int]], end_id: int) -> list[int]:
        """The first turn (through `end_id` and the token after it) when all rows share it and go on after it.

        Args:
            rows: the token ids of each prompt.
            end_id: the end-of-turn token id (`<|im_end|>`).

        Returns:
            The shared prefix, or `[]` when there is none worth caching.
        """
        first = rows[0]
        try:
            boundary = first.index(end_id) + 2
        except ValueError:
            return []
        prefix = first[:boundary]
        if len(prefix) < self.min_tokens:
            return []
        if any(len(row) <= boundary or row[:boundary] != prefix for row in rows):
            return []
        return prefix

    def states(self, model: Any, prefix: list[int]) -> list[tuple[Any, Any]]:
        """The (keys, values) of each layer for `prefix`, shaped `[1, kv_heads, len(prefix), head_dim]`.

        Runs the prefix through the model on a miss. The tensors are shared between calls: copy, never modify them.
        Call under `torch.inference_mode()`.

        Args:
            model: the causal LM.
            prefix: the prefix token ids (from `shared_prefix`).

        Returns:
            One (keys, values) pair per decoder layer.
        """
        import torch

        key = tuple(prefix)
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        ids = torch.tensor([prefix], dtype=torch.long, device=model.device)
        cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        entry = [(layer.keys, layer.values) for layer in cache.layers]
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry
