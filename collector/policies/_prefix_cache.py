"""Batch encoding for the local policy: a shared prompt prefix (system turn and tools) computed once and reused."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

__all__ = ["PrefixCache"]


class PrefixCache:
    """Keeps the key/value cache of recent shared prompt prefixes and lays out batches around them.

    Episodes of one task family share their system turn, which carries the tool schemas: often most of the prompt.
    When every prompt of a batch starts with the same system turn, that prefix is run through the model once (and
    then found here), and the batch is laid out as `prefix | padding | rest`, the padding masked out, so every row
    sees the prefix at the same positions and can reuse one cache. Otherwise rows are left-padded as usual.

    Args:
        max_entries: how many prefixes to keep (least recently used dropped first).
        min_tokens: shorter shared prefixes are not worth a cache entry.
    """

    def __init__(self, max_entries: int = 4, min_tokens: int = 16) -> None:
        self.max_entries = max_entries
        self.min_tokens = min_tokens
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def encode(self, model: Any, tokenizer: Any, rows: list[list[int]]) -> dict[str, Any]:
        """Model inputs for `generate`: `input_ids`, `attention_mask` and, with a shared prefix, `past_key_values`.

        Args:
            model: the causal LM.
            tokenizer: its tokenizer (for the pad and end-of-turn ids).
            rows: the token ids of each prompt.

        Returns:
            Keyword arguments for `model.generate`. Call under `torch.inference_mode()`.
        """
        import torch

        prefix = self._shared_prefix(rows, tokenizer.convert_tokens_to_ids("<|im_end|>"))
        suffixes = [row[len(prefix) :] for row in rows]
        width = max(len(s) for s in suffixes)
        pad = tokenizer.pad_token_id
        ids = [prefix + [pad] * (width - len(s)) + s for s in suffixes]
        mask = [[1] * len(prefix) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor(ids, dtype=torch.long, device=model.device),
            "attention_mask": torch.tensor(mask, dtype=torch.long, device=model.device),
        }
        if prefix:
            inputs["past_key_values"] = self._cache_for(model, prefix, len(rows))
        return inputs

    def _shared_prefix(self, rows: list[list[int]], end_id: int) -> list[int]:
        """The first turn (through `<|im_end|>` and the token after it) when all rows share it and go on after it."""
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

    def _cache_for(self, model: Any, prefix: list[int], batch: int) -> Any:
        import torch

        key = tuple(prefix)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            ids = torch.tensor([prefix], dtype=torch.long, device=model.device)
            entry = model(input_ids=ids, use_cache=True).past_key_values
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        cache = copy.deepcopy(entry)  # generate extends the cache it is given
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache
