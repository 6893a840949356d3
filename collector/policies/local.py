"""The `local` policy: a transformers model in-process, batching the generation requests of concurrent episodes."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.chat_template import parse_completion, render_prompt
from collector.errors import ConfigError, PolicyError
from collector.models import DEFAULT_MODEL, check_model, load_model_and_tokenizer
from collector.policies._prefix_cache import PrefixCache
from collector.policies.base import Completion
from collector.tasks.model import Task
from collector.types import Message, OpenAITool

__all__ = ["BatchStats", "LocalPolicy"]

_STOP = object()  # queue sentinel: the worker exits


@dataclass
class BatchStats:
    """What the batching worker did, for progress displays, benchmarks and tests.

    Attributes:
        batches: `model.generate` calls made.
        requests: completions produced.
        max_batch: the largest batch formed.
        batch_sizes: batch size -> how many batches had it.
        prompt_tokens: prompt tokens of all requests (without padding).
        completion_tokens: generated tokens of all requests (up to and including the end-of-turn token).
        generate_s: wall time spent encoding batches and inside `model.generate`.
        prefix_hits: batches that reused a cached shared prefix (the system turn with the tools).
        prefix_misses: shared prefixes run through the model (then cached).
    """

    batches: int = 0
    requests: int = 0
    max_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0
    prefix_hits: int = 0
    prefix_misses: int = 0

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of generation time (0 before the first batch)."""
        return self.completion_tokens / self.generate_s if self.generate_s > 0 else 0.0


@dataclass
class _Request:
    prompt: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Completion]
    submitted: float


