"""Read-only SQL for the viewer: run summaries, filtered and paginated episode lists, chart aggregates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from collector.errors import ConfigError
from collector.store import Store

__all__ = [
    "EpisodeFilter",
    "EpisodePage",
    "eval_comparison",
    "filter_choices",
    "list_episodes",
    "reward_histogram",
    "run_summaries",
    "run_summary",
    "success_by_family",
    "value_distribution",
]

PASSED_CHOICES = ("any", "yes", "no")
STATUS_CHOICES = ("any", "done", "failed", "running")
MAX_PAGE_SIZE = 500

_RUN_SUMMARY_SQL = """
SELECT r.id, r.kind, r.policy, r.model, r.status, r.created_at, r.finished_at,
       COALESCE(s.episodes, 0) AS episodes, COALESCE(s.done, 0) AS done, COALESCE(s.failed, 0) AS failed,
       COALESCE(s.running, 0) AS running, COALESCE(s.passed, 0) AS passed, s.mean_reward, s.families
FROM runs r LEFT JOIN (
    SELECT run_id, COUNT(*) AS episodes,
           SUM(status = 'done') AS done, SUM(status = 'failed') AS failed, SUM(status = 'running') AS running,
           SUM(passed = 1) AS passed, AVG(CASE WHEN status = 'done' THEN reward END) AS mean_reward,
           GROUP_CONCAT(DISTINCT family) AS families
    FROM episodes {where} GROUP BY run_id
) s ON s.run_id = r.id
"""


def _finish_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["families"] = sorted(f for f in (row["families"] or "").split(",") if f)
    finished = int(row["done"]) + int(row["failed"])
    out["success_rate"] = (int(row["passed"]) / finished) if finished else None
    return out


def run_summaries(store: Store) -> list[dict[str, Any]]:
    """One summary per run, newest first: policy, model, families, done/failed/running, mean reward, success rate.

    The success rate counts failed episodes (errors) as not passed: it is passed / (done + failed).
    """
    sql = _RUN_SUMMARY_SQL.format(where="") + " ORDER BY r.created_at DESC, r.id"
    return [_finish_summary(r) for r in store.db.query(sql)]


def run_summary(store: Store, run_id: str) -> dict[str, Any]:
    """The summary of one run, with its decoded config.

    Raises:
        StoreError: no such run (the message lists the known runs).
    """
    run = store.get_run(run_id)  # raises StoreError naming the known runs
    sql = _RUN_SUMMARY_SQL.format(where="WHERE run_id = ?") + " WHERE r.id = ?"
    [row] = list(store.db.query(sql, [run_id, run_id]))
    out = _finish_summary(row)
    out["config"] = run["config"]
    return out


def filter_choices(store: Store) -> dict[str, list[str]]:
    """The values offered in the episode filters: run ids, families and error types present in the store."""

    def column(sql: str) -> list[str]:
        return [str(r[0]) for r in store.db.execute(sql) if r[0] is not None]

    return {
        "runs": column("SELECT id FROM runs ORDER BY created_at DESC"),
        "families": column("SELECT DISTINCT family FROM episodes ORDER BY family"),
        "error_types": column("SELECT DISTINCT error_type FROM episodes WHERE error_type IS NOT NULL ORDER BY 1"),
    }


def _one(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    return "" if value is None else str(value).strip()


def _number(params: Mapping[str, Any], key: str) -> float | None:
    raw = _one(params, key)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"filter {key!r} must be a number (for example 0.5), got {raw!r}") from None


def _int(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = _one(params, key)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key!r} must be a whole number from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{key!r} must be a whole number from {low} to {high}, got {value}")
    return value


@dataclass(frozen=True)
class EpisodeFilter:
    """What the episode list shows. Empty strings and None mean "no constraint"."""

    run: str = ""
    family: str = ""
    passed: str = "any"
    status: str = "any"
    reward_min: float | None = None
    reward_max: float | None = None
    error_type: str = ""
    q: str = ""
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, Any], per_page: int = 50) -> EpisodeFilter:
        """Parse query-string parameters, naming what was wrong and what is accepted.

        Raises:
            ConfigError: a value is not one of the accepted ones.
        """
        passed = _one(params, "passed") or "any"
        if passed not in PASSED_CHOICES:
            raise ConfigError(f"filter 'passed' must be one of {', '.join(PASSED_CHOICES)}; got {passed!r}")
        status = _one(params, "status") or "any"
        if status not in STATUS_CHOICES:
            raise ConfigError(f"filter 'status' must be one of {', '.join(STATUS_CHOICES)}; got {status!r}")
        low, high = _number(params, "reward_min"), _number(params, "reward_max")
        if low is not None and high is not None and low > high:
            raise ConfigError(f"filter 'reward_min' ({low}) must not exceed 'reward_max' ({high})")
        return cls(
            run=_one(params, "run"),
            family=_one(params, "family"),
            passed=passed,
            status=status,
            reward_min=low,
            reward_max=high,
            error_type=_one(params, "error_type"),
            q=_one(params, "q"),
            page=_int(params, "page", 1, 1, 10_000_000),
            per_page=_int(params, "per_page", per_page, 1, MAX_PAGE_SIZE),
        )

    def where(self) -> tuple[str, list[Any]]:
        """The SQL WHERE clause (possibly empty) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("run_id", self.run), ("family", self.family), ("error_type", self.error_type)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.passed != "any":
            clauses.append("passed = ?")
            params.append(1 if self.passed == "yes" else 0)
        if self.status != "any":
            clauses.append("status = ?")
            params.append(self.status)
        if self.reward_min is not None:
            clauses.append("reward >= ?")
            params.append(self.reward_min)
        if self.reward_max is not None:
            clauses.append("reward <= ?")
            params.append(self.reward_max)
        if self.q:
            # Text search over what identifies an episode and what it said: the task (its prompt), the final
            # answer and the error. instr() is case-sensitive; lower() on both sides makes it case-insensitive.
            needle = self.q.lower()
            clauses.append(
                "(instr(lower(task_id), ?) > 0 OR instr(lower(COALESCE(final_answer, '')), ?) > 0"
                " OR instr(lower(COALESCE(error_message, '')), ?) > 0 OR instr(lower(COALESCE(task, '')), ?) > 0)"
            )
            params.extend([needle] * 4)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def query_args(self, **overrides: Any) -> dict[str, str]:
        """The non-default filter values as query-string arguments (for links to other pages)."""
        values = {**asdict(self), **overrides}
        defaults = asdict(EpisodeFilter())
        return {k: str(v) for k, v in values.items() if v not in (None, "") and v != defaults[k]}


