"""`mcpgym demo`'s parts: its output directory rules, presets, the command it prints, its progress without a terminal
and its summary table. The quick demo itself runs end to end in tests/test_readme.py, from a fresh clone, in
README's order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from training.demo import MARKER, DemoConfig, DemoResult, _prepare_out, summary_table
from training.demo_progress import Steps
from training.errors import TrainingError

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MCPGYM_")} | {"COLUMNS": "100"}


def test_demo_refuses_files_no_demo_wrote(tmp_path: Path) -> None:
    (tmp_path / "trajectories.db").write_bytes(b"mine")
    proc = subprocess.run([sys.executable, "-m", "mcpgym.cli", "demo", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert proc.returncode != 0
    assert "holds trajectories.db, which no earlier demo wrote there; pass --force" in proc.stderr
    assert (tmp_path / "trajectories.db").read_bytes() == b"mine"


def test_an_earlier_demo_is_replaced_and_other_files_stay(tmp_path: Path) -> None:
    _prepare_out(tmp_path, force=False)  # a first demo marks its directory
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "train.jsonl").write_text("{}\n")
    (tmp_path / "trajectories.db").write_bytes(b"old run")
    (tmp_path / "notes.txt").write_text("mine")
    assert sorted(_prepare_out(tmp_path, force=False)) == ["dataset", "trajectories.db"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]


def test_a_demo_from_before_the_marker_is_recognised_by_its_summary(tmp_path: Path) -> None:
    (tmp_path / "trajectories.db").write_bytes(b"old run")
    (tmp_path / "summary.json").write_text(json.dumps({"collections": {}, "timings_s": {}}))
    assert sorted(_prepare_out(tmp_path, force=False)) == ["summary.json", "trajectories.db"]
    (tmp_path / MARKER).unlink()
    (tmp_path / "summary.json").write_text("{}")  # not a demo's summary
    with pytest.raises(TrainingError, match="no earlier demo wrote there"):
        _prepare_out(tmp_path, force=False)


def test_prepare_out_with_force_removes_only_demo_outputs(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "train.jsonl").write_text("{}\n")
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    _prepare_out(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]


def test_presets_and_validation() -> None:
    quick, full = DemoConfig.preset(True), DemoConfig.preset(False)
    assert quick.families == ("weather",) and quick.max_length == 2048
    assert quick.eval_tasks >= 8 and quick.sft_steps < full.sft_steps and quick.local_tasks == 0
    assert DemoConfig.preset(False, families=("weather", "files")).max_length == 3584
    with pytest.raises(TrainingError, match="sft_steps must be at least 1"):
        DemoConfig(sft_steps=0).validate()
    with pytest.raises(TrainingError, match="local_tasks must be at least 0"):
        DemoConfig(local_tasks=-1).validate()
    with pytest.raises(TrainingError, match="at least one task family"):
        DemoConfig(families=()).validate()


def _prefix(cwd: Path, path: str) -> str:
    code = "from training.demo import command_prefix; print(command_prefix())"
    env = _env() | {"PATH": path, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_the_printed_command_can_be_pasted(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mcpgym"
    if not script.is_file():
        pytest.skip(f"no mcpgym console script next to {sys.executable}")
    bare = "/usr/bin:/bin"
    assert _prefix(tmp_path, bare) == str(script)  # elsewhere: the script's full path
    if script.is_relative_to(ROOT):  # in the checkout: the relative path README uses, e.g. .venv/bin/mcpgym
        assert _prefix(ROOT, bare) == str(script.relative_to(ROOT))
    assert _prefix(tmp_path, f"{script.parent}:{bare}") == "mcpgym"  # an active environment: the bare name
    help_text = subprocess.run([_prefix(tmp_path, bare), "view", "--help"], cwd=tmp_path, env=_env(),
                               capture_output=True, text=True, timeout=120, check=False)
    assert help_text.returncode == 0 and "--db" in help_text.stdout


def test_progress_without_a_terminal_is_plain_lines() -> None:
    out = io.StringIO()
    steps = Steps(Console(file=out, width=200), total=2)
    assert not steps.live
    with steps:
        with steps.step("collect", "collect · experts", total=3, unit="episodes") as update:
            for i in range(1, 4):
                update(completed=i, description=f"collect · experts · {i}/{i} passed")
        with steps.step("train", "fine-tune (2 steps)", total=2) as update:
            update(completed=2, description="fine-tune (2 steps) · loss 0.50")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[1/2] collect · experts (3 episodes)")
    assert lines[1].endswith("[1/2] collect · experts · 1/1 passed: 1/3")  # the first count, then throttled
    assert lines[2].endswith("[1/2] collect · experts · 3/3 passed: 3/3")  # the last item is always shown
    assert "[1/2] collect · experts · 3/3 passed: done in" in lines[3]
    assert lines[4].endswith("[2/2] fine-tune (2 steps)") and lines[5].endswith("loss 0.50: 2/2")
    assert len(lines) == 7 and "\x1b" not in out.getvalue() and set(steps.timings) == {"collect", "train"}


def test_summary_table_times_both_evaluations_and_shows_validity(tmp_path: Path) -> None:
    def row(model: str, passed: int, calls: int, malformed: int) -> dict[str, object]:
        return {"model": model, "passed": passed, "episodes": 8, "pass_rate": passed / 8, "mean_reward": 1.0 + passed,
                "tool_calls": calls, "malformed_calls": malformed}

    result = DemoResult(out=tmp_path, db=tmp_path / "t.db", dataset=tmp_path / "d", checkpoint=tmp_path / "c",
                        collections={"expert": row("expert", 8, 9, 0), "before": row("smollm2-135m", 0, 0, 0),
                                     "after": row("checkpoint", 5, 7, 1)},
                        dataset_rows={"train": 14}, train={"first_loss": 0.6, "last_loss": 0.2},
                        timings_s={"collect_expert": 1, "dataset": 0, "train": 60, "eval_before": 41,
                                   "eval_after": 77})
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table(result))
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in out.getvalue().splitlines() if line.startswith("│")}
    assert lines["eval before"][-2:] == ["-", "41s"]  # no calls: no validity
    assert lines["eval after"][-2:] == ["6/7", "77s"]
    assert lines["change"][1:5] == ["+5", "+62%", "+5.00", "+7"]
