"""Mixing families by proportions, and the train/eval split by task id."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from training.errors import DatasetError

__all__ = ["MixLine", "mix", "parse_proportions", "split_by_task"]

T = TypeVar("T")


@dataclass(frozen=True)
class MixLine:
    """One family's line in the mixing report."""

    family: str
    target: float
    available: int
    taken: int


def parse_proportions(spec: str) -> dict[str, float]:
    """Parse `code=0.4,files=0.2,...` (weights are normalized to sum to 1).

    Raises:
        DatasetError: malformed entry, negative or all-zero weights.
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            weight = float(value.rstrip("%"))
        except ValueError:
            weight = -1.0
        if not sep or not name.strip() or weight < 0:
            raise DatasetError(
                f"bad mix entry {part!r}: expected FAMILY=WEIGHT with a non-negative number, e.g. code=0.4,files=0.2"
            )
        out[name.strip()] = weight
    total = sum(out.values())
    if not out or total <= 0:
        raise DatasetError(f"mix {spec!r} has no positive weight; expected e.g. code=0.4,files=0.2,search=0.2")
    return {k: v / total for k, v in out.items()}


def mix(
    items: Sequence[T], family_of: Callable[[T], str], proportions: dict[str, float], seed: int = 0
) -> tuple[list[T], list[MixLine]]:
    """Sample items so that families appear in the given proportions, as many as the scarcest family allows.

    Families outside `proportions` (or with weight 0) are left out. Order within the result is shuffled.

    Args:
        items: candidate rows.
        family_of: the family of a row.
        proportions: family -> share (summing to 1).
        seed: sampling seed.

    Returns:
        The sampled rows and one report line per family.
    """
    by_family: dict[str, list[T]] = defaultdict(list)
    for item in items:
        by_family[family_of(item)].append(item)
    wanted = {f: p for f, p in proportions.items() if p > 0}
    rng = random.Random(seed)
    if not wanted or any(not by_family.get(f) for f in wanted):
        total = 0
    else:
        total = min(int(len(by_family[f]) / p) for f, p in wanted.items())
    chosen: list[T] = []
    lines: list[MixLine] = []
    for family in sorted(set(by_family) | set(proportions)):
        share = proportions.get(family, 0.0)
        pool = by_family.get(family, [])
        k = min(len(pool), round(share * total)) if share > 0 else 0
        chosen.extend(rng.sample(pool, k))
        lines.append(MixLine(family, share, len(pool), k))
    rng.shuffle(chosen)
    return chosen, lines


def split_by_task(
    items: Sequence[T], task_of: Callable[[T], str], eval_fraction: float, seed: int = 0
) -> tuple[list[T], list[T]]:
    """Split rows into train and eval so that every task's rows land on one side only.

    Tasks are ordered by a seeded hash of their id and the first `eval_fraction` of them go to eval (at least one
    task when the fraction is positive and there are two tasks or more).

    Raises:
        DatasetError: `eval_fraction` outside [0, 1).
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise DatasetError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    tasks = sorted({task_of(i) for i in items}, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    n_eval = round(eval_fraction * len(tasks))
    if eval_fraction > 0 and n_eval == 0 and len(tasks) >= 2:
        n_eval = 1
    eval_tasks = set(tasks[:n_eval])
    train = [i for i in items if task_of(i) not in eval_tasks]
    held = [i for i in items if task_of(i) in eval_tasks]
    return train, held
