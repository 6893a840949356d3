"""Small word lists for generating file names and contents deterministically."""

from __future__ import annotations

import random

__all__ = ["DIRS", "STEMS", "code_token", "paragraph", "sentence"]

DIRS = ("notes", "docs", "reports", "data", "src", "archive", "drafts", "config", "logs", "misc")
STEMS = (
    "alpha",
    "budget",
    "roadmap",
    "meeting",
    "summary",
    "inventory",
    "release",
    "checklist",
    "contacts",
    "ideas",
    "journal",
    "minutes",
    "plan",
    "review",
    "schedule",
    "todo",
    "readme",
    "changelog",
    "survey",
    "memo",
)
_NOUNS = (
    "garden",
    "river",
    "server",
    "invoice",
    "museum",
    "lantern",
    "harbor",
    "pencil",
    "orchard",
    "bridge",
    "engine",
    "meadow",
    "window",
    "ticket",
    "compass",
    "library",
    "market",
    "planet",
    "teacher",
    "kettle",
)
_VERBS = ("opens", "crosses", "needs", "follows", "lifts", "records", "shares", "watches", "builds", "carries")
_ADJS = ("quiet", "early", "green", "heavy", "bright", "narrow", "ancient", "gentle", "busy", "hollow")


def sentence(rng: random.Random) -> str:
    """A short plain sentence."""
    return (
        f"The {rng.choice(_ADJS)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} "
        f"the {rng.choice(_ADJS)} {rng.choice(_NOUNS)}."
    )


def paragraph(rng: random.Random, lines: int) -> str:
    """`lines` sentences, one a line, ending with a newline."""
    return "".join(sentence(rng) + "\n" for _ in range(lines))


def code_token(rng: random.Random, prefix: str) -> str:
    """A unique-looking token such as `INV-4821`."""
    return f"{prefix}-{rng.randrange(1000, 10000)}"
