"""The local full-text index: building, stable ids, user corpora, query safety and concurrent builds."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_servers.errors import ConfigError, NotFoundError, ToolInputError
from mcp_servers.search.index import (
    build_index,
    ensure_index,
    get_document,
    index_path,
    iter_documents,
    match_expression,
    search_index,
)
from mcp_servers.settings import SearchSettings, ServerSettings


@pytest.fixture(scope="module")
def wiki(tmp_path_factory: pytest.TempPathFactory) -> ServerSettings:
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("wiki-index"))
    build_index(settings)
    return settings


def _ids_digest(settings: ServerSettings) -> str:
    return hashlib.sha256("\n".join(d.id for d in iter_documents(settings)).encode()).hexdigest()


def test_builds_the_bundled_wikipedia_lead_sections_once(wiki: ServerSettings) -> None:
    again = build_index(wiki)
    assert again["documents"] == 10_033
    assert again["sources"] == 1
    assert again["built"] is False  # up to date: not rebuilt
    assert again["path"] == str(wiki.data_dir / "search.db")


def test_ids_are_stable_across_rebuilds(wiki: ServerSettings) -> None:
    before = _ids_digest(wiki)
    stats = build_index(wiki, rebuild=True)
    assert stats["built"] is True and stats["documents"] == 10_033
    assert _ids_digest(wiki) == before
    assert get_document(wiki, "wiki/Albert_Einstein").title == "Albert Einstein"


def test_documents_can_be_listed_and_read_back(wiki: ServerSettings) -> None:
    docs = list(iter_documents(wiki))
    assert len(docs) == 10_033 and len({d.id for d in docs}) == 10_033
    sample = docs[1234]
    assert sample.id == "wiki/" + sample.title.replace(" ", "_")
    assert get_document(wiki, sample.id) == sample


def test_ranking_puts_the_best_match_first(wiki: ServerSettings) -> None:
    hits = search_index(wiki, "speed of light", k=5)["hits"]
    assert hits[0]["id"] == "wiki/Speed_of_light"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert "**light**" in hits[0]["snippet"].lower()
    phrase = search_index(wiki, '"general relativity"', k=3)["hits"]
    assert phrase[0]["id"] == "wiki/General_relativity"


def test_paging_returns_disjoint_consecutive_hits(wiki: ServerSettings) -> None:
    first = search_index(wiki, "river", k=5, offset=0)
    second = search_index(wiki, "river", k=5, offset=5)
    both = search_index(wiki, "river", k=10, offset=0)
    assert first["total"] == second["total"] > 10
    assert [h["id"] for h in first["hits"] + second["hits"]] == [h["id"] for h in both["hits"]]


@pytest.mark.parametrize(
    "query",
    ['NEAR("a" "b")', 'unbalanced "quote', "col:umn", "a AND", "OR NOT", "((( nested", "^start", "star*", "'; DROP TABLE docs; --",
     "c++ -x +y", "{a b}", "naïve café", "a\x00b", "title:Paris"],
)  # fmt: skip
def test_fts_syntax_in_queries_is_taken_literally(wiki: ServerSettings, query: str) -> None:
    result = search_index(wiki, query, k=3)
    assert isinstance(result["total"], int)
    assert get_document(wiki, "wiki/Paris").title == "Paris"  # the table is intact


@pytest.mark.parametrize("query", ["", "   ", '"', "!!! ???", "*", "()"])
def test_queries_without_words_are_refused_clearly(wiki: ServerSettings, query: str) -> None:
    with pytest.raises(ToolInputError, match="at least one letter or digit"):
        search_index(wiki, query)


def test_match_expression_quotes_every_term() -> None:
    assert (
        match_expression('the capital of France "Eiffel tower" NEAR')
        == '"eiffel tower" OR "capital" OR "france" OR "near"'
    )
    assert match_expression("the of") == '"the" OR "of"'  # only stop words: keep them


def test_unknown_id_suggests_near_ids(wiki: ServerSettings) -> None:
    with pytest.raises(NotFoundError, match="similar ids: wiki/Albert_Einstein"):
        get_document(wiki, "wiki/Albert_Einsten")


def _user_corpus(root: Path) -> tuple[Path, Path]:
    notes = root / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "garden.md").write_text("# Growing tomatoes\n\nTomatoes need sun and zucchini-free beds.\n")
    (notes / "sub" / "bikes.txt").write_text("Chain lubrication every 300 kilometres keeps the drivetrain quiet.\n")
    (notes / "ignored.bin").write_bytes(b"\x00\x01")
    facts = root / "facts.jsonl"
    rows = [{"id": 42, "title": "Quokka", "text": "The quokka is a small marsupial from Rottnest Island."},
            {"title": "Axolotl facts", "text": "Axolotls regenerate limbs."}]  # fmt: skip
    facts.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return notes, facts


def test_user_corpora_get_path_and_title_based_ids(tmp_path: Path) -> None:
    notes, facts = _user_corpus(tmp_path)
    settings = ServerSettings(data_dir=tmp_path / "data", search=SearchSettings(wiki=False, corpus=[notes, facts]))
    stats = build_index(settings)
    assert (stats["documents"], stats["sources"]) == (4, 2)
    ids = {d.id: d for d in iter_documents(settings)}
    assert set(ids) == {"notes/garden", "notes/sub/bikes", "facts/42", "facts/Axolotl_facts"}
    assert ids["notes/garden"].title == "Growing tomatoes"
    assert ids["notes/sub/bikes"].title == "bikes"
    assert search_index(settings, "marsupial island")["hits"][0]["id"] == "facts/42"
    assert search_index(settings, "lubrication")["hits"][0]["source"] == "notes"


def test_a_changed_corpus_is_rebuilt_on_first_use(tmp_path: Path) -> None:
    notes, _facts = _user_corpus(tmp_path)
    settings = ServerSettings(data_dir=tmp_path / "data", search=SearchSettings(wiki=False, corpus=[notes]))
    assert search_index(settings, "kohlrabi")["total"] == 0  # built on first use
    (notes / "kohl.md").write_text("# Kohlrabi\n\nKohlrabi is a biennial vegetable.\n")
    assert search_index(settings, "kohlrabi")["hits"][0]["id"] == "notes/kohl"


def test_a_corrupt_index_file_is_replaced(tmp_path: Path) -> None:
    notes, _facts = _user_corpus(tmp_path)
    settings = ServerSettings(data_dir=tmp_path, search=SearchSettings(wiki=False, corpus=[notes]))
    index_path(settings).write_bytes(b"this is not a database")
    assert ensure_index(settings) == index_path(settings)
    assert get_document(settings, "notes/garden").title == "Growing tomatoes"


def test_bad_corpora_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok", "text": "fine"}\n{"title": "no text"}\n')
    settings = ServerSettings(data_dir=tmp_path, search=SearchSettings(wiki=False, corpus=[bad]))
    with pytest.raises(ConfigError, match="bad.jsonl line 2: expected an object with string 'title' and 'text'"):
        build_index(settings)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(ConfigError, match="broken.jsonl line 1: not valid JSON"):
        build_index(ServerSettings(data_dir=tmp_path, search=SearchSettings(wiki=False, corpus=[broken])))
    with pytest.raises(ConfigError, match="does not exist"):
        build_index(ServerSettings(data_dir=tmp_path, search=SearchSettings(corpus=[tmp_path / "missing"])))
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF")
    with pytest.raises(ConfigError, match="unsupported type"):
        build_index(ServerSettings(data_dir=tmp_path, search=SearchSettings(corpus=[pdf])))


def test_two_processes_starting_at_once_build_one_valid_index(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from mcp_servers.search.index import build_index
        from mcp_servers.settings import ServerSettings
        stats = build_index(ServerSettings(data_dir={str(tmp_path)!r}))
        print(stats["documents"], stats["built"])
        """
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outputs]
    # one built under the lock; the other waited and found the index up to date
    assert sorted(o[0].decode().strip() for o in outputs) == ["10033 False", "10033 True"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.db", "search.db.lock"]  # no temp files left
    settings = ServerSettings(data_dir=tmp_path)
    assert build_index(settings)["built"] is False
    assert search_index(settings, "photosynthesis")["hits"][0]["id"] == "wiki/Photosynthesis"


def test_a_rebuild_does_not_disturb_an_open_reader(tmp_path: Path) -> None:
    notes, _facts = _user_corpus(tmp_path)
    settings = ServerSettings(data_dir=tmp_path / "data", search=SearchSettings(wiki=False, corpus=[notes]))
    build_index(settings)
    reader = sqlite3.connect(f"{index_path(settings).as_uri()}?mode=ro", uri=True)
    (notes / "garden.md").write_text("# Growing leeks\n\nLeeks like deep soil.\n")
    assert build_index(settings)["built"] is True  # a new file renamed over the old one
    old_title = reader.execute("SELECT title FROM docs WHERE id = 'notes/garden'").fetchone()[0]
    reader.close()
    assert old_title == "Growing tomatoes"  # the open reader keeps its consistent snapshot
    assert get_document(settings, "notes/garden").title == "Growing leeks"
