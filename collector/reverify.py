"""Re-judging stored episodes with today's verifiers and rewards (`mcpgym reverify --db DB --run RUN`).

Data collected before a verifier fix is corrected instead of thrown away: every finished episode of a run is judged
again by `collector.episode.judge`, the one function the episode loop judges with, from what the store holds (the
task, the final answer and the recorded calls). When the verdict, score or reward differs, the episode row takes the
new ones and the old ones go to the store's `verdict_history` table (nothing is lost; the viewer shows the change).

Built-in tasks are judged by the verifier their family builds today (`tasks.registry.current_verifier`): the old
lenient specs of search, files-find and weather-compare tasks become the exact checks of their declared answers.

What needs live tools: a `file_state` verifier reads the final workspace, which the store does not keep, so the
episode is replayed: a fresh workspace gets the task's setup files, then every recorded well-formed call is made again
in its recorded order (calls made in parallel in one turn run one after the other). If a replayed call fails where the
recorded one succeeded, or the other way round, the final state cannot be trusted and the episode is skipped with
that reason. A `unit_tests` verifier runs the final answer's code in the exec server's sandbox (no replay needed
unless the spec reads `solution_path` from the workspace). The servers are started as `collect` starts them (the
managed gateway, or `--servers`); an episode whose servers are not attached is skipped, and the report says why.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.episode import CallRecord, Judgement, calls_from_rows, judge
from collector.errors import CollectorError, ConfigError, ToolSessionError, VerifierError
from collector.pool import ToolPool, ToolSession
from collector.servers import ServerSpec, load_server_config
from collector.settings import CollectorSettings
from collector.store import Store
from collector.tasks.registry import current_verifier
from collector.workspace import FILES_SERVER

__all__ = ["Change", "ReverifyReport", "reverify_async", "reverify_run"]

REASON = "reverify"
_TOLERANCE = 1e-9


@dataclass
class Change:
    """One episode whose verdict or reward changed."""

    episode_id: str
    family: str
    old_passed: bool | None
    new_passed: bool
    old_reward: float | None
    new_reward: float


@dataclass
class ReverifyReport:
    """What a re-verification did.

    Attributes:
        run: the run.
        episodes: the run's episodes.
        judged: episodes judged again.
        verdicts_changed: episodes whose passed/not-passed verdict changed.
        newly_failed: of those, episodes that passed before and do not now.
        newly_passed: of those, episodes that did not pass before and do now.
        rewards_changed: episodes whose reward or reward components changed (formulas or verdict).
        specs_updated: episodes whose task is judged by a newer verifier spec than the one stored.
        skipped: episodes not judged again, by reason.
        changes: the episodes whose verdict or reward changed.
        dry_run: nothing was written.
    """

    run: str
    episodes: int = 0
    judged: int = 0
    verdicts_changed: int = 0
    newly_failed: int = 0
    newly_passed: int = 0
    rewards_changed: int = 0
    specs_updated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False


class _Skip(Exception):
    """The episode cannot be judged again; the message says why."""


def _unrecorded_parse_errors(messages: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[CallRecord]:
    """Placeholders for calls a model wrote so badly that an older collector kept no row for them.

    Before the episode core, an output the policy could not parse marked its assistant message malformed and was
    counted, but left no tool_calls row; judging today counts every call the model emitted, so each such message
    stands for one malformed call.
    """
    malformed_ids = {r.get("call_id") for r in rows if r.get("malformed")}
    out = []
    for msg in messages:
        if msg.get("role") != "assistant" or not msg.get("malformed"):
            continue
        ids = {c.get("id") for c in msg.get("tool_calls") or []}
        if not ids & malformed_ids:
            out.append(
                CallRecord(
                    id="",
                    name="",
                    raw_arguments="",
                    arguments=None,
                    server=None,
                    tool="",
                    error_kind="invalid_json",
                    message=None,
                )
            )
    return out


async def _replay(session: ToolSession, calls: list[CallRecord]) -> None:
    """Make the recorded well-formed calls again, in order; raise _Skip when one fares differently."""
    for call in calls:
        if call.malformed or call.server is None or call.arguments is None:
            continue
        out = await session.call_tool(call.server, call.tool, call.arguments)
        if bool(out.is_error) != call.is_error:
            was = "failed" if call.is_error else "succeeded"
            raise _Skip(f"replay diverged: a {call.tool} call that {was} when recorded fared otherwise replayed")


class _Judge:
    """Judges the episodes of one run, starting the servers when the first episode needs them."""

    def __init__(self, servers: Mapping[str, ServerSpec] | None, settings: CollectorSettings) -> None:
        self.servers = servers
        self.settings = settings
        self.pool: ToolPool | None = None
        self.pool_error: str | None = None
        self._lock = asyncio.Lock()

    async def _pool(self) -> ToolPool:
        async with self._lock:
            if self.pool is None and self.pool_error is None:
                pool = ToolPool(self.servers, settings=self.settings)
                try:
                    await pool.start()
                except (ToolSessionError, ConfigError) as exc:
                    await pool.aclose()
                    self.pool_error = str(exc)
                else:
                    self.pool = pool
        if self.pool is None:
            raise _Skip(f"the servers could not start: {self.pool_error}")
        return self.pool

    async def episode(self, task: dict[str, Any], calls: list[CallRecord], final_answer: str) -> Judgement:
        spec = task["verifier"]
        vtype = spec.get("type")
        if vtype not in ("file_state", "unit_tests"):
            return await judge(task, calls, final_answer)
        pool = await self._pool()
        servers = list(task.get("servers") or [])
        missing = sorted(set(servers) - set(pool.server_names))
        if missing:
            raise _Skip(f"a {vtype} verifier needs the {', '.join(missing)} server(s), which are not attached")
        needs_files = vtype == "file_state" or bool(spec.get("solution_path"))
        try:
            async with pool.session(servers, tools=dict(task.get("tools") or {})) as session:
                files = None
                if needs_files:
                    if FILES_SERVER not in session.servers:
                        raise _Skip(f"a {vtype} verifier reads the workspace, and the task has no files server")
                    await session.setup_workspace(dict(task.get("setup_files") or {}))
                    await _replay(session, calls)
                    files = await session.snapshot_files()
                run_tests = session.run_tests if vtype == "unit_tests" else None
                return await judge(task, calls, final_answer, files=files, run_tests=run_tests)
        except ToolSessionError as exc:
            raise _Skip(f"server error: {exc}") from None

    async def aclose(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()


def _changed(old: Mapping[str, Any], judgement: Judgement) -> bool:
    old_components = old.get("reward_components") or {}
    if set(old_components) != set(judgement.components):
        return True
    if any(abs(float(old_components[k]) - float(v)) > _TOLERANCE for k, v in judgement.components.items()):
        return True
    old_reward = old.get("reward")
    old_score = old.get("score")
    return (
        old.get("passed") is None
        or bool(old["passed"]) != bool(judgement.verdict["passed"])
        or old_reward is None
        or abs(float(old_reward) - judgement.reward) > _TOLERANCE
        or old_score is None
        or abs(float(old_score) - float(judgement.verdict["score"])) > _TOLERANCE
    )


async def reverify_async(
    db: str | Path,
    run: str,
    *,
    servers: str | Path | Mapping[str, ServerSpec] | None = None,
    settings: CollectorSettings | None = None,
    concurrency: int = 4,
    dry_run: bool = False,
    on_progress: Callable[[ReverifyReport], None] | None = None,
) -> ReverifyReport:
    """Judge every finished episode of a run again, keep the old verdicts, and report what changed.

    Args:
        db: the trajectory database.
        run: the run.
        servers: an MCP client config (path or specs) for episodes that need live tools; None starts the managed
            gateway, as `collect` does.
        settings: collector settings (timeouts, the gateway).
        concurrency: episodes judged at once.
        dry_run: judge and report, write nothing.
        on_progress: called with the report after each episode.

    Returns:
        The report.

    Raises:
        StoreError: no such database or run.
        ConfigError: a bad server config or concurrency.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    specs = load_server_config(servers) if isinstance(servers, (str, Path)) else servers
    store = Store(db, readonly=dry_run)
    judger = _Judge(specs, settings or CollectorSettings())
    report = ReverifyReport(run=run, dry_run=dry_run)
    try:
        store.get_run(run)  # raises, naming the known runs
        episodes = list(store.episodes([run]))
        report.episodes = len(episodes)
        sem = asyncio.Semaphore(concurrency)

        async def one(episode: dict[str, Any]) -> None:
            async with sem:
                await _one(store, judger, report, episode)
            if on_progress is not None:
                on_progress(report)

        await asyncio.gather(*(one(e) for e in episodes))
        return report
    finally:
        await judger.aclose()
        store.close()