class LocalPolicy:
    """A local transformers model behind the `Policy` interface.

    Prompts are rendered with the project chat template; outputs are read with `parse_completion`, so malformed
    tool calls are kept verbatim and listed in `Completion.malformed`. Requests from concurrent episodes go
    into one queue; a worker thread takes up to `batch_size` of them (waiting at most `batch_wait_ms` for more
    once one has arrived) and runs them as one left-padded `model.generate` call.

    Args:
        model: a built-in model name (default `smollm2-135m`) or a checkpoint directory.
        max_new_tokens: the cap on generated tokens per turn.
        temperature: sampling temperature; 0 means greedy decoding.
        top_p: nucleus sampling mass (ignored when greedy).
        seed: seeds torch before each batch, so a run with the same batches is reproducible.
        batch_size: the most requests per forward pass.
        batch_wait_ms: how long the worker waits for more requests after the first one of a batch arrives.
        device: as for `load_model_and_tokenizer`.
        cache_dir: where built-in models are converted and cached.
        loaded: an already loaded `(model, tokenizer)` pair to use instead of loading `model` (its tokenizer
            must have been prepared by `collector.models.prepare_tokenizer`).

    Raises:
        ConfigError: a parameter is out of range, or the model is neither a built-in name nor a checkpoint
            directory (checked at once; the model itself loads on first use or with `load()`).

    Example:
        policy = LocalPolicy(temperature=0)
        completion = await policy.complete(messages, tools, task=task)
        await policy.aclose()
    """

    name = "local"

    def __init__(
        self,
        model: str | None = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        batch_size: int = 8,
        batch_wait_ms: float = 20.0,
        device: str | None = None,
        cache_dir: Path | None = None,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        _check(max_new_tokens >= 1, f"max_new_tokens must be >= 1 (got {max_new_tokens})")
        _check(temperature >= 0, f"temperature must be >= 0, 0 meaning greedy (got {temperature})")
        _check(0 < top_p <= 1, f"top_p must be in (0, 1] (got {top_p})")
        _check(batch_size >= 1, f"batch_size must be >= 1 (got {batch_size})")
        _check(batch_wait_ms >= 0, f"batch_wait_ms must be >= 0 (got {batch_wait_ms})")
        self.model = model or DEFAULT_MODEL
        if loaded is None:
            check_model(self.model)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.stats = BatchStats()
        self._prefixes = PrefixCache()
        self._device = device
        self._cache_dir = cache_dir
        self._loaded = loaded
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def load(self) -> None:
        """Load the model now (otherwise it loads on the first request). Safe to call more than once."""
        if self._loaded is None:
            self._loaded = load_model_and_tokenizer(self.model, device=self._device, cache_dir=self._cache_dir)

    async def complete(self, messages: list[Message], tools: list[OpenAITool], *, task: Task) -> Completion:
        """Generate the next assistant turn.

        Args:
            messages: the conversation so far (OpenAI messages).
            tools: the OpenAI tools offered.
            task: the task being solved (unused: the prompt already carries it).

        Returns:
            The assistant turn, with `raw_text`, `malformed`, token counts and latency (queueing included).

        Raises:
            PolicyError: the policy is closed, the prompt does not fit the model's context, or generation failed.
            ConfigError: the model cannot be resolved.
        """
        if self._closed:
            raise PolicyError("the local policy is closed")
        if self._loaded is None:
            await asyncio.to_thread(self._load_once)
        assert self._loaded is not None
        try:
            prompt = render_prompt(self._loaded[1], messages, tools)
        except ValueError as exc:
            raise PolicyError(f"cannot render the prompt: {exc}") from exc
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        request = _Request(prompt, loop, loop.create_future(), time.perf_counter())
        self._queue.put(request)
        return await request.future

    async def aclose(self) -> None:
        """Stop the worker thread; requests still queued fail with PolicyError. Safe to call more than once."""
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)
        self._fail_pending(PolicyError("the local policy was closed before this request ran"))

    def _load_once(self) -> None:
        with self._start_lock:
            self.load()

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name="mcpgym-local-policy", daemon=True)
                self._thread.start()

    def _worker(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.perf_counter() + self.batch_wait_s
            stop = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Request]) -> None:
        try:
            results = self._generate([r.prompt for r in batch])
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting episode; the worker keeps serving
            error = exc if isinstance(exc, PolicyError) else PolicyError(f"generation failed: {exc!r}")
            for request in batch:
                _deliver(request, error=error)
            return
        now = time.perf_counter()
        for request, (raw_text, prompt_tokens, completion_tokens) in zip(batch, results, strict=True):
            parsed = parse_completion(raw_text)
            completion = Completion(
                message=parsed.to_message(),
                raw_text=raw_text,
                malformed=parsed.malformed,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=now - request.submitted,
            )
            _deliver(request, result=completion)

    def _generate(self, prompts: list[str]) -> list[tuple[str, int, int]]:
        """Run one batch; returns (raw text, prompt tokens, completion tokens) per prompt."""
        import torch

        assert self._loaded is not None
        model, tokenizer = self._loaded
        rows: list[list[int]] = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        prompt_lengths = [len(row) for row in rows]
        context = getattr(model.config, "max_position_embeddings", None)
        if context is not None and max(prompt_lengths) + self.max_new_tokens > context:
            raise PolicyError(
                f"the prompt has {max(prompt_lengths)} tokens; with max_new_tokens={self.max_new_tokens} it does not "
                f"fit the model's context of {context} tokens"
            )
        stop_ids = _stop_token_ids(tokenizer)
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": stop_ids,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        started = time.perf_counter()
        with torch.inference_mode():
            encoded = self._prefixes.encode(model, tokenizer, rows)  # may run the shared prefix once
            torch.manual_seed(self.seed + self.stats.batches)
            output = model.generate(**encoded, **options)
        elapsed = time.perf_counter() - started
        generated = output[:, encoded["input_ids"].shape[1] :].tolist()
        results = []
        for row, prompt_length in zip(generated, prompt_lengths, strict=True):
            tokens = _until_stop(row, stop_ids)
            text = tokenizer.decode(tokens[:-1] if tokens and tokens[-1] in stop_ids else tokens)
            results.append((text, int(prompt_length), len(tokens)))
        stats = self.stats
        stats.batches += 1
        stats.requests += len(prompts)
        stats.max_batch = max(stats.max_batch, len(prompts))
        stats.batch_sizes[len(prompts)] = stats.batch_sizes.get(len(prompts), 0) + 1
        stats.prompt_tokens += sum(r[1] for r in results)
        stats.completion_tokens += sum(r[2] for r in results)
        stats.generate_s += elapsed
        stats.prefix_hits, stats.prefix_misses = self._prefixes.hits, self._prefixes.misses
        return results

    def _fail_pending(self, error: PolicyError) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request):
                _deliver(item, error=error)


def _stop_token_ids(tokenizer: Any) -> list[int]:
    ids = []
    for token in ("<|im_end|>", "<|endoftext|>", tokenizer.eos_token):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


def _until_stop(row: list[int], stop_ids: list[int]) -> list[int]:
    """The generated tokens up to and including the first stop token (padding after it dropped)."""
    for i, token in enumerate(row):
        if token in stop_ids:
            return row[: i + 1]
    return row


def _deliver(request: _Request, *, result: Completion | None = None, error: Exception | None = None) -> None:
    def settle() -> None:
        if request.future.done():  # the awaiting episode was cancelled
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result)  # type: ignore[arg-type]

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the episode's event loop is closed: nobody is waiting
        pass


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
