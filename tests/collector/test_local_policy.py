"""The local policy on the real SmolLM2-135M: continuous batching of concurrent episodes, padding correctness, errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_model import loaded_model

from collector.chat_template import parse_completion, render_prompt
from collector.errors import ConfigError, PolicyError
from collector.policies import make_policy
from collector.policies.base import Completion
from collector.policies.local import LocalPolicy
from collector.tasks.model import Task, VerifierSpec

TASK = Task(id="t-1", family="weather", messages=[], verifier=VerifierSpec(type="exact", expected="x"))
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
QUESTIONS = [
    "Hi",  # the shortest prompt: the most left padding in a batch
    "What's the weather in Paris right now? Use the tool if you need it, and answer in one short sentence please.",
    "Weather in Tokyo?",
    "Tell me a joke about the rain.",
    "What is 2+2?",
    "Is it raining in London today, and should I take an umbrella with me when I go out this afternoon?",
    "Name a color.",
    "Compare the weather in Berlin and Madrid.",
]
MAX_NEW = 12


def conversation(question: str) -> list[Any]:
    return [{"role": "system", "content": "You are a weather assistant."}, {"role": "user", "content": question}]


def policy(**options: Any) -> LocalPolicy:
    settings: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": MAX_NEW, "loaded": loaded_model()}
    settings.update(options)
    return LocalPolicy(**settings)


@pytest.fixture(scope="module")
def batched() -> tuple[LocalPolicy, list[Completion]]:
    """Eight episodes in flight at once through one policy."""

    async def run() -> tuple[LocalPolicy, list[Completion]]:
        local = policy(batch_wait_ms=500)
        try:
            results = await asyncio.gather(*(local.complete(conversation(q), TOOLS, task=TASK) for q in QUESTIONS))
        finally:
            await local.aclose()
        return local, list(results)

    return asyncio.run(run())


def test_concurrent_requests_share_forward_passes(batched: tuple[LocalPolicy, list[Completion]]) -> None:
    local, results = batched
    stats = local.stats
    assert stats.requests == 8
    assert (stats.batches, stats.prefills, stats.max_batch, stats.joined) == (1, 1, 8, 0)
    assert stats.completion_tokens == sum(r.completion_tokens for r in results)
    assert stats.prompt_tokens == sum(r.prompt_tokens for r in results)
    # all eight share the system turn with the tools: run through the model once, then the prefill of each prompt
    # starts from it
    assert (stats.prefix_misses, stats.prefix_hits) == (1, 8)
    end = loaded_model()[1].convert_tokens_to_ids("<|im_end|>")
    system = len(local._prefixes.first_turn(results[0].tokens.prompt_token_ids, end))  # type: ignore[union-attr]
    assert system > 50 and stats.cached_tokens == 8 * system
    for result in results:
        assert isinstance(result.raw_text, str)
        assert 1 <= result.completion_tokens <= MAX_NEW
        assert result.prompt_tokens > 50  # the tool schema is in the prompt
        parsed = parse_completion(result.raw_text)
        assert result.message["role"] == "assistant"
        assert result.message["content"] == parsed.content
        assert result.malformed == parsed.malformed
        assert result.latency_s > 0


def test_finished_rows_leave_the_batch(batched: tuple[LocalPolicy, list[Completion]]) -> None:
    """Each row is decoded until its own end only: rows that finished early cost no further decode steps."""
    local, results = batched
    lengths = [r.completion_tokens for r in results]
    assert len(set(lengths)) > 1, "the prompts should end at different lengths for this test to mean anything"
    # the first token of each row comes from the prefill, every further one from a decode step with that row in it
    assert sum(rows * steps for rows, steps in local.stats.batch_sizes.items()) == sum(n - 1 for n in lengths)
    assert local.stats.decode_steps == max(lengths) - 1
    assert min(local.stats.batch_sizes) < 8  # the batch shrank


async def test_greedy_batched_output_equals_unbatched(batched: tuple[LocalPolicy, list[Completion]]) -> None:
    _, results = batched
    alone = policy(batch_size=1)
    try:
        for index in (0, 1):  # the most padded prompt and the longest one
            single = await alone.complete(conversation(QUESTIONS[index]), TOOLS, task=TASK)
            assert single.raw_text == results[index].raw_text
            assert single.completion_tokens == results[index].completion_tokens
            assert single.prompt_tokens == results[index].prompt_tokens
    finally:
        await alone.aclose()
    assert alone.stats.max_batch == 1
    assert (alone.stats.prefix_misses, alone.stats.prefix_hits) == (1, 2)


def test_cached_prefix_output_equals_plain_generation(batched: tuple[LocalPolicy, list[Completion]]) -> None:
    """The shared-prefix cache and middle padding change nothing: same tokens as generating from the bare prompt."""
    import torch

    _, results = batched
    model, tokenizer = loaded_model()
    prompt = render_prompt(tokenizer, conversation(QUESTIONS[0]), TOOLS)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=[end],
                                pad_token_id=tokenizer.pad_token_id)
    plain = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :].tolist()).split("<|im_end|>")[0]
    assert results[0].raw_text == plain


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):  # 30 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_requests_arriving_while_a_batch_runs_join_it() -> None:
    """Late requests join the running batch between decode steps, with the same tokens as when run alone.

    The first joiner's prompt is longer than the running rows (they get padded to it), the second one's shorter
    (it gets padded to them).
    """
    running, longer, shorter = QUESTIONS[0], QUESTIONS[1], QUESTIONS[3]
    local = policy(max_new_tokens=24, batch_size=4, batch_wait_ms=200)
    try:
        first = asyncio.gather(*(local.complete(conversation(q), TOOLS, task=TASK) for q in (running, QUESTIONS[2])))
        await until(lambda: local.stats.decode_steps >= 2, "the first batch to start decoding")
        second = asyncio.ensure_future(local.complete(conversation(longer), TOOLS, task=TASK))
        await until(lambda: local.stats.joined >= 1 and local.stats.decode_steps >= 10, "the first joiner")
        third = await local.complete(conversation(shorter), TOOLS, task=TASK)
        early, late = await first, await second
    finally:
        await local.aclose()
    stats = local.stats
    assert (stats.batches, stats.joined, stats.prefills, stats.max_batch) == (1, 2, 3, 4)
    assert (stats.prefix_misses, stats.prefix_hits) == (1, 4)
    alone = policy(max_new_tokens=24, batch_size=1)
    try:
        for question, together in ((longer, late), (shorter, third), (running, early[0])):
            single = await alone.complete(conversation(question), TOOLS, task=TASK)
            assert together.raw_text == single.raw_text
            assert together.completion_tokens == single.completion_tokens
    finally:
        await alone.aclose()


def broken_model() -> tuple[Any, Any]:
    """A real (tiny, random) Llama whose head always emits a token id beyond its embedding table.

    Prefill works (prompt ids are in range); the first decode step fails inside the model's forward.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = loaded_model()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    model.lm_head = torch.nn.Linear(16, len(tokenizer) + 10, bias=True)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[-1] = 1.0
    return model, tokenizer


