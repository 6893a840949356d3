"""The GRPO sweep's report, from real eval runs in a real store (the files scripts/grpo_sweep.sh leaves)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.collect import CollectConfig, run_collection
from collector.servers import ServerSpec
from training.evaluate import metrics_from_run
from training.grpo_sweep import load_sweep, main, sweep_markdown
from training.proof_report import family_metrics

WEATHER = {"weather": ServerSpec(name="weather", command=sys.executable,
                                 args=("-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"))}


def _eval(db: Path, run: str, out: Path, **policy: object) -> None:
    common = {"db": db, "tasks": ["weather"], "split": "test", "limit": 3, "servers": WEATHER, "kind": "eval"}
    result = run_collection(CollectConfig(run=run, **common, **policy))  # type: ignore[arg-type]
    assert result.done == 3, result.errors
    out.write_text(json.dumps([{**metrics_from_run(db, run).__dict__, "model": run}]), encoding="utf-8")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of one point (2 steps, a checkpoint at step 1): the SFT checkpoint answers without a tool (fails every
    task), the step-1 checkpoint is the same model, the final one is the scripted expert (passes every task)."""
    from text_policy import TextPolicy

    out = tmp_path_factory.mktemp("sweep")
    db = out / "sweep.db"
    _eval(db, "eval-sft", out / "eval-sft.json", policy_instance=TextPolicy(["It is sunny."]))
    _eval(db, "eval-p1-1", out / "eval-p1-1.json", policy_instance=TextPolicy(["It is sunny."]))
    _eval(db, "eval-p1-2", out / "eval-p1-2.json", policy="scripted")
    (out / "p1").mkdir()
    log = [{"reward": 1.5, "frac_reward_zero_std": 1.0, "step": 1}, {"reward": 6.5, "frac_reward_zero_std": 0.0,
                                                                     "step": 2}, {"train_runtime": 90.0, "step": 2}]
    (out / "p1" / "mcpgym-train.json").write_text(json.dumps({"kind": "grpo", "log": log}), encoding="utf-8")
    (out / "runs.tsv").write_text("name\tpoint\tsteps\tgen\tseconds\np1\tsteps=2,save=1\t2\t2\t90\n", encoding="utf-8")
    (out / "settings.tsv").write_text("COMMAND\tPOINTS=steps=2,save=1 scripts/grpo_sweep.sh\nSTARTED\t2026-12-03 "
                                      "20:00 UTC\nFAMILY\tweather\nPROOF_DIR\t/p\nCPU\tx\nCORES\t2\n", encoding="utf-8")
    return out


def test_rows_follow_the_checkpoints_in_step_order(sweep_dir: Path) -> None:
    rows = load_sweep(sweep_dir)
    assert [(r.point, r.step, r.rollouts) for r in rows] == [
        ("SFT checkpoint", 0, 0), ("steps=2,save=1", 1, 2), ("steps=2,save=1", 2, 4)]
    assert [r.metrics.passed for r in rows] == [0, 0, 3]
    assert [r.train_reward for r in rows] == [None, 1.5, 4.0]  # the mean of the logged steps up to each
    assert [r.zero_spread for r in rows] == [0, 1, 1]
    assert [r.seconds for r in rows] == [None, None, 90.0]  # the wall time belongs to the point's final checkpoint


def test_markdown_pairs_every_checkpoint_with_the_sft_tasks(sweep_dir: Path) -> None:
    md = sweep_markdown(sweep_dir)
    final = family_metrics(sweep_dir / "sweep.db", "eval-p1-2")["weather"]
    assert md.startswith("# GRPO sweep, 2026-12-03 20:00 UTC")
    assert "Command: `POINTS=steps=2,save=1 scripts/grpo_sweep.sh`" in md
    assert "| SFT checkpoint | 0 | 0 | 0.0% (0/3) | - | - |" in md
    assert "| steps=2,save=1 | 1 | 2 | 0.0% (0/3) | +0.0 points | 0 / 0 |" in md
    assert (f"| steps=2,save=1 | 2 | 4 | 100.0% (3/3) | +100.0 points | 3 / 0 | {final.mean_reward:.2f} | 4.00 | 1/2 "
            "| 1.5 min |") in md
    kinds = sorted(set(final.kinds.values()))
    assert len(kinds) >= 2 and f"| point | step | {' | '.join(kinds)} |" in md  # success by task kind
    assert "won / lost is left out" not in md