@dataclass
class EpisodePage:
    """One page of the episode list."""

    filter: EpisodeFilter
    total: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filter.per_page))


_LIST_COLUMNS = (
    "id, run_id, task_id, family, sample_index, policy, model, status, passed, score, reward, turns, tool_calls, "
    "tool_errors, malformed_calls, wall_time_s, error_type, started_at"
)


def list_episodes(store: Store, flt: EpisodeFilter) -> EpisodePage:
    """The episodes matching `flt`, newest first, one page of them, and how many match in all."""
    where, params = flt.where()
    total = int(store.db.execute(f"SELECT COUNT(*) FROM episodes{where}", params).fetchone()[0])
    offset = (flt.page - 1) * flt.per_page
    rows = []
    for row in store.db.query(
        f"SELECT {_LIST_COLUMNS} FROM episodes{where} ORDER BY rowid DESC LIMIT ? OFFSET ?",
        [*params, flt.per_page, offset],
    ):
        row["passed"] = None if row["passed"] is None else bool(row["passed"])
        rows.append(row)
    _mark_changed_verdicts(store, rows)
    return EpisodePage(filter=flt, total=total, rows=rows)


def _mark_changed_verdicts(store: Store, rows: list[dict[str, Any]]) -> None:
    """Set `verdict_changed` on rows whose verdict re-verification changed (a database before schema 3 has none)."""
    for row in rows:
        row["verdict_changed"] = False
    if not rows or "verdict_history" not in store.db.table_names():
        return
    by_id = {row["id"]: row for row in rows}
    marks = ",".join("?" * len(by_id))
    for episode_id, passed in store.db.execute(
        f"SELECT episode_id, passed FROM verdict_history WHERE episode_id IN ({marks})", list(by_id)
    ):
        row = by_id[episode_id]
        if (None if passed is None else bool(passed)) != row["passed"]:
            row["verdict_changed"] = True


def _run_clause(run_ids: Sequence[str], prefix: str = " AND ") -> tuple[str, list[Any]]:
    if not run_ids:
        return "", []
    return f"{prefix}run_id IN ({','.join('?' * len(run_ids))})", list(run_ids)


