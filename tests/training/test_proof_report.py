"""The CPU proof's report: per-family tables and the SVG from real eval runs in a real store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from collector.collect import CollectConfig, run_collection
from collector.servers import ServerSpec
from training.evaluate import metrics_from_run
from training.proof_report import family_metrics, heldout_leaks, main, reward_curve, write_report, zero_spread_share

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def proof_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proof directory as scripts/proof.sh leaves it: two weather eval runs recorded through the real weather server
    (the scripted expert, and a model that answers without calling a tool), their `mcpgym eval --json` records, the
    GRPO run record with TRL's log history, the settings and the stage times."""
    from text_policy import TextPolicy

    out = tmp_path_factory.mktemp("proof")
    db = out / "proof.db"
    weather = {"weather": ServerSpec(name="weather", command=sys.executable,
                                     args=("-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"))}
    common = {"db": db, "tasks": ["weather"], "split": "test", "limit": 3, "servers": weather, "kind": "eval"}
    base = run_collection(CollectConfig(run="eval-1-base", policy_instance=TextPolicy(["It is sunny."]), **common))
    sft = run_collection(CollectConfig(run="eval-2-ckpt", policy="scripted", **common))
    assert base.done == 3 and sft.done == 3, (base.errors, sft.errors)
    records = [{**metrics_from_run(db, run).__dict__, "model": model}
               for run, model in (("eval-1-base", "smollm2-135m"), ("eval-2-ckpt", "/p/ckpt"))]
    (out / "eval-sft.json").write_text(json.dumps(records), encoding="utf-8")
    (out / "eval-grpo.json").write_text(json.dumps(records[1:]), encoding="utf-8")
    (out / "grpo").mkdir()
    log = [{"loss": 0.0, "reward": 3.5, "reward_std": 0.0, "frac_reward_zero_std": 1.0, "step": 1, "epoch": 0.5},
           {"loss": 0.01, "reward": 7.25, "reward_std": 0.8, "frac_reward_zero_std": 0.0, "step": 2, "epoch": 1.0},
           {"train_runtime": 51.0, "train_loss": 0.005, "step": 2, "epoch": 1.0}]
    (out / "grpo" / "mcpgym-train.json").write_text(json.dumps({"kind": "grpo", "log": log}), encoding="utf-8")
    (out / "settings.tsv").write_text("COMMAND\tTEST_PER_FAMILY=3 scripts/proof.sh\nCORES\t2\nGRPO_FAMILY\tweather\n"
                                      "HELDOUT_SERVER\talmanac\nTEST_PER_FAMILY\t3\n", encoding="utf-8")
    (out / "stages.tsv").write_text("collect\t31\nsft\t125\n", encoding="utf-8")
    (out / "lengths.md").write_text("| family | rows | tokens min | median | max | rows <= 5120 |\n| --- | --- | --- | "
                                    "--- | --- | --- |\n| weather | 3 | 746 | 913 | 1412 | 3 |\n", encoding="utf-8")
    return out


def test_family_metrics_of_real_runs(proof_dir: Path) -> None:
    [(fam, base)] = family_metrics(proof_dir / "proof.db", "eval-1-base").items()
    assert fam == "weather"
    assert (base.episodes, base.passed, base.calls, base.with_calls, base.validity) == (3, 0, 0, 0, None)
    sft = family_metrics(proof_dir / "proof.db", "eval-2-ckpt")["weather"]
    assert (sft.episodes, sft.passed, sft.malformed) == (3, 3, 0)
    assert sft.with_calls == 3 and sft.calls >= 3 and sft.validity == 1.0
    assert sft.mean_reward > base.mean_reward
    assert sft.task_ids == base.task_ids and len(sft.task_ids) == 3
    assert heldout_leaks(proof_dir / "proof.db", ["eval-2-ckpt"], "weather") == 3
    assert heldout_leaks(proof_dir / "proof.db", ["eval-2-ckpt"], "almanac") == 0


