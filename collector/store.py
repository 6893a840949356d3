"""The trajectory store: one SQLite file (WAL mode, one writer) holding runs, episodes, messages and tool calls.

Tables (schema version in `meta`):

    runs         id, kind (collect|eval), policy, model, config (JSON), status, created_at, finished_at
    tool_schemas run_id, server, name, hash, schema (JSON), first_seen, changed (1 when a tool's definition changed
                 during the run)
    episodes     id, run_id, task_id, family, split, sample_index, policy, model, status (running|done|failed),
                 task (JSON), tools (JSON, the OpenAI tools offered), final_answer, passed, score, reward,
                 reward_components (JSON), verdict_details (JSON), turns, tool_calls, tool_errors, malformed_calls,
                 prompt_tokens, completion_tokens, wall_time_s, error_type, error_message, started_at, finished_at
                 UNIQUE (run_id, task_id, sample_index)
    messages     episode_id, idx, role, content, tool_calls (JSON, arguments kept as JSON strings), tool_call_id, name,
                 malformed (1 when the model's output could not be parsed as it stood), latency_s
    tool_calls   episode_id, call_id, turn, server, tool, arguments (the string the model emitted), result, is_error,
                 malformed, error_kind, duration_s
    verdict_history  episode_id, replaced_at, passed, score, reward, reward_components (JSON), verdict_details (JSON),
                 verifier (JSON spec), reason: the verdicts `mcpgym reverify` replaced, oldest first (schema 3)
    message_tokens  episode_id, idx (the assistant message), token_ids, logprobs (JSON lists: the tokens as the
                 policy sampled them), prompt_from, prompt_token_ids (the turn's prompt after the first prompt_from
                 tokens, which repeat the previous turn's prompt and answer) (schema 4)

Crash safety: an episode's row is inserted as `running` when it starts; its messages, tool calls and final row are
written in one transaction when it ends, so `kill -9` loses no finished episode. `reset_in_flight` removes what was
running at a crash so that `--resume` re-runs exactly those.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from collector.errors import StoreError

__all__ = ["SCHEMA_VERSION", "Store", "schema_hash"]

SCHEMA_VERSION = 4
# Indexes added by each schema version after the first (migrations run them on older databases).
_INDEXES_V2 = (
    # the viewer's run summaries, charts and list filters read only these columns: a covering index spares the scan
    "CREATE INDEX IF NOT EXISTS ix_episodes_run_summary ON episodes(run_id, status, passed, reward, family)",
    "CREATE INDEX IF NOT EXISTS ix_episodes_error_type ON episodes(error_type)",
)
# Schema 3: the verdicts a re-verification replaced (`mcpgym reverify`), so no verdict is ever lost.
_TABLES_V3 = (
    """CREATE TABLE IF NOT EXISTS verdict_history (
        episode_id TEXT NOT NULL REFERENCES episodes(id), replaced_at REAL NOT NULL, passed INTEGER, score REAL,
        reward REAL, reward_components TEXT, verdict_details TEXT, verifier TEXT, reason TEXT)""",
    "CREATE INDEX IF NOT EXISTS ix_verdict_history_episode ON verdict_history(episode_id)",
)

# Version 4: the tokens an assistant turn was sampled as, where the policy reported them (JSON lists; the prompt's ids
# are kept as the tokens the turn's prompt added after the previous turn's prompt and answer, from `prompt_from` on:
# the whole prompt when the new prompt does not start with them)
_TABLES_V4 = (
    """CREATE TABLE IF NOT EXISTS message_tokens (
        episode_id TEXT NOT NULL REFERENCES episodes(id), idx INTEGER NOT NULL, token_ids TEXT NOT NULL,
        logprobs TEXT, prompt_from INTEGER, prompt_token_ids TEXT, PRIMARY KEY (episode_id, idx))""",
)

_JSON_EPISODE_COLUMNS = ("task", "tools", "reward_components", "verdict_details")


def schema_hash(schema: dict[str, Any]) -> str:
    """A stable short hash of a tool definition (canonical JSON)."""
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _now() -> float:
    return time.time()


def _token_rows(episode_id: str, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`message_tokens` rows of the messages that carry `tokens` (each prompt kept as what it adds)."""
    rows: list[dict[str, Any]] = []
    previous: list[int] | None = None  # the last turn's prompt and answer
    for idx, msg in enumerate(messages):
        tokens = msg.get("tokens")
        if not tokens or not tokens.get("token_ids"):
            continue
        ids = [int(t) for t in tokens["token_ids"]]
        prompt = tokens.get("prompt_token_ids")
        start = 0
        if prompt is not None and previous is not None and prompt[: len(previous)] == previous:
            start = len(previous)
        rows.append({"episode_id": episode_id, "idx": idx, "token_ids": json.dumps(ids),
                     "logprobs": json.dumps(tokens["logprobs"]) if tokens.get("logprobs") is not None else None,
                     "prompt_from": start if prompt is not None else None,
                     "prompt_token_ids": json.dumps(prompt[start:]) if prompt is not None else None})
        previous = list(prompt) + ids if prompt is not None else None
    return rows


