"""Thin CLIs of training: `mcpgym dataset sft|grpo`, `mcpgym train sft|grpo`, `mcpgym eval`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from training.errors import TrainingError
from training.settings import TrainingSettings

__all__ = ["dataset", "demo", "eval_cmd", "train"]

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _clean_errors(fn: F) -> F:
    """Turn the package's errors into a clean CLI error (no stack trace)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from collector.errors import CollectorError

        try:
            return fn(*args, **kwargs)
        except (TrainingError, CollectorError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _runs(value: str | None) -> list[str]:
    return [r.strip() for r in (value or "").split(",") if r.strip()]


def _common_dataset_options(fn: F) -> F:
    for option in reversed([
        click.option("--db", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Trajectory database written by 'mcpgym collect'."),
        click.option("--runs", default="", help="Comma-separated run ids (default: every run in the database)."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Output directory (HF dataset on disk, <split>.jsonl, README.md card, report.json)."),
        click.option("--family", "families", multiple=True, help="Only these task families (repeatable)."),
        click.option("--mix", default="", help="Family proportions, e.g. code=0.4,files=0.2,search=0.2,weather=0.2."),
        click.option("--eval-fraction", type=float, default=0.1, show_default=True,
                     help="Share of task ids held out as the eval split (no task appears in both)."),
        click.option("--seed", type=int, default=None, help="Seed for mixing and splitting [env MCPGYM_TRAIN_SEED]."),
    ]):
        fn = option(fn)
    return fn


def _finish(built: Any, out: Path) -> None:
    from training.datasets import save_dataset

    save_dataset(built, out)
    click.echo(built.report.to_text())
    click.echo(f"saved to {out}")


def _write_tokens(db: Path, runs: str, out: Path, families: tuple[str, ...], *, passed_only: bool,
                  tokenizer: str | None) -> None:
    """Token-level rows and the drift report beside the conversational rows."""
    from training.datasets.tokens import write_token_rows
    from training.trainers.common import get_profile, load_model

    _, tok = load_model(tokenizer or TrainingSettings().token_model, get_profile("cpu"))
    report = write_token_rows(db, out, runs=_runs(runs), families=families, passed_only=passed_only, tokenizer=tok)
    click.echo(f"tokens: {report.rows} rows from {report.episodes} episodes ({report.episodes_without_tokens} without "
               f"stored tokens); {report.drifted_turns} of {report.turns} turns drift when re-tokenized "
               f"(tokens.jsonl, drift.json)")


@click.group(context_settings=CONTEXT)
def dataset() -> None:
    """Build SFT or GRPO datasets from recorded episodes.

    \b
    Examples:
      mcpgym dataset sft --db runs.db --runs expert --out data/sft --mix code=0.4,files=0.2,search=0.2,weather=0.2
      mcpgym dataset grpo --db runs.db --out data/grpo --drop-constant-reward
    """


@dataset.command("sft", context_settings=CONTEXT)
@_common_dataset_options
@click.option("--min-reward", type=float, default=None, help="Keep episodes with at least this reward [default 0].")
@click.option("--include-failed", is_flag=True, help="Also keep episodes the verifier did not pass.")
@click.option("--max-turns", type=int, default=None, help="Drop episodes with more assistant turns.")
@click.option("--max-tool-error-rate", type=float, default=None, help="Drop episodes whose failing-call share is above.")
@click.option("--allow-invalid-format", is_flag=True,
              help="Keep episodes with malformed output or calls that do not fit an offered tool's schema.")
@click.option("--max-tokens", type=int, default=None,
              help="Drop rows longer than this many tokens (the --tokenizer model's tokenizer, chat template applied).")
@click.option("--tokenizer", default=None, help="Model whose tokenizer measures --max-tokens [default smollm2-135m].")
@click.option("--no-scrub", is_flag=True, help="Do not redact secrets (API keys, tokens, private keys, passwords).")
@click.option("--no-dedup", is_flag=True, help="Keep exact and near duplicates.")
@click.option("--near-dup", type=float, default=None,
              help="MinHash LSH Jaccard threshold for near-duplicates, 0 disables [env MCPGYM_TRAIN_DEDUP_THRESHOLD, "
                   "default 0.9].")
@click.option("--tokens", "with_tokens", is_flag=True,
              help="Also write tokens.jsonl (the sampled token ids, loss mask, logprobs) and drift.json.")
@_clean_errors
def dataset_sft(db: Path, runs: str, out: Path, families: tuple[str, ...], mix: str, eval_fraction: float,
                seed: int | None, min_reward: float | None, include_failed: bool, max_turns: int | None,
                max_tool_error_rate: float | None, allow_invalid_format: bool, max_tokens: int | None,
                tokenizer: str | None, no_scrub: bool, no_dedup: bool, near_dup: float | None,
                with_tokens: bool) -> None:
    """Build an SFT dataset: {"messages", "tools"} rows of passed, valid, scrubbed, deduplicated episodes.

    \b
    Example:
      mcpgym dataset sft --db runs.db --runs expert --out data/sft --max-turns 8 --max-tokens 2048
    """
    from training.datasets import FilterConfig, SFTOptions, build_sft, parse_proportions
    from training.datasets.build import tokenizer_counter

    settings = TrainingSettings()
    threshold = settings.dedup_threshold if near_dup is None else near_dup
    options = SFTOptions(
        filters=FilterConfig(require_passed=not include_failed,
                             min_reward=settings.min_reward if min_reward is None else min_reward,
                             max_turns=max_turns, max_tool_error_rate=max_tool_error_rate,
                             require_valid_format=not allow_invalid_format, max_tokens=max_tokens),
        scrub=not no_scrub, dedup=not no_dedup, near_dup_threshold=threshold or None,
        proportions=parse_proportions(mix) if mix else {}, eval_fraction=eval_fraction, families=families,
        seed=settings.seed if seed is None else seed,
    )
    counter = None
    if max_tokens is not None:
        from training.trainers.common import get_profile, load_model

        _, tok = load_model(tokenizer or settings.token_model, get_profile("cpu"))
        counter = tokenizer_counter(tok)
    _finish(build_sft(str(db), _runs(runs), options, count_tokens=counter), out)
    if with_tokens:
        _write_tokens(db, runs, out, families, passed_only=not include_failed, tokenizer=tokenizer)


@dataset.command("grpo", context_settings=CONTEXT)
@_common_dataset_options
@click.option("--drop-constant-reward", is_flag=True,
              help="Drop tasks whose recorded rewards never vary (no GRPO signal; a task seen once counts).")
@click.option("--tokens", "with_tokens", is_flag=True,
              help="Also write tokens.jsonl (the sampled token ids, loss mask, logprobs) and drift.json.")
@_clean_errors
def dataset_grpo(db: Path, runs: str, out: Path, families: tuple[str, ...], mix: str, eval_fraction: float,
                 seed: int | None, drop_constant_reward: bool, with_tokens: bool) -> None:
    """Build a GRPO dataset: {"prompt", "tools", "task"} rows, one per task seen in the runs.

    \b
    Example:
      mcpgym dataset grpo --db runs.db --runs sampled --out data/grpo --drop-constant-reward
    """
    from training.datasets import GRPOOptions, build_grpo, parse_proportions

    settings = TrainingSettings()
    options = GRPOOptions(drop_constant_reward=drop_constant_reward, eval_fraction=eval_fraction, families=families,
                          proportions=parse_proportions(mix) if mix else {},
                          seed=settings.seed if seed is None else seed)
    _finish(build_grpo(str(db), _runs(runs), options), out)
    if with_tokens:
        _write_tokens(db, runs, out, families, passed_only=False, tokenizer=None)


def _common_train_options(fn: F) -> F:
    for option in reversed([
        click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Dataset directory from 'mcpgym dataset'."),
        click.option("--model", default=None, help="Built-in model name or checkpoint directory [smollm2-135m]."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Checkpoint directory [env MCPGYM_TRAIN_OUTPUT_DIR/<kind>]."),
        click.option("--profile", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                     help="cpu: float32 weights, no vLLM. gpu: bf16, vLLM generation (GRPO), launch with accelerate."),
        click.option("--lora", is_flag=True, help="Train LoRA adapters (merged into the saved checkpoint)."),
        click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps."),
        click.option("--batch-size", type=int, default=4, show_default=True, help="Sequences per device per step."),
        click.option("--lr", "learning_rate", type=float, default=None, help="Peak learning rate."),
        click.option("--seed", type=int, default=None, help="Random seed [env MCPGYM_TRAIN_SEED]."),
        click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
                     help="Recompute activations in the backward pass: less memory, slower [default: the profile's, on]."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                     help="auto: bf16 on the gpu profile; on the cpu profile bf16 autocast (float32 weights) for SFT where "
                          "the CPU has bf16 matrix hardware (Intel AMX), float32 elsewhere and for GRPO. fp32/bf16: "
                          "force it (cpu)."),
    ]):
        fn = option(fn)
    return fn


@click.group(context_settings=CONTEXT)
def train() -> None:
    """Train a model with TRL (SFT or GRPO); the checkpoint loads back into 'mcpgym collect --policy local'.

    \b
    Examples:
      mcpgym train sft --data data/sft --out ckpt/sft --epochs 2
      mcpgym train grpo --data data/grpo --model ckpt/sft --out ckpt/grpo --max-steps 100
    """


@train.command("sft", context_settings=CONTEXT)
@_common_train_options
@click.option("--epochs", type=float, default=2.0, show_default=True, help="Passes over the data.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Gradient accumulation steps.")
@click.option("--max-length", type=int, default=2048, show_default=True, help="Truncate sequences to this length.")
@click.option("--eval", "do_eval", is_flag=True, help="Report the eval split's loss after each epoch.")
@_clean_errors
def train_sft_cmd(data: Path, model: str | None, out: Path | None, profile: str, lora: bool, max_steps: int | None,
                  batch_size: int, learning_rate: float | None, seed: int | None, epochs: float, grad_accum: int,
                  max_length: int, do_eval: bool, gradient_checkpointing: bool | None, precision: str) -> None:
    """Supervised fine-tuning with assistant-only loss on an SFT dataset.

    \b
    Example:
      mcpgym train sft --data data/sft --model smollm2-135m --out ckpt/sft --profile cpu --epochs 2
    """
    from training.trainers.sft import SFTRunConfig, train_sft

    settings = TrainingSettings()
    config = SFTRunConfig(data=data, out=out or settings.output_dir / "sft", model=model, profile=profile, lora=lora,
                          epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
                          learning_rate=learning_rate or 5e-5, max_length=max_length,
                          seed=settings.seed if seed is None else seed, eval=do_eval,
                          gradient_checkpointing=gradient_checkpointing, precision=precision)
    click.echo(f"saved checkpoint to {train_sft(config)}")


@train.command("grpo", context_settings=CONTEXT)
@_common_train_options
@click.option("--num-generations", type=int, default=4, show_default=True, help="Completions per prompt.")
@click.option("--max-completion-length", type=int, default=256, show_default=True,
              help="Tokens per completion (tool results included).")
@click.option("--max-tool-calls", type=int, default=4, show_default=True, help="Tool-calling rounds per rollout.")
@click.option("--beta", type=float, default=0.0, show_default=True, help="KL coefficient.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Sampling temperature of the rollouts (higher: more spread within a group).")
@click.option("--servers", type=click.Path(exists=True, dir_okay=False), default=None,
              help="MCP client config (mcpServers JSON) [default: start 'mcpgym serve all' on a loopback port].")
@click.option("--save-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also save the model every N steps as OUT/step-N (0: only the final checkpoint).")
@click.option("--allow-untrusted-tests", is_flag=True,
              help="Score code with unit-test reports not marked trusted (tests run without an isolating sandbox).")
@_clean_errors
def train_grpo_cmd(data: Path, model: str | None, out: Path | None, profile: str, lora: bool, max_steps: int | None,
                   batch_size: int, learning_rate: float | None, seed: int | None, num_generations: int,
                   max_completion_length: int, max_tool_calls: int, beta: float, temperature: float,
                   servers: str | None, allow_untrusted_tests: bool, gradient_checkpointing: bool | None,
                   precision: str, save_steps: int) -> None:
    """GRPO against the live MCP servers: each rollout gets its own session and workspace.

    \b
    Example:
      mcpgym train grpo --data data/grpo --model ckpt/sft --out ckpt/grpo --max-steps 100 --num-generations 4
    """
    from collector.servers import load_server_config
    from training.trainers.grpo import GRPORunConfig, train_grpo

    settings = TrainingSettings()
    config = GRPORunConfig(data=data, out=out or settings.output_dir / "grpo", model=model, profile=profile,
                           lora=lora, max_steps=max_steps or 50, num_generations=num_generations,
                           batch_size=batch_size, max_completion_length=max_completion_length,
                           max_tool_calls=max_tool_calls, learning_rate=learning_rate or 1e-6, beta=beta,
                           temperature=temperature, seed=settings.seed if seed is None else seed,
                           allow_untrusted_tests=allow_untrusted_tests,
                           gradient_checkpointing=gradient_checkpointing, precision=precision,
                           save_steps=save_steps)
    specs = load_server_config(servers) if servers else None
    click.echo(f"saved checkpoint to {train_grpo(config, servers=specs)}")


@click.command("eval", context_settings=CONTEXT)
@click.option("--model", "models", multiple=True,
              help="Model to evaluate (built-in name or checkpoint); give two for a before/after table "
                   "[default smollm2-135m].")
@click.option("--tasks", default="weather,files,search,code", show_default=True,
              help="Comma-separated task suites (schema:SERVER+SERVER: schema tasks over those servers' tools).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True,
              help="Task split to evaluate on.")
@click.option("--samples", type=int, default=1, show_default=True, help="Episodes per task (pass@k up to this).")
@click.option("--db", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Trajectory database the eval runs are stored in.")
@click.option("--limit", type=int, default=None, help="At most this many tasks.")
@click.option("--max-turns", type=int, default=6, show_default=True, help="Assistant turns per episode.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True, help="Tokens per model turn.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Episodes in flight.")
@click.option("--seed", type=int, default=0, show_default=True, help="Task and sampling seed.")
@click.option("--servers", type=click.Path(exists=True, dir_okay=False), default=None,
              help="MCP client config [default: start 'mcpgym serve all' on a loopback port].")
@click.option("--dtype", type=click.Choice(["checkpoint", "auto", "float32", "bfloat16"]), default="checkpoint",
              show_default=True, help="Weights and key/value cache: the checkpoint's, or auto (bfloat16 on a GPU or a "
                                      "CPU with AMX, else float32).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of a table.")
@_clean_errors
def eval_cmd(models: tuple[str, ...], tasks: str, split: str, samples: int, db: Path, limit: int | None,
             max_turns: int, max_new_tokens: int, temperature: float, concurrency: int, seed: int,
             servers: str | None, dtype: str, as_json: bool) -> None:
    """Evaluate one or two models on held-out tasks: success per family, code pass@k, tool-call validity.

    \b
    Example:
      mcpgym eval --model smollm2-135m --model ckpt/sft --tasks weather,files,search,code --split test \\
        --samples 1 --db eval.db
    """
    from dataclasses import asdict

    from training.evaluate import EvalConfig, comparison_table, evaluate

    config = EvalConfig(models=tuple(models) or (None,), db=db, tasks=tuple(_runs(tasks)), split=split,
                        samples=samples, limit=limit, max_turns=max_turns, max_new_tokens=max_new_tokens,
                        temperature=temperature, concurrency=concurrency, seed=seed, servers=servers,
                        dtype=None if dtype == "checkpoint" else dtype)
    results = evaluate(config)
    if as_json:
        click.echo(json.dumps([{**asdict(r), "validity": r.validity, "success_rate": r.success_rate}
                               for r in results], indent=2))
    else:
        click.echo(comparison_table(results))


# `mcpgym demo` lives beside the demo's library code; re-exported here, where mcpgym.cli looks for it.
from training.demo import demo_command as demo
