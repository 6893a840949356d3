"""Mixing by proportions and the split by task id."""

from __future__ import annotations

import pytest

from training.datasets.mixing import mix, parse_proportions, split_by_task
from training.errors import DatasetError


def test_parse_proportions_normalizes() -> None:
    assert parse_proportions("code=40,files=20,search=20,weather=20") == {
        "code": 0.4, "files": 0.2, "search": 0.2, "weather": 0.2}
    assert parse_proportions("a=1, b=3") == {"a": 0.25, "b": 0.75}


@pytest.mark.parametrize("spec", ["code", "code=x", "code=-1", "a=0,b=0", ""])
def test_parse_proportions_refuses_bad_input(spec: str) -> None:
    with pytest.raises(DatasetError, match="expected"):
        parse_proportions(spec)


def test_mix_follows_proportions_up_to_the_scarcest_family() -> None:
    items = [("code", i) for i in range(40)] + [("files", i) for i in range(5)] + [("misc", i) for i in range(9)]
    chosen, lines = mix(items, lambda x: x[0], {"code": 0.5, "files": 0.5}, seed=1)
    families = [c[0] for c in chosen]
    assert families.count("code") == 5 and families.count("files") == 5 and "misc" not in families
    by = {line.family: line for line in lines}
    assert (by["code"].available, by["code"].taken) == (40, 5)
    assert (by["misc"].target, by["misc"].taken) == (0.0, 0)


def test_mix_with_a_missing_family_takes_nothing() -> None:
    chosen, _ = mix([("code", 1)], lambda x: x[0], {"code": 0.5, "search": 0.5})
    assert chosen == []


def test_split_keeps_each_task_on_one_side() -> None:
    items = [(f"task{t}", s) for t in range(20) for s in range(3)]
    train, held = split_by_task(items, lambda x: x[0], 0.25, seed=3)
    assert len({t for t, _ in held}) == 5
    assert {t for t, _ in train}.isdisjoint({t for t, _ in held})
    assert len(train) + len(held) == 60
    assert split_by_task(items, lambda x: x[0], 0.25, seed=3) == (train, held)  # deterministic


def test_split_refuses_bad_fraction() -> None:
    with pytest.raises(DatasetError, match=r"\[0, 1\)"):
        split_by_task([], lambda x: x, 1.0)
