"""SFT and GRPO on two processes (`accelerate launch --num_processes 2` on the CPU, gloo): two steps each.

Only the main process writes the checkpoint and the run record; both processes exit cleanly with it on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from episode_factory import weather_messages

from collector.store import Store
from training.datasets import GRPOOptions, SFTOptions, build_grpo, build_sft, save_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _launch(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # --multi_gpu selects accelerate's torchrun launcher; without a GPU the processes meet over gloo on the CPU
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(BIN / "mcpgym"), "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=1500)
    finally:  # the launcher's workers (and their MCP servers) go with it, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _check_checkpoint(out: Path, kind: str, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    run = json.loads((out / "mcpgym-train.json").read_text())
    assert run["kind"] == kind and run["processes"] == 2
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".json" and p.name.startswith("mcpgym")) == [
        "mcpgym-train.json"]
    # both processes reached the end; only one wrote the checkpoint
    assert done.stdout.count("saved checkpoint to") == 2


@pytest.fixture
def weather_store(store: Store, add_episode) -> Store:  # type: ignore[no-untyped-def]
    for i, city in enumerate(["Paris", "Berlin", "Lima", "Oslo"]):
        add_episode("expert", f"weather-{i}", "weather", weather_messages(city, 10 + i))
    return store


@pytest.mark.timeout(1800)
def test_sft_two_steps_on_two_processes(weather_store: Store, tmp_path: Path) -> None:
    sft = save_dataset(build_sft(str(weather_store.path), ["expert"], SFTOptions(eval_fraction=0.0)), tmp_path / "sft")
    out = tmp_path / "ckpt-sft"
    done = _launch(["sft", "--data", str(sft), "--out", str(out), "--max-steps", "2", "--batch-size", "1",
                    "--max-length", "384", "--lr", "1e-4"], tmp_path)
    _check_checkpoint(out, "sft", done)
    run = json.loads((out / "mcpgym-train.json").read_text())
    assert run["metrics"]["train_loss"] > 0 and run["log"][-1]["step"] == 2


@pytest.mark.timeout(1800)
def test_grpo_two_steps_on_two_processes(weather_store: Store, tmp_path: Path) -> None:
    built = build_grpo(str(weather_store.path), ["expert"], GRPOOptions(eval_fraction=0.0))
    for row in built.splits["train"]:
        row["task"]["servers"] = ["weather"]
    grpo = save_dataset(built, tmp_path / "grpo")
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps({"mcpServers": {"weather": {
        "command": sys.executable, "args": ["-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"]}}}))
    out = tmp_path / "ckpt-grpo"
    done = _launch(["grpo", "--data", str(grpo), "--out", str(out), "--max-steps", "2", "--batch-size", "2",
                    "--num-generations", "2", "--max-completion-length", "8", "--max-tool-calls", "1",
                    "--servers", str(servers)], tmp_path)
    _check_checkpoint(out, "grpo", done)
    assert [e["step"] for e in json.loads((out / "mcpgym-train.json").read_text())["log"] if "loss" in e] == [1, 2]
