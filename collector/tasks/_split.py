"""Deterministic helpers shared by the task families: the train/test split by task id, seeded generators, ids."""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from collector.errors import ConfigError

__all__ = ["TEST_PERCENT", "check_split", "content_id", "seeded_rng", "split_of"]

TEST_PERCENT = 20  # a task is in "test" when a stable hash of its id falls in the last 20 of 100 buckets


def split_of(task_id: str) -> Literal["train", "test"]:
    """The split of a task: from a SHA-256 of its id, so the same task is always in the same split, whatever the
    seed or the other tasks generated with it (80% train, 20% test)."""
    bucket = int.from_bytes(hashlib.sha256(task_id.encode("utf-8")).digest()[:8], "big") % 100
    return "test" if bucket >= 100 - TEST_PERCENT else "train"


def seeded_rng(seed: int, *salt: str) -> random.Random:
    """A Random seeded by (seed, salt...) that is stable across Python versions and processes."""
    material = ":".join([str(seed), *salt]).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


def content_id(family: str, kind: str, *parts: object) -> str:
    """A task id derived from the task's content, so the same task gets the same id (and split) from any seed:
    `<family>/<kind>/<12 hex digits>`."""
    material = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return f"{family}/{kind}/{hashlib.sha256(material).hexdigest()[:12]}"


def check_split(split: str | None) -> None:
    """Accept None, "train" or "test".

    Raises:
        ConfigError: any other value.
    """
    if split not in (None, "train", "test"):
        raise ConfigError(f"unknown split {split!r}; accepted: train, test (or none for both)")
