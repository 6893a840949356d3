"""Exact and near-duplicate detection on planted conversations."""

from __future__ import annotations

import pytest
from episode_factory import weather_messages

from training.datasets.dedup import Deduplicator, exact_key, normalize


def test_exact_duplicates_ignore_case_whitespace_and_call_ids() -> None:
    a = weather_messages("Paris", 21)
    b = weather_messages("Paris", 21)
    b[1] = {**b[1], "content": "  what is the TEMPERATURE in Paris right   now, in Celsius?"}
    b[2] = {**b[2], "tool_calls": [{**b[2]["tool_calls"][0], "id": "call_other"}]}
    assert exact_key(a) == exact_key(b)
    dedup = Deduplicator(near_threshold=None)
    assert dedup.check(a) is None
    assert dedup.check(b) == "exact duplicate"


def test_near_duplicate_caught_but_distinct_tasks_kept() -> None:
    base = weather_messages("Paris", 21)
    base[1] = {**base[1], "content": base[1]["content"] + " " + "Please answer briefly and precisely. " * 20}
    near = [dict(m) for m in base]
    near[4] = {"role": "assistant", "content": "It is 21 degrees Celsius in Paris today."}
    other = weather_messages("Reykjavik", -4)
    dedup = Deduplicator(near_threshold=0.8)
    assert dedup.check(base) is None
    assert exact_key(near) != exact_key(base)
    assert dedup.check(near) == "near duplicate"
    assert dedup.check(other) is None


def test_shared_system_prompt_does_not_make_near_duplicates() -> None:
    dedup = Deduplicator(near_threshold=0.9)
    kept = [dedup.check(weather_messages(city, t)) for city, t in [("Paris", 21), ("Berlin", 17), ("Lima", 30)]]
    assert kept == [None, None, None]
    assert "system" not in normalize(weather_messages("Paris", 21), skip_system=True).split(">")[0]


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Deduplicator(near_threshold=1.5)