def reward_histogram(store: Store, run_ids: Sequence[str] = (), bins: int = 20) -> list[dict[str, Any]]:
    """Rewards of finished (done) episodes in `bins` equal-width bins: [{"low", "high", "count"}]."""
    clause, params = _run_clause(run_ids)
    base = f"FROM episodes WHERE status = 'done' AND reward IS NOT NULL{clause}"
    low, high = store.db.execute(f"SELECT MIN(reward), MAX(reward) {base}", params).fetchone()
    if low is None:
        return []
    width = (high - low) / bins if high > low else 1.0
    counts = {
        int(b): int(n)
        for b, n in store.db.execute(
            f"SELECT MIN(CAST((reward - ?) / ? AS INTEGER), ?) AS b, COUNT(*) {base} GROUP BY b",
            [low, width, bins - 1, *params],
        )
    }
    n_bins = bins if high > low else 1
    return [
        {"low": low + i * width, "high": low + (i + 1) * width, "count": counts.get(i, 0)} for i in range(n_bins)
    ]


def success_by_family(store: Store, run_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per family: finished episodes, passed, success rate (failed episodes count as not passed)."""
    clause, params = _run_clause(run_ids)
    rows = store.db.execute(
        "SELECT COALESCE(family, '(none)'), COUNT(*), SUM(passed = 1) FROM episodes "
        f"WHERE status IN ('done', 'failed'){clause} GROUP BY 1 ORDER BY 1",
        params,
    )
    return [{"family": f, "episodes": int(n), "passed": int(p or 0), "rate": (p or 0) / n} for f, n, p in rows]


def value_distribution(store: Store, column: str, run_ids: Sequence[str] = (), cap: int = 30) -> list[dict[str, Any]]:
    """How many finished episodes have each value of an integer metric (`turns` or `tool_calls`); values above
    `cap` are gathered in one last bucket labelled `cap+`."""
    if column not in ("turns", "tool_calls", "tool_errors", "malformed_calls"):
        raise ConfigError(f"cannot chart {column!r}; accepted: turns, tool_calls, tool_errors, malformed_calls")
    clause, params = _run_clause(run_ids)
    rows = store.db.execute(
        f"SELECT MIN(COALESCE({column}, 0), ?) AS v, COUNT(*) FROM episodes "
        f"WHERE status IN ('done', 'failed'){clause} GROUP BY v ORDER BY v",
        [cap, *params],
    )
    return [{"value": f"{v}+" if v == cap else str(v), "count": int(n)} for v, n in rows]


def eval_comparison(store: Store, run_ids: Sequence[str] | None = None, limit: int = 4) -> dict[str, Any]:
    """Success rate per family of evaluation runs (kind = 'eval'), oldest first, for a before/after chart.

    Args:
        store: the open store.
        run_ids: the runs to compare (non-eval ones are ignored); None: the `limit` most recent eval runs.
        limit: how many recent eval runs to show when `run_ids` is empty.

    Returns:
        {"runs": [{"id", "model", "policy", "episodes", "rate"}], "families": [...],
         "rates": {run_id: {family: rate}}}
    """
    if run_ids is not None:
        clause, params = _run_clause(run_ids, prefix=" AND ") if run_ids else (" AND 0", [])
        runs = list(
            store.db.query(f"SELECT id, model, policy, config FROM runs WHERE kind = 'eval'"
                           f"{clause.replace('run_id', 'id')} ORDER BY created_at", params)
        )
    else:
        runs = list(
            store.db.query(
                "SELECT * FROM (SELECT id, model, policy, config, created_at FROM runs WHERE kind = 'eval' "
                "ORDER BY created_at DESC LIMIT ?) ORDER BY created_at",
                [limit],
            )
        )
    families: set[str] = set()
    rates: dict[str, dict[str, float]] = {}
    out_runs = []
    for run in runs:
        per_family = success_by_family(store, [run["id"]])
        rates[run["id"]] = {r["family"]: r["rate"] for r in per_family}
        families.update(rates[run["id"]])
        total = sum(r["episodes"] for r in per_family)
        passed = sum(r["passed"] for r in per_family)
        config = json.loads(run["config"]) if run.get("config") else {}
        out_runs.append(
            {
                "id": run["id"],
                "model": run["model"],
                "policy": run["policy"],
                "label": str(config.get("label") or config.get("stage") or ""),
                "episodes": total,
                "rate": passed / total if total else None,
            }
        )
    return {"runs": out_runs, "families": sorted(families), "rates": rates}
