"""Merge trajectory stores collected independently (other machines, other clusters) into one.

Episodes are deduplicated by (run, task, sample): the first finished copy wins (the target's own first, then the
sources in the order given); an episode still `running` in a source (a crash there) is not copied, and a finished
copy replaces a `running` row of the target. Tool definitions are kept per run with their hashes; a tool whose
definition differs between stores is marked `changed`, as a change during one run is. A run present in several
stores must have been collected with the same configuration (policy, model, policy options, turn limit, seed and
kind); otherwise the merge is refused before anything is written.

Every table keyed by `episode_id` is copied with its episode (the columns both stores have), so rows that later
schema versions add beside episodes travel too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.errors import ConfigError, StoreError
from collector.store import Store

__all__ = ["RUN_IDENTITY_KEYS", "MergeSummary", "merge_stores"]

# The parts of a run's recorded configuration that shape its episodes: two stores' copies of a run must agree on them.
# (Which tasks, how many samples, the concurrency or the cluster may differ: shards split exactly those.)
RUN_IDENTITY_KEYS = ("kind", "policy", "model", "policy_options", "max_turns", "seed", "base_url")


@dataclass
class MergeSummary:
    """What a merge did.

    Attributes:
        runs_added: runs that were new to the target.
        runs_extended: runs the target had, given more episodes.
        episodes_added: episodes copied.
        duplicates: finished episodes skipped because the target already had a finished copy.
        skipped_running: episodes still running in a source (not copied).
        tool_schemas_added: tool definitions new to the target.
        by_source: episodes copied per source file.
    """

    runs_added: list[str] = field(default_factory=list)
    runs_extended: list[str] = field(default_factory=list)
    episodes_added: int = 0
    duplicates: int = 0
    skipped_running: int = 0
    tool_schemas_added: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    config = run.get("config") or {}
    ident = {k: config.get(k) for k in RUN_IDENTITY_KEYS}
    for column in ("kind", "policy", "model"):  # the run row's columns are what the policy reported
        ident[column] = run.get(column) if run.get(column) is not None else ident[column]
    return ident


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def _rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]], columns: Sequence[str],
            *, ignore: bool = False) -> int:
    if not rows:
        return 0
    cols = [c for c in columns if c in rows[0]]
    sql = (f'INSERT {"OR IGNORE " if ignore else ""}INTO "{table}" ({", ".join(cols)}) '
           f'VALUES ({", ".join("?" * len(cols))})')
    before = conn.total_changes
    conn.executemany(sql, [[r[c] for c in cols] for r in rows])
    return conn.total_changes - before


def _open_source(path: Path, target: Path) -> Store:
    if not path.exists():
        raise ConfigError(f"no trajectory database at {path} (merge sources must be existing .db files)")
    if target.exists() and path.resolve() == target.resolve():
        raise ConfigError(f"{path} is the merge target itself; give --into a different file")
    try:
        return Store(path, readonly=True)
    except StoreError as exc:
        raise ConfigError(str(exc)) from exc


def _check_conflicts(target: Store, sources: list[tuple[Path, Store]]) -> None:
    """Refuse a merge where one run has different identities in two stores (before anything is written)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {
        r: (str(target.path), _identity(target.get_run(r))) for r in target.run_ids()}
    for path, src in sources:
        for run_id in src.run_ids():
            ident = _identity(src.get_run(run_id))
            if run_id not in seen:
                seen[run_id] = (str(path), ident)
                continue
            where, known = seen[run_id]
            diff = {k: (known[k], ident[k]) for k in ident if known[k] != ident[k]}
            if diff:
                detail = "; ".join(f"{k}: {a!r} in {where} vs {b!r} in {path}" for k, (a, b) in diff.items())
                raise ConfigError(
                    f"run {run_id!r} was collected with different configurations ({detail}); nothing was merged. "
                    f"Runs merge only when {', '.join(RUN_IDENTITY_KEYS)} agree: give one copy another run name")


def _merge_run(conn: sqlite3.Connection, run: dict[str, Any], columns: list[str]) -> bool:
    """Insert or update the run row; True when the run was new."""
    mine = _rows(conn, "SELECT * FROM runs WHERE id = ?", [run["id"]])
    if not mine:
        _insert(conn, "runs", [run], columns)
        return True
    old = mine[0]
    status = old["status"] if old["status"] == run["status"] else (
        "running" if "running" in (old["status"], run["status"]) else old["status"])
    created = min(x for x in (old["created_at"], run["created_at"]) if x is not None) if (
        old["created_at"] or run["created_at"]) else None
    finished = max((x for x in (old["finished_at"], run["finished_at"]) if x is not None), default=None)
    conn.execute("UPDATE runs SET status = ?, created_at = ?, finished_at = ? WHERE id = ?",
                 [status, created, finished, run["id"]])
    return False