def test_a_missing_evaluation_is_a_clear_error(sweep_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("runs.tsv", "eval-sft.json", "sweep.db"):
        (tmp_path / name).write_bytes((sweep_dir / name).read_bytes())
    (tmp_path / "eval-p1-2.json").write_text("not json", encoding="utf-8")
    assert main(["--dir", str(tmp_path)]) == 1
    assert "eval-p1-2.json is not the JSON `mcpgym eval --json` prints" in capsys.readouterr().err
    (tmp_path / "runs.tsv").unlink()
    assert main(["--dir", str(tmp_path)]) == 1
    assert "runs.tsv is missing" in capsys.readouterr().err
    assert not (tmp_path / "grpo-sweep.md").exists()


def test_main_writes_the_report(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(sweep_dir)]) == 0
    assert (sweep_dir / "grpo-sweep.md").read_text(encoding="utf-8") == capsys.readouterr().out


ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "grpo_sweep.sh"


def _sweep(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, "MCPGYM": str(Path(sys.executable).with_name("mcpgym")), "PYTHON": sys.executable,
            "SWEEP_DIR": str(tmp_path / "sweep")}
    return subprocess.run(["bash", str(SCRIPT)], env={**base, **env}, capture_output=True, text=True, timeout=900,
                          check=False)


def test_the_script_refuses_bad_points_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "proof" / "ckpt").mkdir(parents=True)
    (tmp_path / "proof" / "ckpt" / "config.json").write_text("{}", encoding="utf-8")
    proof = str(tmp_path / "proof")
    bad = {"steps=3,foo=2": "unknown key 'foo' (accepted: steps, gen, lr, temp, save, completion, calls)",
           "steps=x": "steps must be a whole number, not 'x'", "lr=fast": "lr must be a number, not 'fast'",
           "gen=1": "steps must be >= 1 and gen >= 2"}
    for point, message in bad.items():
        result = _sweep(tmp_path, PROOF_DIR=proof, POINTS=point)
        assert result.returncode == 2 and message in result.stderr, (point, result.stderr)
    result = _sweep(tmp_path, PROOF_DIR=str(tmp_path / "none"))
    assert result.returncode == 2 and "no SFT checkpoint in" in result.stderr
    assert not (tmp_path / "sweep").exists()  # nothing was started


@pytest.mark.slow
def test_a_real_sweep_of_two_grpo_steps(tmp_path: Path) -> None:
    """The script end to end: GRPO from a checkpoint (the base model stands for the proof's SFT checkpoint) with a
    checkpoint after step 1, the SFT, step-1 and final checkpoints evaluated on the same held-out weather tasks."""
    from collector.models import resolve_model

    (tmp_path / "proof").mkdir()
    (tmp_path / "proof" / "ckpt").symlink_to(resolve_model("smollm2-135m"))
    result = _sweep(tmp_path, PROOF_DIR=str(tmp_path / "proof"), POINTS="steps=2,gen=2,save=1,completion=24,calls=1",
                    TEST="2", PROMPTS="2", MAX_TURNS="1", MAX_NEW_TOKENS="16", EVAL_CONCURRENCY="2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "sweep"
    assert sorted(p.name for p in out.glob("eval-*.json")) == ["eval-p1-1.json", "eval-p1-2.json", "eval-sft.json"]
    md = (out / "grpo-sweep.md").read_text(encoding="utf-8")
    [command] = [line for line in md.splitlines() if line.startswith("Command: `")]
    assert f"SWEEP_DIR={out} " in command and "POINTS=steps=2,gen=2,save=1,completion=24,calls=1 " in command
    rows = [line for line in md.splitlines() if line.startswith("| steps=2,gen=2") and line.count("|") == 11]
    assert [row.split(" | ")[1:3] for row in rows] == [["1", "2"], ["2", "4"]]  # step and rollouts
    assert md in result.stdout
