"""The collector's commands: `mcpgym collect`, `export`, `tasks` and `view` (thin over library functions)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from collector.errors import CollectorError

__all__ = ["collect", "export", "merge", "reverify", "tasks", "view"]

_CTX = {"help_option_names": ["-h", "--help"]}


def _suites(value: tuple[str, ...]) -> list[str]:
    return [s.strip() for item in value for s in item.split(",") if s.strip()]


def _progress_callbacks(console: Any) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console, transient=False)
    state: dict[str, Any] = {}

    def on_progress(summary: Any, result: Any) -> None:
        stats = (f"done {summary.done} · failed {summary.failed} · reward {summary.mean_reward:.2f} · "
                 f"{summary.tokens_per_s:.0f} tok/s")
        if "id" not in state:
            progress.start()
            state["id"] = progress.add_task(summary.run, total=summary.total - summary.skipped, stats=stats)
        progress.update(state["id"], completed=summary.finished, stats=stats)

    return progress, on_progress


def _summary_table(summary: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"run {summary.run}: {summary.finished} episodes in {summary.wall_time_s:.1f}s"
                        f" ({summary.skipped} already recorded)")
    for col in ("family", "done", "failed", "passed", "pass rate", "mean reward"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for fam, c in sorted(summary.by_family.items()):
        done = int(c["done"])
        table.add_row(fam, str(done), str(int(c["failed"])), str(int(c["passed"])),
                      f"{c['passed'] / done:.0%}" if done else "-", f"{c['reward_sum'] / done:.2f}" if done else "-")
    table.add_row("[bold]all", str(summary.done), str(summary.failed), str(summary.passed),
                  f"{summary.pass_rate:.0%}" if summary.done else "-",
                  f"{summary.mean_reward:.2f}" if summary.done else "-")
    return table



@click.command(context_settings=_CTX)
@click.option("--tasks", "suites", multiple=True, default=("weather",), show_default=True,
              help="Task suites, comma-separated or repeated: weather, files, search, code, code-repair, test-writing, "
                   "tool-selection, schema, "
                   "schema-selection (schema:weather+files: those servers' tools only), or a .jsonl file.")
@click.option("--policy", type=click.Choice(["openai", "local", "scripted"]), default="scripted", show_default=True,
              help="Who acts: an OpenAI-compatible endpoint, a local transformers model, or the scripted experts.")
@click.option("--model", default=None, help="Model name (openai: as served; local: built-in name or checkpoint dir).")
@click.option("--base-url", default=None, help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")
@click.option("--api-key-env", default=None, help="Name of the environment variable that holds the API key.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (openai and local policies).")
@click.option("--servers", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MCP client config (YAML/JSON, {'mcpServers': {...}}). Default: start 'mcpgym serve all'.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Trajectory database.")
@click.option("--run", "run_name", required=True, help="Run name (unique in the database).")
@click.option("--samples", type=int, default=1, show_default=True, help="Episodes per task.")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Episodes in flight.")
@click.option("--max-turns", type=int, default=10, show_default=True, help="Assistant turns per episode.")
@click.option("--seed", type=int, default=0, show_default=True, help="Task generation and shuffle seed.")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="train", show_default=True,
              help="Which split of the tasks to use.")
@click.option("--limit", type=int, default=None, help="Keep the first N tasks (a mix of every suite).")
@click.option("--resume", is_flag=True, help="Finish an existing run: skip recorded episodes, redo in-flight ones.")
@click.option("--quiet", is_flag=True, help="No progress bar (the summary table is still printed).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|auto|local",
              help="Run the episodes on a Ray cluster (needs mcpgym[scale]); this process records them.")
@click.option("--workers", type=int, default=None,
              help="Ray workers, each with its own tool servers and --concurrency episodes (default: one per node).")
def collect(suites: tuple[str, ...], policy: str, model: str | None, base_url: str | None, api_key_env: str | None,
            temperature: float | None, servers: Path | None, db: Path, run_name: str, samples: int,
            concurrency: int, max_turns: int, seed: int, split: str, limit: int | None, resume: bool,
            quiet: bool, ray_address: str | None, workers: int | None) -> None:
    """Run agents through MCP servers on tasks and record every episode in SQLite.

    \b
    Examples:
      mcpgym collect --tasks weather,files --policy scripted --db traj.db --run gold --samples 1
      mcpgym collect --tasks code --policy openai --base-url http://127.0.0.1:8000/v1 \\
          --model Qwen/Qwen2.5-7B-Instruct --api-key-env VLLM_KEY --db traj.db --run q7 --concurrency 32
      mcpgym collect --tasks weather --policy scripted --db traj.db --run gold --resume
      mcpgym collect --tasks code --policy openai --base-url http://10.0.0.5:8000/v1 --model m \\
          --db traj.db --run q7 --ray auto --workers 8 --concurrency 16
    """
    from rich.console import Console

    from collector.collect import CollectConfig, run_collection, terminate_as_interrupt

    console = Console(stderr=True)
    options = {"temperature": temperature} if temperature is not None and policy != "scripted" else {}
    config = CollectConfig(db=db, run=run_name, tasks=_suites(suites), policy=policy, model=model,
                           base_url=base_url, api_key_env=api_key_env, policy_options=options, servers=servers,
                           samples=samples, concurrency=concurrency, max_turns=max_turns, seed=seed,
                           split=None if split == "all" else split, limit=limit, resume=resume,
                           ray=ray_address, workers=workers)
    progress, on_progress = _progress_callbacks(console)
    # A plain `kill` ends the run like Ctrl-C does: the servers the run started are stopped on the way out.
    terminate_as_interrupt()
    try:
        summary = run_collection(config, on_progress=None if quiet else on_progress)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        console.print(f"interrupted: finished episodes are saved; continue with --run {run_name} --resume")
        sys.exit(130)
    finally:
        progress.stop()
    Console().print(_summary_table(summary))
    if summary.reset_in_flight:
        console.print(f"resumed: {summary.reset_in_flight} episodes that were in flight at the interruption ran again")
    if summary.errors:
        console.print("failed episodes by error: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items())))
    if summary.changed_tools:
        console.print(f"[yellow]tool definitions changed during the run: {', '.join(summary.changed_tools)}")


@click.command(context_settings=_CTX)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Trajectory database.")
@click.option("--run", "run_name", required=True, help="Run name.")
@click.option("--format", "fmt", type=click.Choice(["openai-jsonl", "react-jsonl"]), default="openai-jsonl",
              show_default=True, help="openai-jsonl: messages + tools + reward; react-jsonl: thought/action steps.")
@click.option("--out", required=True, help="Output JSONL file ('-' for stdout).")
@click.option("--status", type=click.Choice(["done", "failed", "all"]), default="done", show_default=True,
              help="Which episodes to export.")
def export(db: Path, run_name: str, fmt: str, out: str, status: str) -> None:
    """Export a run's recorded episodes as JSONL, one episode per line.

    \b
    Example:
      mcpgym export --db traj.db --run gold --format openai-jsonl --out gold.jsonl
    """
    from collector.export import export_run

    try:
        count = export_run(db, run_name, fmt, out, status=status)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
    if out != "-":
        click.echo(f"wrote {count} episodes to {out}", err=True)


@click.command(context_settings=_CTX)
@click.option("--into", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The database to merge into (created if missing).")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def merge(into: Path, sources: tuple[Path, ...]) -> None:
    """Merge trajectory databases collected independently into one.

    Episodes are deduplicated by run, task and sample (the first finished copy wins); tool definitions are kept
    with their hashes; a run collected with different configurations in two databases is refused.

    \b
    Example:
      mcpgym merge --into all.db node1.db node2.db
    """
    from collector.merge import merge_stores

    try:
        summary = merge_stores(into, list(sources))
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"merged {summary.episodes_added} episodes into {into} (new runs: {', '.join(summary.runs_added) or '-'}; "
               f"extended: {', '.join(summary.runs_extended) or '-'}); {summary.duplicates} duplicates and "
               f"{summary.skipped_running} unfinished episodes skipped, {summary.tool_schemas_added} tool definitions "
               "added", err=True)


@click.command(context_settings=_CTX)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Trajectory database.")
@click.option("--run", "run_name", required=True, help="The run whose episodes are judged again.")
@click.option("--servers", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MCP client config for episodes that need live tools (file_state, unit_tests). "
                   "Default: start 'mcpgym serve all', as collect does.")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Episodes judged at once.")
@click.option("--dry-run", is_flag=True, help="Judge and report, but write nothing.")
@click.option("--show", type=int, default=20, show_default=True, help="List this many changed episodes.")
def reverify(db: Path, run_name: str, servers: Path | None, concurrency: int, dry_run: bool, show: int) -> None:
    """Judge a run's stored episodes again with today's verifiers and rewards; keep the old verdicts.

    \b
    Every changed episode takes the new verdict and reward; the old ones are kept in the database's verdict
    history and shown by the viewer. Episodes whose verifier needs live tools are replayed through the servers;
    those that cannot be judged again are counted by reason.

    \b
    Example:
      mcpgym reverify --db traj.db --run gold
    """
    from rich.console import Console
    from rich.table import Table

    from collector.reverify import reverify_run

    try:
        report = reverify_run(db, run_name, servers=servers, concurrency=concurrency, dry_run=dry_run)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    table = Table(title=f"reverify {run_name}" + (" (dry run: nothing written)" if dry_run else ""))
    table.add_column("")
    table.add_column("episodes", justify="right")
    for label, value in (("in the run", report.episodes), ("judged again", report.judged),
                         ("verdict changed", report.verdicts_changed), ("  passed before, not now", report.newly_failed),
                         ("  not passed before, passed now", report.newly_passed),
                         ("reward changed", report.rewards_changed), ("judged by a newer verifier", report.specs_updated),
                         ("not judged again", sum(report.skipped.values()))):
        table.add_row(label, str(value))
    console.print(table)
    for reason, count in sorted(report.skipped.items(), key=lambda kv: -kv[1]):
        console.print(f"not judged again ({count}): {reason}")
    for change in report.changes[:show]:
        was = "—" if change.old_passed is None else ("passed" if change.old_passed else "not passed")
        now = "passed" if change.new_passed else "not passed"
        old = "—" if change.old_reward is None else f"{change.old_reward:.2f}"
        console.print(f"{change.episode_id}: {was} -> {now}, reward {old} -> {change.new_reward:.2f}")


@click.command(context_settings=_CTX)
@click.option("--suite", "suites", multiple=True, required=True,
              help="Suites, comma-separated or repeated: weather, files, search, code, code-repair, test-writing, "
                   "tool-selection, schema, "
                   "schema-selection (schema:weather+files: those servers' tools only), or a .jsonl file.")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="all", show_default=True,
              help="Which split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generation and shuffle seed.")
@click.option("--limit", type=int, default=None, help="Print the first N tasks.")
@click.option("--servers", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MCP client config for the schema suite (default: start 'mcpgym serve all').")
def tasks(suites: tuple[str, ...], split: str, seed: int, limit: int | None, servers: Path | None) -> None:
    """Print tasks as JSONL (one task per line): a starting point for writing your own suites.

    \b
    Example:
      mcpgym tasks --suite weather --split train --limit 3
    """
    from collector.tasks.registry import is_live_suite, load_tasks

    names = _suites(suites)
    try:
        live = any(is_live_suite(s) for s in names)
        tools_by_server = asyncio.run(_list_tools(servers)) if live else None
        found = load_tasks(names, split=None if split == "all" else split, seed=seed, limit=limit,
                           tools_by_server=tools_by_server)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
    for task in found:
        click.echo(json.dumps(task.model_dump(mode="json"), ensure_ascii=False))


async def _list_tools(servers: Path | None) -> dict[str, list[dict[str, Any]]]:
    from collector.pool import ToolPool
    from collector.servers import load_server_config

    async with ToolPool(load_server_config(servers) if servers else None) as pool:
        return await pool.list_tools()


@click.command(context_settings=_CTX)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Trajectory database.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind (keep it on loopback; any other needs --token).")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port.")
@click.option("--token", envvar="MCPGYM_VIEWER_TOKEN", default=None,
              help="Token every request must prove (bearer header, or open a page once with ?token=...); "
                   "required when --host is not loopback [env MCPGYM_VIEWER_TOKEN].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="HOST[:PORT]",
              help="Extra accepted Host header value, e.g. viewer.lan:8000 (repeatable).")
def view(db: Path, host: str, port: int, token: str | None, allowed_hosts: tuple[str, ...]) -> None:
    """Browse recorded runs and episodes in a local web viewer.

    \b
    Examples:
      mcpgym view --db traj.db --port 8000
      MCPGYM_VIEWER_TOKEN=$(openssl rand -hex 24) mcpgym view --db traj.db --host 0.0.0.0 \\
          --allowed-host viewer.lan:8000     # then open http://viewer.lan:8000/?token=... once
    """
    from collector.viewer.app import serve

    shown = f"[{host}]" if ":" in host else host
    click.echo(f"viewer: http://{shown}:{port}/  (Ctrl-C stops it)", err=True)
    try:
        serve(db, host, port, token=token or None, allowed_hosts=allowed_hosts)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
