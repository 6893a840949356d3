"""The local full-text index: SQLite FTS5 with bm25 ranking, built atomically and on first use.

The index file holds ``docs`` (id, title, text, source), an external-content FTS5 table over title and text, and a
``meta`` table with the sources' fingerprint. Building writes a temporary file next to the target and renames it
into place, under an advisory lock, so processes starting at once never see a half-built index.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_servers.errors import BackendError, NotFoundError, ToolInputError
from mcp_servers.search.corpus import Document, iter_source_documents, sources_fingerprint
from mcp_servers.settings import ServerSettings

__all__ = [
    "SCHEMA_VERSION",
    "Document",
    "build_index",
    "ensure_index",
    "get_document",
    "index_path",
    "iter_documents",
    "match_expression",
    "search_index",
    "suggest_ids",
]

SCHEMA_VERSION = 1
TITLE_WEIGHT = 10.0  # bm25 weight of a title match relative to a body match
_WORD = re.compile(r"\w+")
_PHRASE = re.compile(r'"([^"]*)"')
_MAX_TERMS = 32
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "with",
    ]
)

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, text TEXT NOT NULL,
                  source TEXT NOT NULL);
CREATE VIRTUAL TABLE docs_fts USING fts5(title, text, content='docs', content_rowid='rowid',
                                         tokenize='porter unicode61 remove_diacritics 2');
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def index_path(settings: ServerSettings) -> Path:
    """Where the index lives: ``settings.search.index_path`` or ``<data_dir>/search.db``."""
    return settings.search.index_path or settings.data_dir / "search.db"


def _fingerprint(settings: ServerSettings) -> str:
    return sources_fingerprint(settings.search.corpus, settings.search.wiki, SCHEMA_VERSION)


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _stored_fingerprint(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        with contextlib.closing(_connect_ro(path)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
    except sqlite3.DatabaseError:
        return None  # not an index (or a corrupt one): rebuild
    return str(row[0]) if row else None


def _counts(path: Path) -> tuple[int, int]:
    with contextlib.closing(_connect_ro(path)) as db:
        documents = db.execute("SELECT count(*) FROM docs").fetchone()[0]
        sources = db.execute("SELECT count(DISTINCT source) FROM docs").fetchone()[0]
    return int(documents), int(sources)


def _write_index(target: Path, settings: ServerSettings, fingerprint: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with contextlib.closing(sqlite3.connect(tmp)) as db:
            db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
            seen: set[str] = set()
            rows: list[tuple[str, str, str, str]] = []
            duplicates = 0
            for _source, doc in iter_source_documents(settings.search.corpus, settings.search.wiki):
                if doc.id in seen:
                    duplicates += 1
                    continue
                seen.add(doc.id)
                rows.append((doc.id, doc.title, doc.text, doc.source))
            db.executemany("INSERT INTO docs(id, title, text, source) VALUES (?, ?, ?, ?)", rows)
            db.execute("INSERT INTO docs_fts(docs_fts) VALUES ('rebuild')")
            db.execute("INSERT INTO docs_fts(docs_fts) VALUES ('optimize')")
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("fingerprint", fingerprint), ("duplicates_skipped", str(duplicates)), ("built_at", str(time.time()))],
            )
            db.commit()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def build_index(settings: ServerSettings, rebuild: bool = False) -> dict[str, Any]:
    """Build the local search index unless an up-to-date one exists.

    Safe to run from several processes at once: one builds under a lock while the others wait and reuse its result.

    Args:
        settings: Server settings (``search.index_path``, ``search.corpus``, ``search.wiki``, ``data_dir``).
        rebuild: Build even if the index is up to date.

    Returns:
        ``{"documents": int, "sources": int, "path": str, "seconds": float, "built": bool}``.

    Raises:
        ConfigError: A corpus is missing or malformed.
        BackendError: The index file cannot be written.
    """
    started = time.perf_counter()
    path = index_path(settings)
    fingerprint = _fingerprint(settings)
    built = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            if rebuild or _stored_fingerprint(path) != fingerprint:
                _write_index(path, settings, fingerprint)
                built = True
        documents, sources = _counts(path)
    except (OSError, sqlite3.Error) as exc:
        raise BackendError(f"search index at {path} could not be built: {exc}") from None
    return {
        "documents": documents,
        "sources": sources,
        "path": str(path),
        "seconds": round(time.perf_counter() - started, 3),
        "built": built,
    }


def ensure_index(settings: ServerSettings) -> Path:
    """The path of an up-to-date index, building it first if it is missing or stale."""
    path = index_path(settings)
    if _stored_fingerprint(path) != _fingerprint(settings):
        build_index(settings)
    return path


@contextlib.contextmanager
def _open(settings: ServerSettings) -> Iterator[sqlite3.Connection]:
    path = ensure_index(settings)
    try:
        db = _connect_ro(path)
    except sqlite3.Error as exc:
        raise BackendError(f"search index at {path} could not be opened: {exc}") from None
    with contextlib.closing(db):
        yield db


def iter_documents(settings: ServerSettings) -> Iterator[Document]:
    """Every indexed document, in index order (building the index first if needed).

    Args:
        settings: Server settings.

    Yields:
        Documents with their stable ids.
    """
    with _open(settings) as db:
        for row in db.execute("SELECT id, title, text, source FROM docs ORDER BY rowid"):
            yield Document(*row)


def get_document(settings: ServerSettings, doc_id: str) -> Document:
    """One document by id.

    Args:
        settings: Server settings.
        doc_id: A document id such as ``wiki/Albert_Einstein``.

    Returns:
        The document.

    Raises:
        NotFoundError: No document has this id; the message suggests near ids.
    """
    with _open(settings) as db:
        row = db.execute("SELECT id, title, text, source FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if row is not None:
            return Document(*row)
        near = suggest_ids(db, doc_id)
    hint = f"; similar ids: {', '.join(near)}" if near else "; use search to find document ids"
    raise NotFoundError(f"doc_id {doc_id!r} is not in the index{hint}")


def match_expression(query: str) -> str:
    """Turn free text into a safe FTS5 MATCH expression.

    Words are quoted (so FTS syntax such as ``AND``, ``NEAR``, ``*``, ``:``, ``^`` or unbalanced quotes in user
    text is taken literally), text in double quotes stays a phrase, common stop words are dropped when other
    words remain, and the parts are joined with OR so bm25 ranks documents matching more of them first.

    Raises:
        ToolInputError: If the query holds no letter or digit.
    """
    phrases = [" ".join(_WORD.findall(p)) for p in _PHRASE.findall(query)]
    words = _WORD.findall(_PHRASE.sub(" ", query))
    content = [w for w in words if w.lower() not in _STOPWORDS]
    parts = [f'"{p}"' for p in phrases if p] + [f'"{w}"' for w in (content or words)]
    unique = list(dict.fromkeys(part.lower() for part in parts))[:_MAX_TERMS]
    if not unique:
        raise ToolInputError("query must contain at least one letter or digit, e.g. 'speed of light'")
    return " OR ".join(unique)


def search_index(settings: ServerSettings, query: str, k: int = 10, offset: int = 0) -> dict[str, Any]:
    """Rank documents for a query with bm25 (title matches weigh more).

    Args:
        settings: Server settings.
        query: Free text; double-quoted parts are phrases.
        k: Number of hits to return.
        offset: Number of hits to skip (for paging).

    Returns:
        ``{"total": int, "hits": [{"id", "title", "snippet", "score", "source"}, ...]}``; snippets mark matches
        with ``**``; a higher score is a better match.

    Raises:
        ToolInputError: The query has no searchable word.
    """
    expression = match_expression(query)
    with _open(settings) as db:
        total = db.execute("SELECT count(*) FROM docs_fts WHERE docs_fts MATCH ?", (expression,)).fetchone()[0]
        # Rank first, then make snippets for the page only: snippet() over every match costs more than the search.
        rows = db.execute(
            f"""SELECT d.id, d.title, snippet(docs_fts, 1, '**', '**', '…', 32), -bm25(docs_fts, {TITLE_WEIGHT}, 1.0),
                       d.source
                FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid
                WHERE docs_fts MATCH ?1 AND docs_fts.rowid IN (
                    SELECT rowid FROM docs_fts WHERE docs_fts MATCH ?1
                    ORDER BY bm25(docs_fts, {TITLE_WEIGHT}, 1.0) LIMIT ?2 OFFSET ?3)
                ORDER BY bm25(docs_fts, {TITLE_WEIGHT}, 1.0)""",
            (expression, k, offset),
        ).fetchall()
    hits = [{"id": r[0], "title": r[1], "snippet": r[2], "score": round(float(r[3]), 4), "source": r[4]} for r in rows]
    return {"total": int(total), "hits": hits}


def suggest_ids(db: sqlite3.Connection, doc_id: str, limit: int = 3) -> list[str]:
    """Ids close to an unknown id: near spellings first, then documents whose titles match its words."""
    ids = [str(r[0]) for r in db.execute("SELECT id FROM docs")]
    close = difflib.get_close_matches(doc_id, ids, n=limit, cutoff=0.75)
    if close:
        return close
    words = _WORD.findall(doc_id.split("/", 1)[-1].replace("_", " "))
    if not words:
        return []
    expression = " OR ".join(dict.fromkeys(f'"{w.lower()}"' for w in words[:_MAX_TERMS]))
    rows = db.execute(
        "SELECT d.id FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid WHERE docs_fts MATCH ? "
        f"ORDER BY bm25(docs_fts, {TITLE_WEIGHT}, 1.0) LIMIT ?",
        (expression, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]