class Store:
    """The SQLite trajectory store. Open it once per process; all writes go through this object.

    Args:
        path: the database file (created if missing).
        readonly: open without creating or migrating (for the viewer and dataset building).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise StoreError(f"no trajectory database at {self.path}")
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
            conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self._migrate()
            else:
                self._check_version()
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database is locked", ...
            raise StoreError(f"cannot open trajectory database {self.path}: {exc}") from exc

    # ------------------------------------------------------------------ schema
    def _check_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this mcpgym understands ({SCHEMA_VERSION}); "
                "upgrade mcpgym"
            )
        return version

    def _migrate(self) -> None:
        version = self._check_version()
        if version >= SCHEMA_VERSION:
            return
        if version < 1:
            self._create_v1()
        if version < 2:
            with self.db.conn:  # indexes for the viewer (measured in benchmarks/bench_viewer.py)
                for sql in _INDEXES_V2:
                    self.db.execute(sql)
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '2')")
        if version < 3:
            with self.db.conn:
                for sql in _TABLES_V3:
                    self.db.execute(sql)
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '3')")
        if version < 4:
            with self.db.conn:
                for sql in _TABLES_V4:
                    self.db.execute(sql)
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '4')")

    def _create_v1(self) -> None:
        with self.db.conn:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                """CREATE TABLE IF NOT EXISTS runs (
                    id TEXT PRIMARY KEY, kind TEXT NOT NULL DEFAULT 'collect', policy TEXT, model TEXT,
                    config TEXT, status TEXT NOT NULL DEFAULT 'running', created_at REAL, finished_at REAL)"""
            )
            self.db.execute(
                """CREATE TABLE IF NOT EXISTS tool_schemas (
                    run_id TEXT NOT NULL, server TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
                    schema TEXT NOT NULL, first_seen REAL, changed INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (run_id, server, name, hash))"""
            )
            self.db.execute(
                """CREATE TABLE IF NOT EXISTS episodes (
                    id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), task_id TEXT NOT NULL,
                    family TEXT, split TEXT, sample_index INTEGER NOT NULL, policy TEXT, model TEXT,
                    status TEXT NOT NULL, task TEXT, tools TEXT, final_answer TEXT,
                    passed INTEGER, score REAL, reward REAL, reward_components TEXT, verdict_details TEXT,
                    turns INTEGER DEFAULT 0, tool_calls INTEGER DEFAULT 0, tool_errors INTEGER DEFAULT 0,
                    malformed_calls INTEGER DEFAULT 0, prompt_tokens INTEGER DEFAULT 0,
                    completion_tokens INTEGER DEFAULT 0, wall_time_s REAL, error_type TEXT, error_message TEXT,
                    started_at REAL, finished_at REAL,
                    UNIQUE (run_id, task_id, sample_index))"""
            )
            self.db.execute(
                """CREATE TABLE IF NOT EXISTS messages (
                    episode_id TEXT NOT NULL REFERENCES episodes(id), idx INTEGER NOT NULL, role TEXT NOT NULL,
                    content TEXT, tool_calls TEXT, tool_call_id TEXT, name TEXT,
                    malformed INTEGER NOT NULL DEFAULT 0, latency_s REAL,
                    PRIMARY KEY (episode_id, idx))"""
            )
            self.db.execute(
                """CREATE TABLE IF NOT EXISTS tool_calls (
                    episode_id TEXT NOT NULL REFERENCES episodes(id), call_id TEXT, turn INTEGER, server TEXT,
                    tool TEXT, arguments TEXT, result TEXT, is_error INTEGER NOT NULL DEFAULT 0,
                    malformed INTEGER NOT NULL DEFAULT 0, error_kind TEXT, duration_s REAL)"""
            )
            for sql in (
                "CREATE INDEX IF NOT EXISTS ix_episodes_run ON episodes(run_id, status)",
                "CREATE INDEX IF NOT EXISTS ix_episodes_family ON episodes(family, passed)",
                "CREATE INDEX IF NOT EXISTS ix_tool_calls_episode ON tool_calls(episode_id)",
            ):
                self.db.execute(sql)
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '1')")

    # ------------------------------------------------------------------ runs
    def create_run(
        self, run_id: str, *, policy: str, model: str, config: dict[str, Any], kind: str = "collect"
    ) -> None:
        """Create a run, or re-open an existing one (resume) with its config updated."""
        with self.db.conn:
            self.db.table("runs").upsert(
                {
                    "id": run_id,
                    "kind": kind,
                    "policy": policy,
                    "model": model,
                    "config": json.dumps(config, sort_keys=True, default=str),
                    "status": "running",
                    "created_at": self.get_run(run_id)["created_at"] if self.has_run(run_id) else _now(),
                },
                pk="id",
            )

    def has_run(self, run_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone() is not None

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run named {run_id!r} in {self.path}; known runs: {', '.join(self.run_ids()) or 'none'}")
        run = rows[0]
        run["config"] = json.loads(run["config"]) if run["config"] else {}
        return run

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created_at")]

    def finish_run(self, run_id: str, status: str = "done") -> None:
        with self.db.conn:
            self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", [status, _now(), run_id])

    # ------------------------------------------------------------------ tool schemas
    def record_tools(self, run_id: str, server: str, tools: Sequence[dict[str, Any]]) -> list[str]:
        """Record a server's tool definitions for a run. Returns the names whose definition changed mid-run."""
        changed: list[str] = []
        with self.db.conn:
            for tool in tools:
                name = str(tool["name"])
                digest = schema_hash(tool)
                known = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT hash FROM tool_schemas WHERE run_id = ? AND server = ? AND name = ?",
                        [run_id, server, name],
                    )
                ]
                if digest in known:
                    continue
                is_change = bool(known)
                if is_change:
                    changed.append(name)
                self.db.table("tool_schemas").insert(
                    {
                        "run_id": run_id,
                        "server": server,
                        "name": name,
                        "hash": digest,
                        "schema": json.dumps(tool, sort_keys=True),
                        "first_seen": _now(),
                        "changed": int(is_change),
                    }
                )
        return changed

    # ------------------------------------------------------------------ episodes
    @staticmethod
    def episode_id(run_id: str, task_id: str, sample_index: int) -> str:
        return f"{run_id}/{task_id}/{sample_index}"

    def start_episode(
        self, run_id: str, task: dict[str, Any], sample_index: int, *, policy: str, model: str
    ) -> str:
        """Insert the `running` row of an episode and return its id."""
        eid = self.episode_id(run_id, task["id"], sample_index)
        with self.db.conn:
            self.db.table("episodes").insert(
                {
                    "id": eid,
                    "run_id": run_id,
                    "task_id": task["id"],
                    "family": task.get("family"),
                    "split": task.get("split"),
                    "sample_index": sample_index,
                    "policy": policy,
                    "model": model,
                    "status": "running",
                    "task": json.dumps(task, sort_keys=True),
                    "started_at": _now(),
                },
                replace=True,
            )
        return eid

    def finish_episode(
        self,
        episode_id: str,
        *,
        fields: dict[str, Any],
        messages: Sequence[dict[str, Any]],
        tool_calls: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Write an episode's messages, tool calls and final row in one transaction.

        Args:
            episode_id: the id returned by `start_episode`.
            fields: episode columns (status, passed, score, reward, metrics, errors...); dicts and lists are stored
                as JSON.
            messages: OpenAI messages; extra keys `malformed` and `latency_s` are stored in their own columns.
            tool_calls: rows for the tool_calls table (without episode_id).
        """
        row = {k: (json.dumps(v, default=str) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        row.setdefault("finished_at", _now())
        msg_rows = []
        for idx, msg in enumerate(messages):
            calls = msg.get("tool_calls")
            msg_rows.append(
                {
                    "episode_id": episode_id,
                    "idx": idx,
                    "role": msg["role"],
                    "content": msg.get("content"),
                    "tool_calls": json.dumps(calls) if calls else None,
                    "tool_call_id": msg.get("tool_call_id"),
                    "name": msg.get("name"),
                    "malformed": int(bool(msg.get("malformed", False))),
                    "latency_s": msg.get("latency_s"),
                }
            )
        call_rows = [{"episode_id": episode_id, **c} for c in tool_calls]
        token_rows = _token_rows(episode_id, messages)
        with self.db.conn:
            self.db.execute("DELETE FROM messages WHERE episode_id = ?", [episode_id])
            self.db.execute("DELETE FROM tool_calls WHERE episode_id = ?", [episode_id])
            self.db.execute("DELETE FROM message_tokens WHERE episode_id = ?", [episode_id])
            if token_rows:
                self.db.table("message_tokens").insert_all(token_rows)
            if msg_rows:
                self.db.table("messages").insert_all(msg_rows)
            if call_rows:
                self.db.table("tool_calls").insert_all(call_rows)
            self.db.table("episodes").update(episode_id, row)

    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """(task_id, sample_index) pairs of the run that finished (done or failed): skipped by `--resume`."""
        return {
            (r[0], int(r[1]))
            for r in self.db.execute(
                "SELECT task_id, sample_index FROM episodes WHERE run_id = ? AND status != 'running'", [run_id]
            )
        }

    def reset_in_flight(self, run_id: str) -> int:
        """Delete the episodes of a run that were still running (a crash); returns how many."""
        with self.db.conn:
            ids = [r[0] for r in self.db.execute(
                "SELECT id FROM episodes WHERE run_id = ? AND status = 'running'", [run_id])]
            for eid in ids:
                self.db.execute("DELETE FROM messages WHERE episode_id = ?", [eid])
                self.db.execute("DELETE FROM tool_calls WHERE episode_id = ?", [eid])
                self.db.execute("DELETE FROM message_tokens WHERE episode_id = ?", [eid])
                self.db.execute("DELETE FROM episodes WHERE id = ?", [eid])
        return len(ids)

    # ------------------------------------------------------------------ re-verification
    def replace_verdict(self, episode_id: str, *, fields: dict[str, Any], reason: str,
                        task: dict[str, Any] | None = None) -> None:
        """Replace an episode's verdict and reward, keeping the old ones in `verdict_history` (one transaction).

        Args:
            episode_id: the episode.
            fields: the new `passed`, `score`, `reward`, `reward_components` and `verdict_details`.
            reason: why the verdict was replaced (e.g. "reverify").
            task: the episode's task with the verifier it was judged by now, when that changed.
        """
        old = self.get_episode(episode_id)
        history = {
            "episode_id": episode_id, "replaced_at": _now(),
            "passed": None if old.get("passed") is None else int(bool(old["passed"])), "score": old.get("score"),
            "reward": old.get("reward"), "reward_components": json.dumps(old.get("reward_components"), default=str),
            "verdict_details": json.dumps(old.get("verdict_details"), default=str),
            "verifier": json.dumps((old.get("task") or {}).get("verifier"), sort_keys=True, default=str),
            "reason": reason,
        }
        row = {k: (json.dumps(v, default=str) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        if task is not None:
            row["task"] = json.dumps(task, sort_keys=True)
        with self.db.conn:
            self.db.table("verdict_history").insert(history)
            self.db.table("episodes").update(episode_id, row)

    def verdict_history(self, episode_id: str) -> list[dict[str, Any]]:
        """The verdicts replaced by re-verification, oldest first ([] for a database from before schema 3)."""
        if "verdict_history" not in self.db.table_names():
            return []
        rows = list(self.db.query(
            "SELECT * FROM verdict_history WHERE episode_id = ? ORDER BY replaced_at, rowid", [episode_id]))
        for row in rows:
            for key in ("reward_components", "verdict_details", "verifier"):
                row[key] = json.loads(row[key]) if row.get(key) else None
            row["passed"] = None if row["passed"] is None else bool(row["passed"])
        return rows

    # ------------------------------------------------------------------ reading
    def _decode_episode(self, row: dict[str, Any]) -> dict[str, Any]:
        for key in _JSON_EPISODE_COLUMNS:
            if row.get(key):
                row[key] = json.loads(row[key])
        if row.get("passed") is not None:
            row["passed"] = bool(row["passed"])
        return row

    def episodes(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        status: str | None = None,
        families: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Episode rows (JSON columns decoded), optionally filtered by runs, status and families."""
        where: list[str] = []
        params: list[Any] = []
        if run_ids:
            where.append(f"run_id IN ({','.join('?' * len(run_ids))})")
            params.extend(run_ids)
        if status:
            where.append("status = ?")
            params.append(status)
        if families:
            where.append(f"family IN ({','.join('?' * len(families))})")
            params.extend(families)
        sql = "SELECT * FROM episodes" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rowid"
        for row in self.db.query(sql, params):
            yield self._decode_episode(row)

    def get_episode(self, episode_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM episodes WHERE id = ?", [episode_id]))
        if not rows:
            raise StoreError(f"no episode {episode_id!r}")
        return self._decode_episode(rows[0])

    def messages(self, episode_id: str) -> list[dict[str, Any]]:
        """The episode's OpenAI messages, in order; `malformed`/`latency_s` kept as extra keys where set."""
        out: list[dict[str, Any]] = []
        for r in self.db.query("SELECT * FROM messages WHERE episode_id = ? ORDER BY idx", [episode_id]):
            msg: dict[str, Any] = {"role": r["role"], "content": r["content"]}
            if r["tool_calls"]:
                msg["tool_calls"] = json.loads(r["tool_calls"])
            if r["tool_call_id"]:
                msg["tool_call_id"] = r["tool_call_id"]
            if r["name"]:
                msg["name"] = r["name"]
            if r["malformed"]:
                msg["malformed"] = True
            if r["latency_s"] is not None:
                msg["latency_s"] = r["latency_s"]
            out.append(msg)
        return out

    def tool_calls(self, episode_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM tool_calls WHERE episode_id = ? ORDER BY rowid", [episode_id]))

    def message_tokens(self, episode_id: str) -> dict[int, dict[str, Any]]:
        """The sampled tokens of the episode's assistant messages, by message index (empty when none were reported).

        Each value: `token_ids`, `logprobs` (or None) and `prompt_token_ids`, the whole prompt of that turn (or None),
        rebuilt from what the store keeps.
        """
        if "message_tokens" not in self.db.table_names():
            return {}
        out: dict[int, dict[str, Any]] = {}
        previous: list[int] | None = None
        for r in self.db.query("SELECT * FROM message_tokens WHERE episode_id = ? ORDER BY idx", [episode_id]):
            ids = json.loads(r["token_ids"])
            prompt = json.loads(r["prompt_token_ids"]) if r["prompt_token_ids"] is not None else None
            if prompt is not None and r["prompt_from"]:
                prompt = (previous or [])[: r["prompt_from"]] + prompt
            out[int(r["idx"])] = {"token_ids": ids, "logprobs": json.loads(r["logprobs"]) if r["logprobs"] else None,
                                  "prompt_token_ids": prompt}
            previous = prompt + ids if prompt is not None else None
        return out

    def close(self) -> None:
        self.db.conn.close()
