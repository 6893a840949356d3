"""Continuous batching for the local policy: a decode loop over the model's forward with one in-place key/value cache."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from transformers.cache_utils import Cache, DynamicLayer

from collector.policies._prefix_cache import PrefixCache

__all__ = ["Batch", "Row", "stop_token_ids"]

# Decode steps with this many rows compute each linear layer as weight @ rows^T (see `_RowsLinear`).
_ROWS_LINEAR = range(2, 11)
# A one-row decode step computes layers at least this wide (the output layer) on two rows, then keeps one.
_PAD_SINGLE_MIN_OUT = 8192


@dataclass
class Row:
    """One request in the running batch.

    Attributes:
        item: the caller's request object (opaque here).
        prompt_tokens: prompt length in tokens.
        tokens: the tokens generated so far (the last one is the next decode step's input).
        logprobs: the model's log-probability of each generated token when it was picked (before temperature).
        prompt_ids: the prompt's tokens.
    """

    item: Any
    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)


@dataclass
class Counters:
    """What the batch did; `LocalPolicy.stats` reads these."""

    prefills: int = 0
    decode_steps: int = 0
    max_rows: int = 0
    step_rows: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


class _BufferLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One decoder layer's keys and values in preallocated buffers `[rows, kv_heads, capacity, head_dim]`.

    Appending a token writes into the buffer in place, where the stock dynamic cache concatenates (copies the whole
    cache) at every step.
    """

    def __init__(self, rows: int, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.rows, self.capacity, self.length = rows, capacity, 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    @classmethod
    def prefilled(cls, rows: int, capacity: int, cached: list[tuple[Any, Any, int]], length: int) -> _BufferLayer:
        """A layer holding `length` positions, row i's cached `(keys, values, n)` right-aligned in them.

        Keys and values are `[kv_heads, positions, head_dim]` with at least n positions; the positions before a
        row's cached ones are padding (masked out by the caller).
        """
        layer = cls(rows, capacity)
        like = next((keys for keys, _, n in cached if n), None)
        if like is None:
            return layer
        layer._allocate(like.unsqueeze(0))
        assert layer.key_buffer is not None and layer.value_buffer is not None
        for row, (keys, values, n) in enumerate(cached):
            if n:
                layer.key_buffer[row, :, length - n : length] = keys[:, :n]
                layer.value_buffer[row, :, length - n : length] = values[:, :n]
        layer.length = length
        layer._views()
        return layer

    @classmethod
    def adopt(cls, keys: torch.Tensor, values: torch.Tensor, length: int) -> _BufferLayer:
        """A layer over existing buffers holding `length` positions."""
        layer = cls(keys.shape[0], keys.shape[2])
        layer.key_buffer, layer.value_buffer, layer.length = keys, values, length
        layer.dtype, layer.device, layer.is_initialized = keys.dtype, keys.device, True
        layer._views()
        return layer

    def _allocate(self, like: torch.Tensor) -> None:
        shape = (self.rows, like.shape[1], self.capacity, like.shape[3])
        self.key_buffer = like.new_zeros(shape)
        self.value_buffer = like.new_zeros(shape)
        self.dtype, self.device, self.is_initialized = like.dtype, like.device, True

    def _views(self) -> None:
        assert self.key_buffer is not None and self.value_buffer is not None
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions in place; returns all cached keys and values."""
        if self.key_buffer is None:
            self._allocate(key_states)
        assert self.key_buffer is not None and self.value_buffer is not None
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"key/value buffer overflow: {end} positions, capacity {self.capacity}")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._views()
        return self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]

    def get_seq_length(self) -> int:
        """Positions held (padding included)."""
        return self.length


class _RowsLinear(TorchFunctionMode):
    """Computes each linear layer of a small decode batch as `weight @ rows^T` (then transposed back).

    Same product, other operand order: for 2-10 rows, MKL's matrix multiply (torch 2.13) is 1.3-3x faster this way
    round on the CPU (bandwidth-bound on the weights either way; `rows @ weight^T` takes a slower path; from 11 rows
    on it is not faster). Active only on the worker thread (modes are thread-local) and only during a decode step
    with 1-10 rows on the CPU. One row keeps the plain `F.linear` except in the widest layers (the output layer,
    49,152 x 576 for SmolLM2): there the single row is padded to two, which MKL computes in less than half the time
    of the one-row product (measured 4.9-5.5 ms against 11.2 ms), so that the single-sequence path is as fast as
    this machine allows and batching is compared against it.
    """

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2 and (args[2] if len(args) > 2 else kwargs.get("bias")) is None:
            rows, weight = args[0], args[1]
            count = rows.numel() // rows.shape[-1]
            if count in _ROWS_LINEAR and weight.dim() == 2:
                product = torch.mm(weight, rows.reshape(count, rows.shape[-1]).t()).t().contiguous()
                return product.reshape(*rows.shape[:-1], weight.shape[0])
            if count == 1 and weight.dim() == 2 and weight.shape[0] >= _PAD_SINGLE_MIN_OUT:
                pair = rows.reshape(1, rows.shape[-1]).expand(2, rows.shape[-1]).contiguous()
                product = torch.mm(weight, pair.t())[:, :1].t().contiguous()
                return product.reshape(*rows.shape[:-1], weight.shape[0])
        return func(*args, **kwargs)


def _cache(layers: list[_BufferLayer]) -> Cache:
    """A transformers cache over these layers (the model's forward appends to them in place)."""
    items: list[Any] = list(layers)
    return Cache(layers=items)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end a turn: `<|im_end|>`, `<|endoftext|>` and the tokenizer's eos token (those it knows)."""
    ids = []
    for token in ("<|im_end|>", "<|endoftext|>", tokenizer.eos_token):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


class Batch:
    """The rows being decoded together, left-padded to one length, with their key/value cache.

    `admit` prefills new requests (each from the longest prefix `PrefixCache` holds, then the prompt's rest) and joins
    them to the running rows, padding whichever side is shorter on the left; `step` runs one decode step for all rows
    and removes the rows that finished, so a finished row stops costing. Padding is masked out and every row has its
    own position ids, so a row's tokens do not depend on what else is in the batch.

    Args:
        model: the causal LM (transformers, with `past_key_values` support).
        tokenizer: its tokenizer (pad and end-of-turn ids).
        prefixes: the prefix cache (finished rows are stored in it).
        max_new_tokens: the cap on generated tokens per row.
        pick: chooses the next token of each row from the last logits `[rows, vocab]`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prefixes: PrefixCache,
        *,
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.model, self.tokenizer, self.prefixes = model, tokenizer, prefixes
        self.max_new_tokens = max_new_tokens
        self.pick = pick
        self.stop_ids = stop_token_ids(tokenizer)
        self._cpu = torch.device(model.device).type == "cpu"
        self.counters = Counters()
        self.rows: list[Row] = []
        self._layers: list[_BufferLayer] = []
        self._mask = torch.zeros(0, 0, dtype=torch.long)
        self._positions = torch.zeros(0, dtype=torch.long)
        self._length = 0

    def clear(self) -> list[Row]:
        """Drop every row (after a failure); returns them."""
        rows, self.rows, self._layers = self.rows, [], []
        self._length = 0
        return rows

    def admit(self, items: list[tuple[Any, list[int]]]) -> list[Row]:
        """Prefill `(item, prompt ids)` pairs and join them to the batch.

        Each prompt starts from the longest prefix the cache holds; the rest of the prompts are computed in groups
        of similar length (so that little of a prefill is padding), then joined to the running rows.

        Returns:
            The new rows already finished by their first token (they do not join).

        Raises:
            Exception: whatever the model raised; the running rows are left as they were.
        """
        end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        with self._timed():
            cached = [(item, ids, *self.prefixes.lookup(self.model, ids, end_id)) for item, ids in items]
            prefilled = [self._prefill(group) for group in _groups(cached)]
        done = []
        for rows, layers, mask, positions, length in prefilled:
            self.counters.prefills += 1
            finished = [i for i, row in enumerate(rows) if self._done(row)]
            self._retire(rows, layers, mask, length, finished)
            done += [rows[i] for i in finished]
            keep = [i for i in range(len(rows)) if i not in finished]
            if not keep:
                continue
            if finished:
                rows, layers, mask, positions = self._select(rows, layers, mask, positions, keep)
            with self._timed():
                self._join(rows, layers, mask, positions, length)
        return done

    def step(self) -> list[Row]:
        """One decode step for every row; returns the rows that finished (removed from the batch)."""
        with self._timed():
            count, length = len(self.rows), self._length
            self._mask[:, length] = 1
            ids = torch.tensor([[row.tokens[-1]] for row in self.rows], dtype=torch.long, device=self.model.device)
            mode = _RowsLinear() if (count == 1 or count in _ROWS_LINEAR) and self._cpu else contextlib.nullcontext()
            with mode:
                out = self.model(
                    input_ids=ids,
                    attention_mask=self._mask[:, : length + 1],
                    position_ids=self._positions.unsqueeze(1),
                    past_key_values=_cache(self._layers),
                    use_cache=True,
                )
            self._length += 1
            self._positions += 1
            for row, (token, logprob) in zip(self.rows, self._picked(out.logits[:, -1]), strict=True):
                row.tokens.append(token)
                row.logprobs.append(logprob)
            counters = self.counters
            counters.decode_steps += 1
            counters.max_rows = max(counters.max_rows, count)
            counters.step_rows[count] = counters.step_rows.get(count, 0) + 1
            finished = [i for i, row in enumerate(self.rows) if self._done(row)]
            if not finished:
                return []
            self._retire(self.rows, self._layers, self._mask, self._length, finished)
            keep = [i for i in range(count) if i not in finished]
            done = [self.rows[i] for i in finished]
            if not keep:
                self.clear()
                return done
            self.rows, self._layers, self._mask, self._positions = self._select(
                self.rows, self._layers, self._mask, self._positions, keep
            )
            self._trim()
            return done

    def _picked(self, logits: torch.Tensor) -> list[tuple[int, float]]:
        """Each row's next token and the model's log-probability of it (the raw distribution, as vLLM reports)."""
        tokens = self.pick(logits)
        logprobs = torch.log_softmax(logits.float(), -1).gather(-1, tokens.view(-1, 1).long()).squeeze(-1)
        return [(int(t), float(lp)) for t, lp in zip(tokens.tolist(), logprobs.tolist(), strict=True)]

    def text(self, row: Row) -> str:
        """The generated text of a finished row, without its end-of-turn token."""
        tokens = row.tokens[:-1] if row.tokens and row.tokens[-1] in self.stop_ids else row.tokens
        return str(self.tokenizer.decode(tokens))

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.counters.seconds += time.perf_counter() - started

    def _done(self, row: Row) -> bool:
        return row.tokens[-1] in self.stop_ids or len(row.tokens) >= self.max_new_tokens

    def _prefill(
        self, items: list[tuple[Any, list[int], Any, int]]
    ) -> tuple[list[Row], list[_BufferLayer], torch.Tensor, torch.Tensor, int]:
        """Prefill `(item, ids, cached states, cached length)` rows as `padding | cached | padding | rest`.

        Picks each row's first token.

        Each row's cached keys and values are right-aligned before the computed part, whose rest is left-padded;
        padding is masked out and each row gets its own position ids.
        """
        model, device = self.model, self.model.device
        count = len(items)
        start = max(n for _, _, _, n in items)
        rests = [ids[n:] for _, ids, _, n in items]
        width = max(len(rest) for rest in rests)
        length = start + width
        capacity = length + self.max_new_tokens
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(rest)) + rest for rest in rests], dtype=torch.long, device=device)
        mask = torch.zeros(count, capacity, dtype=torch.long, device=device)
        for i, ((_, _, _, n), rest) in enumerate(zip(items, rests, strict=True)):
            mask[i, start - n : start] = 1
            mask[i, length - len(rest) : length] = 1
        cached = torch.tensor([n for _, _, _, n in items], dtype=torch.long, device=device)
        position_ids = cached.unsqueeze(1) + (mask[:, start:length].cumsum(-1) - 1).clamp(min=0)
        layers = [
            _BufferLayer.prefilled(
                count, capacity, [(s[layer][0], s[layer][1], n) if s else (None, None, 0) for _, _, s, n in items],
                start,
            )
            for layer in range(model.config.num_hidden_layers)
        ]
        out = model(
            input_ids=ids,
            attention_mask=mask[:, :length],
            position_ids=position_ids,
            past_key_values=_cache(layers),
            use_cache=True,
            logits_to_keep=1,
        )
        first = self._picked(out.logits[:, -1])
        rows = [Row(item, len(prompt), [token], [logprob], list(prompt))
                for (item, prompt, _, _), (token, logprob) in zip(items, first, strict=True)]
        positions = torch.tensor([len(prompt) for _, prompt, _, _ in items], dtype=torch.long, device=device)
        return rows, layers, mask, positions, length

    def _retire(
        self, rows: list[Row], layers: list[_BufferLayer], mask: torch.Tensor, length: int, finished: list[int]
    ) -> None:
        """Hand the keys and values of finished rows (prompt and generated tokens) to the prefix cache."""
        if not finished or not self.prefixes.turns or self.prefixes.max_bytes <= 0:
            return
        with self._timed():
            for i in finished:
                row = rows[i]
                tokens = row.prompt_ids + row.tokens[:-1]  # the last token was picked, never run through the model
                held = mask[i, :length].nonzero().squeeze(1)
                if len(held) != len(tokens):
                    continue
                states = []
                for layer in layers:
                    assert layer.key_buffer is not None and layer.value_buffer is not None
                    states.append((layer.key_buffer[i].index_select(1, held),
                                   layer.value_buffer[i].index_select(1, held)))
                self.prefixes.store(tokens, states)

    @staticmethod
    def _select(
        rows: list[Row], layers: list[_BufferLayer], mask: torch.Tensor, positions: torch.Tensor, keep: list[int]
    ) -> tuple[list[Row], list[_BufferLayer], torch.Tensor, torch.Tensor]:
        index = torch.tensor(keep, dtype=torch.long, device=mask.device)
        kept = []
        for layer in layers:
            assert layer.key_buffer is not None and layer.value_buffer is not None
            keys, values = layer.key_buffer.index_select(0, index), layer.value_buffer.index_select(0, index)
            kept.append(_BufferLayer.adopt(keys, values, layer.length))
        return [rows[i] for i in keep], kept, mask.index_select(0, index), positions.index_select(0, index)

    def _trim(self) -> None:
        """Drop leading positions that are padding for every remaining row (left by rows that finished)."""
        used = self._mask[:, : self._length].any(0)
        lead = int(used.int().argmax()) if bool(used.any()) else 0
        if lead == 0:
            return
        self._layers = [
            _BufferLayer.adopt(layer.key_buffer[:, :, lead:], layer.value_buffer[:, :, lead:], layer.length - lead)
            for layer in self._layers
            if layer.key_buffer is not None and layer.value_buffer is not None
        ]
        self._mask = self._mask[:, lead:]
        self._length -= lead

    def _join(
        self, rows: list[Row], layers: list[_BufferLayer], mask: torch.Tensor, positions: torch.Tensor, length: int
    ) -> None:
        """Append prefilled rows to the running ones, left-padding the shorter side to a common length."""
        if not self.rows:
            self.rows, self._layers, self._mask, self._positions, self._length = rows, layers, mask, positions, length
            return
        total = max(self._length, length)
        capacity = total + self.max_new_tokens
        old, new = len(self.rows), len(rows)
        joined = []
        for mine, theirs in zip(self._layers, layers, strict=True):
            assert mine.key_buffer is not None and theirs.key_buffer is not None
            assert mine.value_buffer is not None and theirs.value_buffer is not None
            shape = (old + new, mine.key_buffer.shape[1], capacity, mine.key_buffer.shape[3])
            keys, values = mine.key_buffer.new_zeros(shape), mine.value_buffer.new_zeros(shape)
            keys[:old, :, total - self._length : total] = mine.key_buffer[:, :, : self._length]
            values[:old, :, total - self._length : total] = mine.value_buffer[:, :, : self._length]
            keys[old:, :, total - length : total] = theirs.key_buffer[:, :, :length]
            values[old:, :, total - length : total] = theirs.value_buffer[:, :, :length]
            joined.append(_BufferLayer.adopt(keys, values, total))
        joined_mask = torch.zeros(old + new, capacity, dtype=torch.long, device=mask.device)
        joined_mask[:old, total - self._length : total] = self._mask[:, : self._length]
        joined_mask[old:, total - length : total] = mask[:, :length]
        self.rows = self.rows + rows
        self._layers, self._mask, self._length = joined, joined_mask, total
        self._positions = torch.cat([self._positions, positions])


def _groups(items: list[Any], slack: float = 0.25, min_slack: int = 64) -> list[list[Any]]:
    """Split `(item, ids, states, cached)` rows into prefill groups of similar uncached length.

    Rows sorted by what is left to compute join a group while its padding stays within `slack` of its real tokens
    (or `min_slack` tokens a row): on a CPU a prefill costs its padded size, so one long rest would make every short
    one cost as much.
    """
    ordered = sorted(items, key=lambda entry: len(entry[1]) - entry[3])
    groups: list[list[Any]] = []
    real = 0
    for entry in ordered:
        rest = len(entry[1]) - entry[3]
        if groups:
            group = groups[-1]
            padding = rest * (len(group) + 1) - (real + rest)
            if padding <= max(slack * (real + rest), min_slack * (len(group) + 1)):
                group.append(entry)
                real += rest
                continue
        groups.append([entry])
        real = rest
    return groups


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row."""
    return logits.argmax(-1)


def sampler(temperature: float, top_p: float, generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A token picker sampling at `temperature` from the smallest set of tokens holding `top_p` of the mass."""

    def pick(logits: torch.Tensor) -> torch.Tensor:
        scores = logits.float() / temperature
        if top_p < 1.0:
            ordered, order = scores.sort(-1)
            cumulative = ordered.softmax(-1).cumsum(-1)
            drop = cumulative <= 1 - top_p
            drop[:, -1] = False  # always keep the most likely token
            scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)

    return pick