def test_report_tables_and_svg(proof_dir: Path) -> None:
    assert reward_curve(proof_dir / "grpo" / "mcpgym-train.json") == [(1, 3.5), (2, 7.25)]
    assert zero_spread_share(proof_dir / "grpo" / "mcpgym-train.json") == [1.0, 0.0]
    md_path, svg_path = write_report(proof_dir)
    md = md_path.read_text(encoding="utf-8")
    assert "Command: `TEST_PER_FAMILY=3 scripts/proof.sh`" in md
    assert "| collect | 0 min 31 s |" in md and "| sft | 2 min 05 s |" in md and "| total | 2 min 36 s |" in md
    sft = family_metrics(proof_dir / "proof.db", "eval-2-ckpt")["weather"]
    calls = f"{sft.calls}/{sft.calls}"
    assert f"| weather | SFT | 100.0% (3/3) | {sft.mean_reward:.3f} | 100.0% ({calls}) | 100.0% (3/3) |" in md
    base = family_metrics(proof_dir / "proof.db", "eval-1-base")["weather"]
    assert f"| weather | base | 0.0% (0/3) | {base.mean_reward:.3f} | - (0/0) | 0.0% (0/3) |" in md
    assert "| weather | SFT (before) | 100.0% (3/3) |" in md and "| weather | GRPO (after) | 100.0% (3/3) |" in md
    assert "| schema (almanac) | base | - | - | - | - |" in md  # no held-out schema run in this directory
    assert "first 3.500, last 7.250" in md and "not over the same tasks" not in md
    # the targets, from the same figures: weather 0/3 -> 3/3 after SFT, GRPO 3/3 -> 3/3, one step without a gradient
    assert ("- SFT, held-out success gain of at least 30 points: 1 of 1 families (weather). Per family: "
            "weather +100.0.") in md
    assert "- GRPO on weather, held-out success +0.0 points (3/3 -> 3/3)" in md
    assert "- GRPO steps whose rollouts all scored the same (no gradient): 1 of 2." in md
    assert "- Wall time 2.6 min against 75 (load ? at the start" in md
    assert "## SFT row lengths per family (tokens, tool schemas included)\n\n| family | rows |" in md
    assert "| weather | 3 | 746 | 913 | 1412 | 3 |" in md
    root = ElementTree.fromstring(svg_path.read_text(encoding="utf-8"))  # valid XML
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "weather" in texts and "0%" in texts and "100%" in texts
    [line] = list(root.iter(f"{SVG}polyline"))
    assert len(line.get("points", "").split()) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == 2


def test_grpo_before_is_the_sft_run_of_the_grpo_eval_when_it_has_two(proof_dir: Path, tmp_path: Path) -> None:
    """eval-grpo.json with two runs (SFT then GRPO checkpoint, on GRPO_TEST_TASKS tasks): the first is 'before'."""
    import shutil

    copy = tmp_path / "proof"
    shutil.copytree(proof_dir, copy)
    sft_runs = json.loads((copy / "eval-sft.json").read_text(encoding="utf-8"))
    (copy / "eval-grpo.json").write_text(json.dumps(sft_runs), encoding="utf-8")  # 0/3 before, 3/3 after
    md = write_report(copy)[0].read_text(encoding="utf-8")
    assert "| weather | SFT (before) | 0.0% (0/3) |" in md and "| weather | GRPO (after) | 100.0% (3/3) |" in md
    assert "- GRPO on weather, held-out success +100.0 points (0/3 -> 3/3)" in md


def test_missing_eval_output_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path)]) == 1
    assert "eval-sft.json is missing: the evaluation stage did not finish" in capsys.readouterr().err
    (tmp_path / "eval-sft.json").write_text("[]", encoding="utf-8")
    assert main(["--dir", str(tmp_path)]) == 1
    assert "holds 0 runs; base and SFT make 2" in capsys.readouterr().err


def test_check_heldout_exit_status(proof_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(proof_dir), "--check-heldout", "almanac", "--run", "eval-2-ckpt"]) == 0
    assert main(["--dir", str(proof_dir), "--check-heldout", "weather", "--run", "eval-2-ckpt"]) == 1
    assert "3 training episodes offered 'weather' tools" in capsys.readouterr().err
