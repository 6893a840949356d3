"""`mcpgym demo --quick` end to end in a subprocess (real servers, SmolLM2, SFT on the CPU), and its options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.store import Store
from training.demo import DemoConfig, _prepare_out
from training.errors import TrainingError


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MCPGYM_")} | {"COLUMNS": "100"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_quick_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "mcpgym.cli", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    # The summary table and the viewer command are printed.
    assert "mcpgym demo" in proc.stdout and "eval before" in proc.stdout and "eval after" in proc.stdout
    assert f"mcpgym view --db {out / 'trajectories.db'}" in proc.stdout

    # The database holds the two collections and the two evaluation runs, with their episodes.
    store = Store(out / "trajectories.db", readonly=True)
    try:
        runs = {r: store.get_run(r) for r in store.run_ids()}
        episodes = {r: list(store.episodes([r])) for r in runs}
    finally:
        store.close()
    assert {r["policy"] for r in runs.values()} == {"scripted", "local"}
    assert len(episodes["demo-expert"]) == 16 and all(e["status"] == "done" for e in episodes["demo-expert"])
    assert sum(bool(e["passed"]) for e in episodes["demo-expert"]) >= 12  # the experts solve weather tasks
    assert len(episodes["demo-smollm2"]) == 2
    evals = sorted(r for r, info in runs.items() if info["kind"] == "eval")
    assert len(evals) == 2 and all(len(episodes[r]) == 2 for r in evals)
    assert runs[evals[1]]["model"].endswith("checkpoint")
    assert all(e["split"] == "test" for r in evals for e in episodes[r])

    # The SFT dataset exists in both forms: JSONL rows in TRL's conversational tool format, and HF datasets on disk.
    rows = [json.loads(line) for line in (out / "dataset" / "train.jsonl").read_text().splitlines()]
    assert rows and all({"messages", "tools"} <= set(row) for row in rows)
    assert any(m.get("tool_calls") for row in rows for m in row["messages"])
    from datasets import load_from_disk

    assert len(load_from_disk(str(out / "dataset"))["train"]) == len(rows)

    # The checkpoint loads back as the local policy's model.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(out / "checkpoint"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "checkpoint"))
    assert model.config.model_type == "llama" and tokenizer.chat_template

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_rows"]["train"] == len(rows)
    assert summary["train"]["logged_steps"] >= 1 and summary["train"]["first_loss"] > 0
    assert set(summary["collections"]) == {"expert", "base", "before", "after"}
    assert set(summary["timings_s"]) == {"servers", "collect_expert", "collect_local", "dataset", "train", "eval"}


def test_demo_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "trajectories.db").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "mcpgym.cli", "demo", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert proc.returncode != 0
    assert "already holds demo outputs (trajectories.db); pass --force" in proc.stderr
    assert (tmp_path / "trajectories.db").exists()


def test_prepare_out_with_force_removes_only_demo_outputs(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "train.jsonl").write_text("{}\n")
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    _prepare_out(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_presets_and_validation() -> None:
    quick, full = DemoConfig.preset(True), DemoConfig.preset(False)
    assert quick.families == ("weather",) and quick.max_length == 2048
    assert quick.eval_tasks < full.eval_tasks and quick.sft_steps < full.sft_steps
    assert DemoConfig.preset(False, families=("weather", "files")).max_length == 3584
    with pytest.raises(TrainingError, match="sft_steps must be at least 1"):
        DemoConfig(sft_steps=0).validate()
    with pytest.raises(TrainingError, match="at least one task family"):
        DemoConfig(families=()).validate()