async def test_a_failed_decode_step_is_delivered_to_every_waiter_and_the_worker_goes_on() -> None:
    local = policy(loaded=broken_model(), batch_wait_ms=200)
    try:
        outcomes = await asyncio.gather(
            *(local.complete(conversation(q), TOOLS, task=TASK) for q in QUESTIONS[:3]), return_exceptions=True
        )
        assert (local.stats.prefills, local.stats.max_batch) == (1, 0)  # prefill worked, the first decode step failed
        for outcome in outcomes:
            assert isinstance(outcome, PolicyError)
            assert "generation failed" in str(outcome) and "index out of range" in str(outcome)
        with pytest.raises(PolicyError, match="generation failed"):  # the worker still answers
            await local.complete(conversation("Hi"), [], task=TASK)
    finally:
        await local.aclose()


async def test_an_episode_turn_is_prefilled_from_its_previous_turn() -> None:
    """A second turn computes only what is new, with the same tokens as a policy that caches nothing."""
    first_messages = conversation(QUESTIONS[1])
    turns = policy(max_new_tokens=24)
    plain = policy(max_new_tokens=24, prefix_cache_mb=0)
    try:
        first = await turns.complete(first_messages, TOOLS, task=TASK)
        assert first.tokens is not None
        prompt_one = first.tokens.prompt_token_ids
        second_messages = [*first_messages, first.message, {"role": "user", "content": "And in Lyon?"}]
        before = turns.stats.cached_tokens
        second = await turns.complete(second_messages, TOOLS, task=TASK)
        assert second.tokens is not None
        reused = turns.stats.cached_tokens - before
        # the whole first prompt at least (and the answer where the template renders it as generated)
        assert len(prompt_one) <= reused < len(second.tokens.prompt_token_ids)
        assert second.tokens.prompt_token_ids[:reused] == (prompt_one + first.tokens.token_ids)[:reused]
        assert len(turns._prefixes) == 2  # the system turn and the latest turn; the first turn was superseded
        for messages, cached in ((first_messages, first), (second_messages, second)):
            alone = await plain.complete(messages, TOOLS, task=TASK)
            assert alone.raw_text == cached.raw_text
            assert alone.tokens is not None and cached.tokens is not None
            assert alone.tokens.token_ids == cached.tokens.token_ids
    finally:
        await turns.aclose()
        await plain.aclose()
    assert (plain.stats.prefix_hits, plain.stats.cached_tokens, len(plain._prefixes)) == (0, 0, 0)