async def _one(store: Store, judger: _Judge, report: ReverifyReport, episode: dict[str, Any]) -> None:
    eid = episode["id"]
    if episode.get("status") != "done":
        report.skipped[f"{episode.get('status')} episode: it has no verdict"] += 1
        return
    stored_task = episode.get("task") or {}
    if not stored_task.get("verifier"):
        report.skipped["no task or verifier stored"] += 1
        return
    try:
        spec = current_verifier(stored_task)
    except CollectorError as exc:
        report.skipped[f"today's verifier cannot be built: {exc}"] += 1
        return
    task = {**stored_task, "verifier": spec}
    spec_updated = spec != stored_task["verifier"]
    rows = store.tool_calls(eid)
    calls = calls_from_rows(rows) + _unrecorded_parse_errors(store.messages(eid), rows)
    try:
        judgement = await judger.episode(task, calls, str(episode.get("final_answer") or ""))
    except _Skip as exc:
        report.skipped[str(exc)] += 1
        return
    except VerifierError as exc:
        report.skipped[f"invalid verifier spec: {exc}"] += 1
        return
    report.judged += 1
    report.specs_updated += int(spec_updated)
    if not _changed(episode, judgement) and not spec_updated:
        return
    new_passed = bool(judgement.verdict["passed"])
    old_passed = episode.get("passed")
    components_changed = (episode.get("reward_components") or {}) != judgement.components
    if old_passed is None or bool(old_passed) != new_passed:
        report.verdicts_changed += 1
        report.newly_passed += int(new_passed)
        report.newly_failed += int(not new_passed)
    old_reward = episode.get("reward")
    if old_reward is None or abs(float(old_reward) - judgement.reward) > _TOLERANCE or components_changed:
        report.rewards_changed += 1
    report.changes.append(
        Change(
            eid,
            str(episode.get("family") or ""),
            None if old_passed is None else bool(old_passed),
            new_passed,
            old_reward,
            judgement.reward,
        )
    )
    if report.dry_run:
        return
    fields = {
        "passed": int(new_passed),
        "score": float(judgement.verdict["score"]),
        "reward": judgement.reward,
        "reward_components": judgement.components,
        "verdict_details": json.loads(json.dumps(judgement.verdict.get("details"), default=str)),
    }
    store.replace_verdict(eid, fields=fields, reason=REASON, task=task if spec_updated else None)


def reverify_run(db: str | Path, run: str, **options: Any) -> ReverifyReport:
    """Synchronous `reverify_async` (see it for the arguments)."""
    return asyncio.run(reverify_async(db, run, **options))
