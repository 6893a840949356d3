"""Every episode filter, proven on planted episodes in a real store."""

from __future__ import annotations

import json

from episode_factory import code_messages, weather_messages

from collector.store import Store
from training.datasets.filters import (
    FilterConfig,
    apply_filters,
    check_code,
    check_format,
    check_length,
    check_reward,
    check_tool_errors,
    check_turns,
    extract_solution,
)
from training.datasets.records import load_records


def _records(store: Store) -> dict[str, object]:
    return {r.task_id: r for r in load_records(str(store.path))}


def test_reward_and_pass_filters(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    add_episode("r", "good", "weather", weather_messages("Paris", 21), reward=12.0)
    add_episode("r", "failed-verdict", "weather", weather_messages("Rome", 25), passed=False, reward=1.0)
    add_episode("r", "low", "weather", weather_messages("Oslo", 3), reward=4.0)
    recs = _records(store)
    assert check_reward(recs["good"], True, 10.0) is None
    assert check_reward(recs["failed-verdict"], True, None) == "not passed"
    assert check_reward(recs["failed-verdict"], False, None) is None
    assert check_reward(recs["low"], True, 10.0) == "reward below threshold"


def test_turns_filter(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    add_episode("r", "t", "weather", weather_messages("Paris", 21))
    rec = _records(store)["t"]
    assert check_turns(rec, 2) is None
    assert check_turns(rec, 1) == "too many turns"
    assert check_turns(rec, None) is None


def test_tool_error_rate_filter(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    add_episode("r", "clean", "weather", weather_messages("Paris", 21))
    add_episode("r", "erring", "weather", weather_messages("Rome", 25), tool_errors=1)
    recs = _records(store)
    assert check_tool_errors(recs["clean"], 0.0) is None
    assert check_tool_errors(recs["erring"], 0.5) == "tool error rate"
    assert check_tool_errors(recs["erring"], 1.0) is None


def test_format_filter_reads_the_recorded_error_kinds(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    add_episode("r", "valid", "weather", weather_messages("Paris", 21))
    add_episode("r", "bad-json", "weather", weather_messages("Rome", 25, arguments='{"city": "Rome"'),
                error_kinds=["invalid_json"])
    add_episode("r", "bad-schema", "weather", weather_messages("Oslo", 3, arguments=json.dumps({"town": "Oslo"})),
                error_kinds=["invalid_arguments"])
    add_episode("r", "unoffered", "weather", weather_messages("Nice", 19), tools=[], error_kinds=["unknown_tool"])
    add_episode("r", "tool-error", "weather", weather_messages("Graz", 12), error_kinds=["tool_error"])
    add_episode("r", "marked", "weather", weather_messages("Lyon", 18), malformed=1)
    # the filter does not validate again: a call recorded as well formed stays, whatever the tools list says now
    add_episode("r", "recorded-ok", "weather", weather_messages("Bern", 9), tools=[])
    recs = _records(store)
    assert check_format(recs["valid"]) is None
    assert check_format(recs["bad-json"]) == "invalid tool call"
    assert check_format(recs["bad-schema"]) == "invalid tool call"
    assert check_format(recs["unoffered"]) == "invalid tool call"
    assert check_format(recs["tool-error"]) is None  # the tool failed, the call was well formed
    assert check_format(recs["marked"]) == "malformed output"
    assert check_format(recs["recorded-ok"]) is None


def test_length_filter_counts_with_the_given_counter() -> None:
    msgs = [{"role": "user", "content": "one two three four"}]
    words = lambda m, t: sum(len(x["content"].split()) for x in m)
    assert check_length(msgs, [], 4, words) is None
    assert check_length(msgs, [], 3, words) == "too long"
    assert check_length(msgs, [], None, words) is None


def test_code_filter(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    unit = {"type": "unit_tests", "test_code": "assert add(1, 2) == 3", "entry_point": "add"}
    add_episode("r", "ok", "code", code_messages("def add(a, b):\n    return a + b"), verifier=unit, tools=[])
    add_episode("r", "syntax", "code", code_messages("def add(a, b)\n    return a + b"), verifier=unit, tools=[])
    add_episode(
        "r", "leaky", "code",
        code_messages('API_KEY = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123"\ndef add(a, b):\n    return a + b'),
        verifier=unit, tools=[],
    )
    recs = _records(store)
    assert extract_solution(recs["ok"]) == "def add(a, b):\n    return a + b\n"
    assert check_code(recs["ok"]) is None
    assert check_code(recs["syntax"]) == "code: does not parse"
    assert check_code(recs["leaky"]) == "code: secret in solution"
    config = FilterConfig()
    assert apply_filters(recs["syntax"], config) == "code: does not parse"
    assert apply_filters(recs["ok"], config) is None


def test_code_solution_read_from_the_written_file(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    unit = {"type": "unit_tests", "test_code": "assert add(1, 2) == 3", "solution_path": "solution.py"}
    messages = [
        {"role": "user", "content": "Write add(a, b) into solution.py"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "files__write_file",
            "arguments": json.dumps({"path": "solution.py", "content": "def add(a, b):\n    return a + b\n"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "written"},
        {"role": "assistant", "content": "Done: solution.py holds add."},
    ]
    add_episode("r", "file", "code", messages, verifier=unit)
    rec = _records(store)["file"]
    assert extract_solution(rec) == "def add(a, b):\n    return a + b\n"
    assert check_code(rec) is None


def test_failed_status_is_dropped_first(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    add_episode("r", "crashed", "weather", weather_messages("Paris", 21), status="failed")
    assert apply_filters(_records(store)["crashed"], FilterConfig(require_passed=False)) == "status failed"