def _merge_tools(conn: sqlite3.Connection, src: sqlite3.Connection, run_id: str) -> int:
    rows = _rows(src, "SELECT * FROM tool_schemas WHERE run_id = ?", [run_id])
    added = _insert(conn, "tool_schemas", rows, _columns(conn, "tool_schemas"), ignore=True)
    # a tool with several definitions in the run: all but the first seen are changes
    conn.execute(
        """UPDATE tool_schemas SET changed = 1 WHERE run_id = ? AND EXISTS (
               SELECT 1 FROM tool_schemas o WHERE o.run_id = tool_schemas.run_id AND o.server = tool_schemas.server
               AND o.name = tool_schemas.name AND o.hash != tool_schemas.hash
               AND (o.first_seen < tool_schemas.first_seen
                    OR (o.first_seen = tool_schemas.first_seen AND o.hash < tool_schemas.hash)))""", [run_id])
    return added


def _merge_episodes(conn: sqlite3.Connection, src: sqlite3.Connection, run_id: str, summary: MergeSummary,
                    side_tables: list[tuple[str, list[str]]]) -> int:
    ep_columns = _columns(conn, "episodes")
    mine = {(r[0], int(r[1])): (r[2], r[3]) for r in conn.execute(
        "SELECT task_id, sample_index, status, id FROM episodes WHERE run_id = ?", [run_id])}
    added = 0
    for ep in _rows(src, "SELECT * FROM episodes WHERE run_id = ? ORDER BY rowid", [run_id]):
        if ep["status"] == "running":
            summary.skipped_running += 1
            continue
        key = (ep["task_id"], int(ep["sample_index"]))
        if key in mine:
            status, old_id = mine[key]
            if status != "running":
                summary.duplicates += 1
                continue
            for table, _ in side_tables:
                conn.execute(f'DELETE FROM "{table}" WHERE episode_id = ?', [old_id])
            conn.execute("DELETE FROM episodes WHERE id = ?", [old_id])
        _insert(conn, "episodes", [ep], ep_columns)
        for table, columns in side_tables:
            _insert(conn, table, _rows(src, f'SELECT * FROM "{table}" WHERE episode_id = ? ORDER BY rowid',
                                       [ep["id"]]), columns)
        mine[key] = (ep["status"], ep["id"])
        added += 1
    return added


def merge_stores(into: str | Path, sources: Sequence[str | Path]) -> MergeSummary:
    """Merge trajectory stores into one (created if missing), in one transaction.

    Args:
        into: the target database.
        sources: the databases to merge in (read only; not changed).

    Returns:
        What was added, skipped and deduplicated.

    Raises:
        ConfigError: no sources, a missing or unreadable source, a source that is the target, or a run collected
            with different configurations in two stores (nothing is written then).
        StoreError: the target cannot be opened, or a store is from a newer mcpgym.
    """
    if not sources:
        raise ConfigError("merge needs at least one source database (mcpgym merge --into DB SRC.db...)")
    target_path = Path(into)
    opened = [(Path(s), _open_source(Path(s), target_path)) for s in sources]
    existed = target_path.exists()
    target = Store(target_path)
    summary = MergeSummary()
    try:
        try:
            _check_conflicts(target, opened)
        except ConfigError:
            target.close()
            if not existed:  # a refused merge leaves no empty target behind
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target_path}{suffix}").unlink(missing_ok=True)
            raise
        conn = target.db.conn
        target_tables = set(_tables(conn))
        with conn:
            for path, src in opened:
                sconn = src.db.conn
                side = [(t, [c for c in _columns(conn, t) if c in set(_columns(sconn, t))])
                        for t in _tables(sconn) if t in target_tables and t != "episodes"
                        and "episode_id" in _columns(sconn, t)]
                run_columns = [c for c in _columns(conn, "runs") if c in set(_columns(sconn, "runs"))]
                copied = 0
                for run in _rows(sconn, "SELECT * FROM runs ORDER BY created_at"):
                    if _merge_run(conn, run, run_columns):
                        summary.runs_added.append(run["id"])
                    elif run["id"] not in summary.runs_extended and run["id"] not in summary.runs_added:
                        summary.runs_extended.append(run["id"])
                    summary.tool_schemas_added += _merge_tools(conn, sconn, run["id"])
                    copied += _merge_episodes(conn, sconn, run["id"], summary, side)
                summary.episodes_added += copied
                summary.by_source[str(path)] = copied
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"merging into {target_path} failed (nothing was written): {exc}") from exc
    finally:
        target.close()
        for _, src in opened:
            src.close()
    return summary


def summary_json(summary: MergeSummary) -> str:
    """The summary as one JSON line (for scripts)."""
    return json.dumps(summary.__dict__, sort_keys=True)