def test_prefix_cache_lookup_budget_and_superseded_turns() -> None:
    """Longest common prefix (never the whole prompt), least recently used out first, earlier turns dropped."""
    import torch

    from collector.policies._prefix_cache import PrefixCache

    def states(tokens: list[int]) -> list[tuple[Any, Any]]:  # 2 layers, 1 head, 4 dims: 64 bytes a position
        keys = torch.tensor(tokens, dtype=torch.float32).view(1, -1, 1).expand(1, -1, 4).contiguous()
        return [(keys, keys.clone()), (keys.clone(), keys.clone())]

    cache = PrefixCache(max_bytes=64 * 100, min_tokens=4)
    a = list(range(40))
    cache.store(a, states(a))
    found, n = cache.lookup(None, [*a, 99], end_id=-1)
    assert n == 40 and found is not None and found[0][0][0, :n, 0].tolist() == [float(t) for t in a]
    assert cache.lookup(None, a, end_id=-1)[1] == 39  # the last prompt token is always computed
    assert cache.lookup(None, [*a[:10], 77, 78], end_id=-1)[1] == 10  # the match stops where the tokens differ
    assert cache.lookup(None, [*a[:3], 77, 78], end_id=-1) == (None, 0)  # under min_tokens
    longer = [*a, 5, 6, 7]
    cache.store(longer, states(longer))
    assert len(cache) == 1  # `a` was a prefix of it: superseded
    b = list(range(100, 160))
    cache.store(b, states(b))  # 43 + 60 positions > 100: the least recently used goes
    assert len(cache) == 1 and cache.nbytes == 60 * 64 <= cache.max_bytes
    assert cache.lookup(None, [*longer, 1], end_id=-1) == (None, 0)
    assert cache.lookup(None, [*b, 1], end_id=-1)[1] == 60
    cache.store(list(range(200, 310)), states(list(range(200, 310))))  # larger than the whole budget: not kept
    assert len(cache) == 1 and cache.lookup(None, [*b, 1], end_id=-1)[1] == 60
    assert (cache.hits, cache.misses) == (5, 0)


async def test_the_model_loads_in_the_dtype_asked_for() -> None:
    import torch

    local = LocalPolicy(temperature=0.0, max_new_tokens=8, dtype="bfloat16")
    try:
        result = await local.complete(conversation(QUESTIONS[2]), TOOLS, task=TASK)
        assert local._loaded is not None and local._loaded[0].dtype == torch.bfloat16
        assert result.completion_tokens >= 1 and result.tokens is not None and result.tokens.token_ids
    finally:
        await local.aclose()


def test_prefill_groups_keep_padding_small() -> None:
    """Prompts whose uncached rests differ a lot are prefilled apart: one long rest would pad every short one."""
    from collector.policies._batcher import _groups

    def row(name: str, total: int, cached: int) -> tuple[str, list[int], None, int]:
        return (name, [0] * total, None, cached)

    rows = [row("long", 3000, 0), row("a", 1200, 1100), row("b", 1150, 1040), row("c", 900, 0)]
    groups = [[entry[0] for entry in group] for group in _groups(rows)]
    assert groups == [["a", "b"], ["c"], ["long"]]  # rests 100 and 110 together; 900 and 3000 each alone
    assert [[e[0] for e in g] for g in _groups([row(str(i), 500 + i, 0) for i in range(8)])] == [
        [str(i) for i in range(8)]]  # similar prompts: one prefill


async def test_sampling_is_reproducible_with_a_seed() -> None:
    texts = []
    for _ in range(2):
        sampler = policy(temperature=1.0, top_p=0.9, seed=7, max_new_tokens=16)
        try:
            texts.append((await sampler.complete(conversation("Write a word."), [], task=TASK)).raw_text)
        finally:
            await sampler.aclose()
    assert texts[0] == texts[1]


async def test_checkpoint_saved_with_save_pretrained_loads_back_by_path(tmp_path: Path) -> None:
    model, tokenizer = loaded_model()
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    reloaded = make_policy("local", model=str(tmp_path / "ckpt"), temperature=0.0, max_new_tokens=MAX_NEW,
                           device="cpu")
    reference = policy()
    try:
        assert reloaded.model == str(tmp_path / "ckpt")
        assert reloaded.name == "local"
        mine = await reloaded.complete(conversation("Weather in Tokyo?"), TOOLS, task=TASK)
        theirs = await reference.complete(conversation("Weather in Tokyo?"), TOOLS, task=TASK)
        assert mine.raw_text == theirs.raw_text
    finally:
        await reloaded.aclose()
        await reference.aclose()


async def test_prompt_longer_than_the_context_fails_alone_and_the_worker_goes_on() -> None:
    local = policy(batch_wait_ms=200)
    try:
        too_long, fine = await asyncio.gather(
            local.complete(conversation("word " * 9000), [], task=TASK),
            local.complete(conversation("Hi"), [], task=TASK),
            return_exceptions=True,
        )
        assert isinstance(too_long, PolicyError)
        assert re.search(r"prompt has \d+ tokens.*context of 8192", str(too_long))
        assert isinstance(fine, Completion) and fine.completion_tokens >= 1
        ok = await local.complete(conversation("Hi"), [], task=TASK)
        assert ok.raw_text == fine.raw_text
    finally:
        await local.aclose()


async def test_closed_policy_refuses_requests() -> None:
    local = policy()
    await local.complete(conversation("Hi"), [], task=TASK)
    await local.aclose()
    await local.aclose()
    with pytest.raises(PolicyError, match="closed"):
        await local.complete(conversation("Hi"), [], task=TASK)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_wait_ms": -1}, "batch_wait_ms must be >= 0"),
        ({"prefix_cache_mb": -1}, "prefix_cache_mb must be >= 0"),
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalPolicy(**options)
