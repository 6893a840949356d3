"""Tests of collector.verifiers: every verifier type on planted answers (pass, fail, partial, invalid spec)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.errors import VerifierError
from collector.tasks.model import VerifierSpec, VerifyContext
from collector.verifiers import validate_spec, verify
from collector.verifiers._safe_math import MathParseError, evaluate


async def judge(spec: VerifierSpec, answer: str = "", **ctx: Any) -> dict[str, Any]:
    return dict(await verify(spec, VerifyContext(final_answer=answer, **ctx)))


# exact / contains -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["Lima", "lima", '  "Lima." ', "**Lima**", "LIMA!"])
async def test_exact_accepts_normalized_forms(answer: str) -> None:
    v = await judge(VerifierSpec(type="exact", expected=["Lima", "Lima, Peru"]), answer)
    assert v["passed"] and v["score"] == 1.0


async def test_exact_rejects_sentence_and_respects_case_sensitive() -> None:
    assert not (await judge(VerifierSpec(type="exact", expected="Lima"), "It is Lima"))["passed"]
    spec = VerifierSpec(type="exact", expected="Lima", case_sensitive=True)
    assert not (await judge(spec, "lima"))["passed"]
    assert (await judge(spec, "Lima"))["passed"]


async def test_contains_whole_words_only() -> None:
    spec = VerifierSpec(type="contains", expected=["Lima"])
    assert (await judge(spec, "The warmer one is Lima, by far."))["passed"]
    v = await judge(spec, "Limassol is warmer")
    assert not v["passed"] and v["score"] == 0.0


async def test_contains_accepts_any_alias() -> None:
    spec = VerifierSpec(type="contains", expected=["Sabbath", "Shabbat"])
    v = await judge(spec, "That is the shabbat.")
    assert v["passed"] and v["details"]["matched"] == "Shabbat"


@pytest.mark.parametrize("expected", [None, "", [], ["ok", 3], 5])
async def test_exact_invalid_spec(expected: Any) -> None:
    with pytest.raises(VerifierError, match="'expected'"):
        await judge(VerifierSpec(type="exact", expected=expected), "x")


# numeric ----------------------------------------------------------------------------------------------------------


async def test_numeric_picks_the_number_with_the_unit() -> None:
    spec = VerifierSpec(type="numeric", expected=70.3, tolerance=0.2, unit="°F")
    v = await judge(spec, "In Oslo it is 21.3°C (70.3°F) with 40% humidity.")
    assert v["passed"] and v["details"]["got"] == 70.3


async def test_numeric_last_number_without_unit_and_formats() -> None:
    assert (await judge(VerifierSpec(type="numeric", expected=-5, tolerance=0.5), "Temperature: −5.2 °C"))["passed"]
    assert (await judge(VerifierSpec(type="numeric", expected=1234.5, tolerance=0.01), "about 1,234.5 people"))[
        "passed"
    ]
    assert (await judge(VerifierSpec(type="numeric", expected=12, tolerance=0), "It is 12."))["passed"]
    assert not (await judge(VerifierSpec(type="numeric", expected=12, tolerance=0), "Between 3-12"))["passed"]


async def test_numeric_fail_tolerance_and_relative() -> None:
    v = await judge(VerifierSpec(type="numeric", expected=20.0, tolerance=0.5), "It is 21 degrees")
    assert not v["passed"] and v["details"]["error"] == pytest.approx(1.0)
    assert (await judge(VerifierSpec(type="numeric", expected=20.0, tolerance=0, rel_tolerance=0.1), "21"))["passed"]
    v = await judge(VerifierSpec(type="numeric", expected=3), "no idea")
    assert not v["passed"] and "no number" in v["details"]["reason"]


async def test_numeric_invalid_specs() -> None:
    with pytest.raises(VerifierError, match="'expected' is required"):
        await judge(VerifierSpec(type="numeric"), "1")
    with pytest.raises(VerifierError, match="must be a number"):
        await judge(VerifierSpec(type="numeric", expected="twelve"), "1")
    with pytest.raises(VerifierError, match="tolerance"):
        await judge(VerifierSpec(type="numeric", expected=1, tolerance=-1), "1")


# math -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "answer"),
    [
        ("12/5", "The answer is 2.4"),
        ("2.4", r"x = \frac{12}{5}"),
        (0.25, "It is 25%"),
        (3, "I have 12/4 apples"),
        ("12/5", r"So we get \boxed{\frac{24}{10}}."),
        ("2^10", "1,024"),
        (
            "sqrt(2)",
            "about 1.41421356",
        ),
    ],
)
async def test_math_equivalent_values(expected: Any, answer: str) -> None:
    spec = VerifierSpec(type="math", expected=expected, tolerance=1e-6)
    v = await judge(spec, answer)
    assert v["passed"], v


async def test_math_wrong_and_unparseable() -> None:
    spec = VerifierSpec(type="math", expected="12/5")
    assert not (await judge(spec, "The answer is 5/12"))["passed"]
    v = await judge(spec, "I cannot tell")
    assert not v["passed"] and "no arithmetic value" in v["details"]["reason"]
    with pytest.raises(VerifierError, match="arithmetic expression"):
        await judge(VerifierSpec(type="math", expected="__import__('os')"), "1")


def test_safe_math_refuses_code_and_huge_powers() -> None:
    with pytest.raises(MathParseError):
        evaluate("__import__('os').system('true')")
    with pytest.raises(MathParseError):
        evaluate("9**99999")
    with pytest.raises(MathParseError):
        evaluate("(1).real")
    assert evaluate("-(3/4) + 1") == evaluate("0.25")


# hedged, padded and reordered answers ------------------------------------------------------------------------------


async def test_answer_line_is_read_and_padding_around_it_is_not() -> None:
    spec = VerifierSpec(type="exact", expected=["Paris"])
    assert (await judge(spec, "The article is about a capital city.\nAnswer: Paris"))["passed"]
    assert (await judge(spec, "Let me think.\n**Answer:** *Paris*."))["passed"]
    assert (await judge(spec, "I searched twice; the answer is Paris."))["passed"]
    assert (await judge(spec, "Final answer:\nParis"))["passed"]
    # the last Answer line counts: a reply that changes its mind is judged by its final word
    assert not (await judge(spec, "Answer: Paris\nWait, no.\nAnswer: Lyon"))["passed"]


@pytest.mark.parametrize(
    "answer",
    [
        "London, Berlin, Madrid, Paris",
        "Paris, London, Berlin, Madrid",  # reordered: the right one first does not help
        "Paris or London",
        "Answer: Paris / Lyon",
        "- Paris\n- Lyon",
    ],
)
async def test_a_list_of_candidates_fails_exact_and_contains(answer: str) -> None:
    for kind in ("exact", "contains"):
        v = await judge(VerifierSpec(type=kind, expected=["Paris"]), answer)
        assert not v["passed"], (kind, answer, v)
    v = await judge(VerifierSpec(type="contains", expected=["Paris"]), answer)
    assert "more than one candidate" in v["details"]["reason"]


async def test_contains_still_reads_a_sentence_and_aliases_in_a_list() -> None:
    spec = VerifierSpec(type="contains", expected=["Paris", "Paris, France"])
    assert (await judge(spec, "It is Paris, the capital of France."))["passed"]
    assert (await judge(spec, "Answer: Paris, France"))["passed"]  # every item is an accepted name
    sums = VerifierSpec(type="contains", expected=["5, 11"])  # an accepted phrase with a comma is one item
    assert (await judge(sums, "results: 5, 11"))["passed"]
    v = await judge(sums, "results: 5, 11, 12")
    assert not v["passed"] and v["details"]["reason"] == "the answer names more than one candidate: results: 5, 11, 12"


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ("19.1 C (feels like 17 C)", True),  # an aside is not the answer
        ("It is 19.1 °C right now.", True),
        ("Answer: 19.1 °C", True),
        ("At 14:00 it was 17 °C; now it is 19.1 °C.", False),  # two temperatures: which one is the answer?
        ("19 or 20 °C", False),
        ("17-19.1 °C", False),
        ("Answer: 17 °C\n(or maybe 19.1 °C)", False),
        ("It was 17 °C this morning.\nAnswer: 19.1 °C", True),  # the answer line decides
    ],
)
async def test_numeric_reads_one_number(answer: str, passed: bool) -> None:
    v = await judge(VerifierSpec(type="numeric", expected=19.1, tolerance=0.15, unit="°C"), answer)
    assert v["passed"] is passed, (answer, v)
    if not passed and "more than one" in str(v["details"].get("reason")):
        assert "number" in v["details"]["reason"]


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ("The answer is 3, not 12/5", False),
        ("The answer is 12/5, not 3", False),
        ("12/5 or 3", False),
        (r"\boxed{3} or \boxed{12/5}", False),
        ("12/5 = 2.4", True),  # the same value written twice is one candidate
        ("First 6*2 = 12, so the result is 12/5 = 2.4", True),  # a derivation ends with its result
        ("Answer: 12/5", True),
    ],
)
async def test_math_refuses_several_values(answer: str, passed: bool) -> None:
    v = await judge(VerifierSpec(type="math", expected="12/5"), answer)
    assert v["passed"] is passed, (answer, v)


async def test_two_different_solutions_fail_unit_tests() -> None:
    async def run_tests(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        return {"passed": 1, "total": 1, "failures": [], "timed_out": False, "error": None}

    spec = VerifierSpec(type="unit_tests", test_code="def check(c): assert c(1) == 2", entry_point="inc")
    two = "```python\ndef inc(x):\n    return x + 1\n```\nor\n```python\ndef inc(x):\n    return x + 2\n```"
    v = await judge(spec, two, run_tests=run_tests)
    assert not v["passed"] and "more than one" in v["details"]["reason"]
    same_twice = "```python\ndef inc(x):\n    return x + 1\n```\n```python\ndef inc(x):\n    return x + 1\n```"
    assert (await judge(spec, same_twice, run_tests=run_tests))["passed"]


# regex ------------------------------------------------------------------------------------------------------------


async def test_regex_pass_fail_invalid() -> None:
    spec = VerifierSpec(type="regex", pattern=r"^answer:\s*(yes|no)$")
    assert (await judge(spec, "Thinking...\nAnswer: YES"))["passed"]
    assert not (await judge(VerifierSpec(type="regex", pattern="^x$", case_sensitive=True), "X"))["passed"]
    with pytest.raises(VerifierError, match="not a valid regular expression"):
        await judge(VerifierSpec(type="regex", pattern="(unclosed"), "x")
    with pytest.raises(VerifierError, match="'pattern' is required"):
        await judge(VerifierSpec(type="regex"), "x")


# file_state -------------------------------------------------------------------------------------------------------


async def test_file_state_pass_partial_fail() -> None:
    spec = VerifierSpec(type="file_state", files={"a.txt": "hello\n", "old.txt": None, "dir/b.md": "B"})
    v = await judge(spec, files={"a.txt": "hello", "./dir/b.md": "B\n"})
    assert v["passed"] and v["score"] == 1.0
    v = await judge(spec, files={"a.txt": "HELLO\n", "old.txt": "still here", "dir/b.md": "B"})
    assert not v["passed"] and v["score"] == pytest.approx(1 / 3)
    assert v["details"]["files"] == {"a.txt": "content differs", "old.txt": "should not exist", "dir/b.md": "ok"}
    v = await judge(spec, files=None)
    assert not v["passed"] and "no snapshot" in v["details"]["reason"]


async def test_file_state_contains_and_invalid() -> None:
    spec = VerifierSpec(type="file_state", files={"log.txt": "done"}, contains=True)
    assert (await judge(spec, files={"log.txt": "step 1\ndone\n"}))["passed"]
    with pytest.raises(VerifierError, match="'files' is required"):
        await judge(VerifierSpec(type="file_state"), files={})
    with pytest.raises(VerifierError, match="inside the workspace"):
        await judge(VerifierSpec(type="file_state", files={"../x": "y"}), files={})


# unit_tests -------------------------------------------------------------------------------------------------------


def fake_runner(result: dict[str, Any], seen: list[tuple[str, str, str | None]]) -> Any:
    async def run_tests(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        seen.append((code, test_code, entry_point))
        return result

    return run_tests


async def test_unit_tests_extracts_code_and_scores_partial() -> None:
    seen: list[tuple[str, str, str | None]] = []
    spec = VerifierSpec(type="unit_tests", test_code="def check(c): assert c(1) == 2", entry_point="inc")
    answer = "Here:\n```python\ndef inc(x):\n    return x + 1\n```\nDone."
    ok = {"passed": 4, "total": 4, "failures": [], "timed_out": False, "error": None}
    v = await judge(spec, answer, run_tests=fake_runner(ok, seen))
    assert v["passed"] and v["score"] == 1.0
    assert seen[0] == ("def inc(x):\n    return x + 1\n", spec.test_code, "inc")
    half = {"passed": 1, "total": 4, "failures": ["assert 1"], "timed_out": False, "error": None}
    v = await judge(spec, answer, run_tests=fake_runner(half, seen))
    assert not v["passed"] and v["score"] == 0.25 and v["details"]["failures"] == ["assert 1"]


async def test_unit_tests_prefers_the_block_defining_the_entry_point() -> None:
    seen: list[tuple[str, str, str | None]] = []
    spec = VerifierSpec(type="unit_tests", test_code="t", entry_point="inc")
    answer = "```python\ndef inc(x):\n    return x + 1\n```\nUsage:\n```python\nprint(inc(1))\n```"
    await judge(spec, answer, run_tests=fake_runner({"passed": 1, "total": 1}, seen))
    assert seen[0][0] == "def inc(x):\n    return x + 1\n"


async def test_unit_tests_no_code_runner_error_and_invalid() -> None:
    spec = VerifierSpec(type="unit_tests", test_code="def check(c): pass", entry_point="f")
    v = await judge(spec, "", run_tests=fake_runner({}, []))
    assert not v["passed"] and "no code" in v["details"]["reason"]

    async def broken(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        raise ConnectionError("exec server gone")

    v = await judge(spec, "def f(): pass", run_tests=broken)
    assert not v["passed"] and "exec server gone" in v["error"]
    with pytest.raises(VerifierError, match="run_tests"):
        await judge(spec, "def f(): pass")
    with pytest.raises(VerifierError, match="'test_code' is required"):
        validate_spec(VerifierSpec(type="unit_tests"))


async def test_unit_tests_solution_path() -> None:
    seen: list[tuple[str, str, str | None]] = []
    spec = VerifierSpec(type="unit_tests", test_code="t", entry_point="f", solution_path="sol.py")
    ok = {"passed": 1, "total": 1}
    v = await judge(spec, "see file", files={"sol.py": "def f(): return 1\n"}, run_tests=fake_runner(ok, seen))
    assert v["passed"] and seen[0][0] == "def f(): return 1\n"
    v = await judge(spec, "see file", files={}, run_tests=fake_runner(ok, seen))
    assert not v["passed"] and "not found" in v["details"]["reason"]


# expected_calls ---------------------------------------------------------------------------------------------------

CALLS = [
    {"name": "get_current_weather", "arguments": {"location": "Oslo", "units": "metric"}},
    {"name": "get_current_weather", "arguments": {"location": "Lima", "units": "metric"}},
]


async def test_expected_calls_any_order_and_namespaced() -> None:
    made = [
        {"name": "weather__get_current_weather", "arguments": {"location": "Lima", "units": "metric"}},
        {"name": "get_current_weather", "arguments": {"units": "metric", "location": "Oslo"}},
    ]
    v = await judge(VerifierSpec(type="expected_calls", calls=CALLS), tool_calls=made)
    assert v["passed"] and v["score"] == 1.0
    v = await judge(VerifierSpec(type="expected_calls", calls=CALLS, ordered=True), tool_calls=made)
    assert not v["passed"] and v["score"] == 0.5


async def test_expected_calls_partial_extra_and_bad_json() -> None:
    one = [{"name": "get_current_weather", "arguments": {"location": "Oslo", "units": "metric"}}]
    v = await judge(VerifierSpec(type="expected_calls", calls=CALLS), tool_calls=one)
    assert not v["passed"] and v["score"] == 0.5 and len(v["details"]["missing"]) == 1
    extra = [
        *one,
        {"name": "get_current_weather", "arguments": {"location": "Lima", "units": "metric"}},
        {"name": "geocode", "arguments": {"name": "Lima"}},
    ]
    v = await judge(VerifierSpec(type="expected_calls", calls=CALLS), tool_calls=extra)
    assert not v["passed"] and v["score"] == pytest.approx(2 / 3)
    v = await judge(
        VerifierSpec(type="expected_calls", calls=CALLS[:1]),
        tool_calls=[{"name": "get_current_weather", "arguments": None}],
    )
    assert not v["passed"] and v["score"] == 0.0


async def test_expected_calls_defaults_and_numbers() -> None:
    spec = VerifierSpec(
        type="expected_calls",
        calls=[{"name": "get_forecast", "arguments": {"location": "Oslo", "days": 3}, "defaults": {"units": "metric"}}],
    )
    made = [{"name": "get_forecast", "arguments": {"location": "Oslo", "days": 3.0, "units": "metric"}}]
    assert (await judge(spec, tool_calls=made))["passed"]
    made = [{"name": "get_forecast", "arguments": {"location": "Oslo", "days": 3, "units": "imperial"}}]
    assert not (await judge(spec, tool_calls=made))["passed"]


async def test_expected_calls_invalid_specs() -> None:
    with pytest.raises(VerifierError, match="'calls' is required"):
        await judge(VerifierSpec(type="expected_calls"))
    with pytest.raises(VerifierError, match=r"calls\[0\] needs a 'name'"):
        await judge(VerifierSpec(type="expected_calls", calls=[{"arguments": {}}]))
    with pytest.raises(VerifierError, match="must be an object"):
        await judge(VerifierSpec(type="expected_calls", calls=[{"name": "x", "arguments": [1]}]))


# unit_tests through the real exec server (in-process MCP client, process sandbox) ---------------------------------


async def test_unit_tests_through_real_exec_server(tmp_path: Path) -> None:
    from mcp.client.client import Client

    from collector.tasks.code import load_problems
    from mcp_servers.exec.server import build_exec_server
    from mcp_servers.settings import ServerSettings
    from mcp_servers.workspace import WorkspaceManager

    problem = load_problems()[0]  # has_close_elements: 7 asserts
    spec = VerifierSpec(type="unit_tests", test_code=problem["test"], entry_point=problem["entry_point"])
    server = build_exec_server(WorkspaceManager(tmp_path, per_session=False), ServerSettings())
    async with Client(server) as client:

        async def run_tests(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
            args = {"code": code, "test_code": test_code, "entry_point": entry_point}
            result = await client.call_tool("run_tests", args)
            assert not result.is_error, result
            return dict(result.structured_content or {})

        right = f"```python\n{problem['prompt']}{problem['canonical_solution']}```"
        v = await judge(spec, right, run_tests=run_tests)
        assert v["passed"] and v["score"] == 1.0 and v["details"]["tests_total"] == 7

        always_true = "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"
        v = await judge(spec, always_true, run_tests=run_tests)
        assert not v["passed"] and 0 < v["score"] < 1  # the True cases pass, the False ones fail
        assert v["details"]["tests_passed"] == 4 and v["details"]["failures"]

        v = await judge(spec, "```python\ndef has_close_elements(:\n```", run_tests=run_tests)
        assert not v["passed"] and v["score"] == 0.0
