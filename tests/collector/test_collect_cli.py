"""The collector's commands: a real collect/export round trip, task listing, and bad input with clear messages."""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from collect_helpers import echo_solver, echo_tasks, write_tasks
from fake_openai import FakeOpenAI
from toy_fixtures import TOY

from collector.store import Store
from mcpgym.cli import main


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps({"mcpServers": {"files": {
        "command": sys.executable, "args": [str(TOY), "stdio", "--workspace", "{workspace}"]}}}))
    return {"tasks": write_tasks(tmp_path / "tasks.jsonl", echo_tasks(2)), "servers": servers,
            "db": tmp_path / "t.db"}


def _collect(paths: dict[str, Path], base_url: str, *extra: str) -> list[str]:
    return ["collect", "--tasks", str(paths["tasks"]), "--policy", "openai", "--model", "fake", "--base-url",
            base_url, "--servers", str(paths["servers"]), "--db", str(paths["db"]), "--run", "r1",
            "--split", "all", *extra]


def test_collect_then_export(setup: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    with FakeOpenAI(echo_solver()) as fake:
        result = runner.invoke(main, _collect(setup, fake.base_url, "--samples", "2"))
        assert result.exit_code == 0, result.output
        assert "run r1" in result.output and "toy" in result.output
        again = runner.invoke(main, _collect(setup, fake.base_url))
    assert again.exit_code != 0 and "already exists" in again.output and "--resume" in again.output
    assert len(list(Store(setup["db"], readonly=True).episodes(["r1"]))) == 4  # nothing lost
    out = tmp_path / "out.jsonl"
    exported = runner.invoke(main, ["export", "--db", str(setup["db"]), "--run", "r1", "--format", "react-jsonl",
                                    "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["steps"][0]["action"] == "echo"


def test_bad_input_is_a_clear_error(setup: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    unreachable = runner.invoke(main, _collect(setup, closed))
    assert unreachable.exit_code == 1 and "unreachable" in unreachable.output
    with FakeOpenAI(echo_solver()) as fake:
        args = _collect(setup, fake.base_url)
        unknown = runner.invoke(main, [*args[:2], "weather,nonsense", *args[3:]])
        assert unknown.exit_code == 1 and "unknown task suite 'nonsense'" in unknown.output
        assert not setup["db"].exists()  # a collect that fails before its run starts leaves no empty database
        bad_cfg = tmp_path / "bad.yaml"
        bad_cfg.write_text("servers: []\n")
        config = runner.invoke(main, [*args, "--servers", str(bad_cfg)])
        assert config.exit_code == 1 and "mcpServers" in config.output
        corrupt = tmp_path / "corrupt.db"
        corrupt.write_bytes(b"not a database" * 200)
        broken = runner.invoke(main, [*args, "--db", str(corrupt)])
        assert broken.exit_code == 1 and "cannot open trajectory database" in broken.output
        no_url = runner.invoke(main, ["collect", "--policy", "openai", "--db", str(setup["db"]), "--run", "x"])
        assert no_url.exit_code == 1 and "--base-url" in no_url.output
    assert corrupt.read_bytes() == b"not a database" * 200  # left untouched
    assert not setup["db"].exists()  # no failed start left a database behind


@pytest.mark.slow
def test_locked_database_is_a_clear_error(setup: dict[str, Path]) -> None:
    holder = sqlite3.connect(setup["db"])
    holder.execute("CREATE TABLE x (y)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = CliRunner().invoke(main, _collect(setup, "http://127.0.0.1:9/v1"))
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 1 and "locked" in result.output


def test_tasks_prints_jsonl(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tasks", "--suite", "weather", "--split", "train", "--limit", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 3 and all(r["family"] == "weather" and r["split"] == "train" for r in rows)
    path = write_tasks(tmp_path / "mine.jsonl", echo_tasks(2))
    mine = CliRunner().invoke(main, ["tasks", "--suite", str(path)])
    assert sorted(json.loads(line)["id"] for line in mine.output.splitlines()) == ["echo-000", "echo-001"]  # shuffled
    bad = CliRunner().invoke(main, ["tasks", "--suite", "nonsense"])
    assert bad.exit_code == 1 and "accepted" in bad.output
