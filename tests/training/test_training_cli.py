"""The training CLIs (training/cli.py): help with examples, dataset building end to end, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from episode_factory import weather_messages

from collector.store import Store
from training.cli import dataset, eval_cmd, train


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = [("eval", eval_cmd)]
    for group in (dataset, train):
        out.append((group.name or "", group))
        out += [(f"{group.name} {n}", c) for n, c in group.commands.items()]
    return out


@pytest.mark.parametrize(("path", "command"), _commands(), ids=[p for p, _ in _commands()])
def test_every_command_has_help_and_an_example(path: str, command: click.Command) -> None:
    assert command.help and "Example" in command.help, path
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{path} {param.opts} has no help"


@pytest.fixture
def db(store: Store, add_episode) -> Path:  # type: ignore[no-untyped-def]
    for i, city in enumerate(["Paris", "Berlin", "Lima", "Oslo", "Cairo"]):
        add_episode("expert", f"weather-{i}", "weather", weather_messages(city, 10 + i, answer=(
            f"It is {10 + i} degrees. token=sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123" if i == 0 else None)))
    add_episode("expert", "weather-9", "weather", weather_messages("Rome", 20), passed=False, reward=0.0)
    return store.path


def test_dataset_sft_command(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    result = CliRunner().invoke(dataset, ["sft", "--db", str(db), "--runs", "expert", "--out", str(out),
                                          "--eval-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    assert "not passed" in result.output and "openai_key 1" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 5 and report["splits"] == {"train": 4, "eval": 1}
    assert (out / "train.jsonl").is_file() and (out / "README.md").is_file()


def test_dataset_grpo_command(db: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(dataset, ["grpo", "--db", str(db), "--out", str(tmp_path / "g"),
                                          "--eval-fraction", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "g" / "report.json").read_text())["kept"] == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--mix", "code"], "bad mix entry 'code'"),
    (["--runs", "nope"], "unknown run(s) nope"),
    (["--eval-fraction", "1.5"], "eval fraction must be in [0, 1)"),
])
def test_bad_input_is_a_clean_error(db: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(dataset, ["sft", "--db", str(db), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_missing_database_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(dataset, ["sft", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no trajectory database" in result.output


def test_train_refuses_a_non_dataset_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(train, ["sft", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a dataset directory" in result.output


def test_grpo_temperature_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(train, ["grpo", "--data", str(tmp_path), "--temperature", "0"])
    assert result.exit_code == 2 and "--temperature" in result.output and "not in the range x>0" in result.output
