"""Evaluation metrics on stored runs (pass@k, success per family, validity), the table, and a real local eval."""

from __future__ import annotations

import json
import sys
from math import comb
from pathlib import Path

import pytest
from episode_factory import code_messages, weather_messages

from collector.servers import ServerSpec
from collector.store import Store
from training.errors import EvaluationError
from training.evaluate import EvalConfig, comparison_table, evaluate, metrics_from_run, pass_at_k


def test_pass_at_k_matches_the_definition() -> None:
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))
    with pytest.raises(ValueError, match="0 < k <= n"):
        pass_at_k(2, 1, 3)


def test_metrics_from_a_stored_run(store: Store, add_episode) -> None:  # type: ignore[no-untyped-def]
    for s, ok in enumerate([True, False, False, False]):
        add_episode("ev", "code-1", "code", code_messages(f"def add(a, b):\n    return a + b  # {s}"), passed=ok,
                    tools=[])
    for ok in [True, True, True, True]:
        add_episode("ev", "code-2", "code", code_messages("def add(a, b):\n    return b + a"), passed=ok, tools=[])
    add_episode("ev", "weather-1", "weather", weather_messages("Paris", 20), passed=True)
    add_episode("ev", "weather-2", "weather", weather_messages("Rome", 20), passed=False, malformed=1,
                error_kinds=["invalid_json"])
    m = metrics_from_run(store.path, "ev")
    assert m.episodes == 10
    assert m.families["code"] == {"episodes": 8, "passed": 5, "success_rate": 5 / 8}
    assert m.families["weather"]["success_rate"] == 0.5
    assert m.pass_at_k[1] == pytest.approx((0.25 + 1.0) / 2)
    assert m.pass_at_k[2] == pytest.approx((0.5 + 1.0) / 2)
    assert set(m.pass_at_k) == {1, 2, 3, 4}
    assert (m.tool_calls, m.malformed_calls, m.validity) == (2, 1, 0.5)
    table = comparison_table([m, m])
    assert "| success: code | 62.5% (5/8) | 62.5% (5/8) |" in table
    assert "| code pass@2 | 75.0% | 75.0% |" in table
    assert "| tool-call validity | 50.0% (1/2) |" in table
    assert table.splitlines()[0].startswith("| metric | before (expert) | after (expert) |")


def test_unknown_run_is_an_evaluation_error(store: Store) -> None:
    with pytest.raises(EvaluationError, match="no run named 'nope'"):
        metrics_from_run(store.path, "nope")


def test_bad_eval_options(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="one or two models"):
        evaluate(EvalConfig(models=("a", "b", "c"), db=tmp_path / "e.db"))
    with pytest.raises(EvaluationError, match="samples must be at least 1"):
        evaluate(EvalConfig(models=(None,), db=tmp_path / "e.db", samples=0))
    with pytest.raises(EvaluationError, match="unknown dtype 'half'; accepted: auto, float32, bfloat16"):
        evaluate(EvalConfig(models=(None,), db=tmp_path / "e.db", dtype="half"))


def test_auto_dtype_is_bfloat16_where_the_cpu_multiplies_it() -> None:
    from training.evaluate import resolve_dtype

    amx = "amx_bf16" in Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    assert resolve_dtype("auto") == ("bfloat16" if amx else "float32")
    assert (resolve_dtype(None), resolve_dtype("float32"), resolve_dtype("bfloat16")) == (None, "float32", "bfloat16")


@pytest.mark.slow
def test_real_local_eval_of_the_base_model(tmp_path: Path) -> None:
    weather = {"weather": ServerSpec(name="weather", command=sys.executable,
                                     args=("-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"))}
    config = EvalConfig(models=(None,), db=tmp_path / "eval.db", tasks=("weather",), split="test", samples=1,
                        limit=2, max_turns=1, max_new_tokens=24, concurrency=2, dtype="bfloat16")
    [m] = evaluate(config, servers=weather)
    assert m.episodes == 2 and m.model == "smollm2-135m"
    assert set(m.families) == {"weather"}
    runs = Store(tmp_path / "eval.db", readonly=True)
    run = runs.get_run(m.run)
    assert run["kind"] == "eval"
    assert '"dtype": "bfloat16"' in json.dumps(run["config"])  # the run records what the model ran in
    runs.close()


def test_validity_is_exact_for_an_episode_mixing_valid_and_malformed_calls(tmp_path: Path) -> None:
    """Recorded by the real loop into a real store: one valid call and three malformed ones in one turn."""
    from text_policy import TextPolicy

    from collector.collect import CollectConfig, run_collection
    from collector.tasks.model import Task, VerifierSpec

    toy = Path(__file__).parent.parent / "collector" / "toy_mcp_server.py"
    spec = {"files": ServerSpec(name="files", command=sys.executable, args=(str(toy), "stdio", "--workspace",
                                                                             "{workspace}"))}
    mixed = ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
             '<tool_call>{"name": "add", "arguments": {"a": 1, "b": </tool_call>\n'
             '<tool_call>{"name": "add", "arguments": {"a": "one", "b": 2}}</tool_call>\n'
             '<tool_call>{"arguments": {"a": 1}}</tool_call>')
    task = Task(id="mixed", family="toy", messages=[{"role": "user", "content": "add 1 and 2"}], servers=["files"],
                verifier=VerifierSpec(type="contains", expected="3"))
    config = CollectConfig(db=tmp_path / "e.db", run="ev", task_list=[task], policy_instance=TextPolicy(
        [mixed, "The sum is 3."]), servers=spec, kind="eval")
    summary = run_collection(config)
    assert summary.done == 1, summary.errors
    m = metrics_from_run(tmp_path / "e.db", "ev")
    # the text parser and the argument check used to count the unreadable block twice (5 for 4 calls: validity 0)
    assert (m.tool_calls, m.malformed_calls, m.validity) == (4, 3, 0.25)
