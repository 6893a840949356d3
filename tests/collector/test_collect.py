"""Collection runs: the library function, resume bookkeeping, and a SIGKILL in the middle of a CLI run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collect_helpers import echo_solver, echo_tasks, write_tasks
from fake_openai import FakeOpenAI
from toy_fixtures import ToyHttp, toy_http, toy_stdio_spec  # noqa: F401 - fixture

from collector.collect import CollectConfig, run_collection
from collector.errors import ConfigError
from collector.servers import ServerSpec
from collector.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, fake: FakeOpenAI, **kw: object) -> CollectConfig:
    base: dict[str, object] = {"db": tmp_path / "t.db", "run": "r1", "task_list": echo_tasks(4), "policy": "openai",
                               "model": "fake", "base_url": fake.base_url, "servers": {"files": toy_stdio_spec()},
                               "samples": 2, "concurrency": 4}
    base.update(kw)
    return CollectConfig(**base)  # type: ignore[arg-type]


def test_run_collection_records_every_episode(tmp_path: Path) -> None:
    seen: list[int] = []
    with FakeOpenAI(echo_solver()) as fake:
        summary = run_collection(_config(tmp_path, fake), on_progress=lambda s, r: seen.append(s.finished))
    assert (summary.total, summary.done, summary.failed, summary.passed) == (8, 8, 0, 8)
    assert summary.mean_reward == 13.5 and seen[-1] == 8  # 10 + 2 + 0.5 (1 optimal step) + 1
    store = Store(tmp_path / "t.db", readonly=True)
    episodes = list(store.episodes(["r1"]))
    assert len(episodes) == 8 and {e["status"] for e in episodes} == {"done"}
    assert {(e["task_id"], e["sample_index"]) for e in episodes} == {(f"echo-{i:03d}", k) for i in range(4)
                                                                     for k in range(2)}
    ep = episodes[0]
    assert ep["tools"] and ep["reward_components"]["success"] == 10.0 and ep["prompt_tokens"] == 20
    assert [m["role"] for m in store.messages(ep["id"])] == ["user", "assistant", "tool", "assistant"]
    assert store.tool_calls(ep["id"])[0]["server"] == "files"
    run = store.get_run("r1")
    assert run["status"] == "done" and run["config"]["samples"] == 2 and run["policy"] == "openai"
    tools = store.db.execute("SELECT COUNT(*) FROM tool_schemas WHERE run_id = 'r1'").fetchone()[0]
    assert tools >= 5


def test_existing_run_needs_resume_and_resume_skips_finished(tmp_path: Path) -> None:
    with FakeOpenAI(echo_solver()) as fake:
        run_collection(_config(tmp_path, fake, task_list=echo_tasks(3), samples=1))
        with pytest.raises(ConfigError, match="--resume"):
            run_collection(_config(tmp_path, fake, task_list=echo_tasks(3), samples=1))
        with sqlite3.connect(tmp_path / "t.db") as conn:  # as if the run had died with one episode in flight
            conn.execute("UPDATE episodes SET status = 'running' WHERE task_id = 'echo-002'")
        again = run_collection(_config(tmp_path, fake, task_list=echo_tasks(3), samples=1, resume=True))
    assert (again.total, again.skipped, again.done, again.reset_in_flight) == (3, 2, 1, 1)
    assert len(list(Store(tmp_path / "t.db", readonly=True).episodes(["r1"]))) == 3


def test_resume_refuses_another_configuration_and_names_the_fields(tmp_path: Path) -> None:
    with FakeOpenAI(echo_solver()) as fake:
        run_collection(_config(tmp_path, fake, task_list=echo_tasks(2), samples=1, seed=1, limit=None))
        changes: list[tuple[dict[str, object], list[str]]] = [
            ({"task_list": echo_tasks(3)}, ["tasks"]),
            ({"model": "other"}, ["model"]),
            ({"seed": 2}, ["seed"]),
            ({"limit": 1}, ["limit"]),
            ({"policy": "scripted", "model": None}, ["policy", "model"]),
            ({"seed": 3, "limit": 5, "model": "m2"}, ["model", "seed", "limit"]),
        ]
        for change, fields in changes:
            cfg = _config(tmp_path, fake, **{"task_list": echo_tasks(2), "samples": 1, "seed": 1, **change},
                          resume=True)
            with pytest.raises(ConfigError, match="cannot resume run 'r1'") as info:
                run_collection(cfg)
            message = str(info.value)
            named = [f for f in ("tasks", "split", "policy", "model", "seed", "limit") if f"{f}: recorded" in message]
            assert named == fields, message
        assert "seed: recorded 1, now 2" in str(pytest.raises(ConfigError, run_collection, _config(
            tmp_path, fake, task_list=echo_tasks(2), samples=1, seed=2, resume=True)).value)
        same = run_collection(_config(tmp_path, fake, task_list=echo_tasks(2), samples=2, seed=1, resume=True))
    assert (same.skipped, same.done) == (2, 2)  # more samples of the same tasks is a resume, not a new run
    assert Store(tmp_path / "t.db", readonly=True).get_run("r1")["config"]["seed"] == 1


def test_missing_servers_and_bad_numbers_are_config_errors(tmp_path: Path) -> None:
    with FakeOpenAI(echo_solver()) as fake:
        with pytest.raises(ConfigError, match=r"need MCP servers \['files'\]"):
            run_collection(_config(tmp_path, fake, servers={"other": toy_stdio_spec("other")}))
        with pytest.raises(ConfigError, match="concurrency must be >= 1"):
            run_collection(_config(tmp_path, fake, concurrency=0))
    assert not (tmp_path / "t.db").exists()  # nothing half-created: the database a failed start made is removed


def test_failed_episodes_are_recorded_and_the_run_goes_on(tmp_path: Path, toy_http: ToyHttp) -> None:  # noqa: F811
    calls = {"n": 0}
    solver = echo_solver()

    def flaky(body: dict) -> object:
        calls["n"] += 1
        return (400, {"error": "rejected"}) if "word1" in str(body["messages"][0]) else solver(body)

    with FakeOpenAI(flaky) as fake:
        summary = run_collection(_config(tmp_path, fake, servers={"files": ServerSpec("files", url=toy_http.url)},
                                         samples=1))
    assert (summary.done, summary.failed, summary.errors) == (3, 1, {"policy_error": 1})
    failed = list(Store(tmp_path / "t.db", readonly=True).episodes(["r1"], status="failed"))
    assert failed[0]["task_id"] == "echo-001" and "HTTP 400" in failed[0]["error_message"]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_runs_each_pair_once(tmp_path: Path, toy_http: ToyHttp) -> None:  # noqa: F811
    tasks = write_tasks(tmp_path / "tasks.jsonl", echo_tasks(12))
    servers = tmp_path / "servers.yaml"
    servers.write_text(f"mcpServers:\n  files:\n    url: {toy_http.url}\n")
    db = tmp_path / "t.db"
    with FakeOpenAI(echo_solver(delay_s=0.15)) as fake:
        cmd = [sys.executable, "-m", "mcpgym.cli", "collect", "--tasks", str(tasks), "--policy", "openai",
               "--model", "fake", "--base-url", fake.base_url, "--servers", str(servers), "--db", str(db),
               "--run", "k", "--split", "all", "--concurrency", "3", "--quiet"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        finished = 0
        while time.monotonic() < deadline and finished < 4:
            time.sleep(0.05)
            if db.exists():
                try:
                    with sqlite3.connect(db) as conn:
                        finished = conn.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(db) as conn:
            before = dict(conn.execute("SELECT status, COUNT(*) FROM episodes GROUP BY status").fetchall())
        assert 4 <= before["done"] < 12
        resumed = subprocess.run([*cmd, "--resume"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, sample_index, status FROM episodes WHERE run_id = 'k'").fetchall()
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert len(rows) == 12 and len({(t, s) for t, s, _ in rows}) == 12
    assert {s for _, _, s in rows} == {"done"}
    assert messages == 12 * 4  # no duplicated or orphaned messages from the killed run


def test_run_record_keeps_no_secrets(tmp_path: Path) -> None:
    spec = ServerSpec("files", url="http://127.0.0.1:1/mcp", headers={"Authorization": "Bearer s3cret"})
    record = CollectConfig(db=tmp_path / "t.db", run="r", servers={"files": spec}, api_key_env="MY_KEY").record()
    assert "s3cret" not in str(record) and record["servers"]["files"]["headers"] == {"Authorization": "***"}
    assert record["api_key_env"] == "MY_KEY"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
def test_sigterm_stops_the_managed_gateway_and_keeps_finished_episodes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    cmd = [sys.executable, "-m", "mcpgym.cli", "collect", "--tasks", "weather", "--policy", "scripted", "--db", str(db),
           "--run", "t", "--split", "all", "--concurrency", "1", "--samples", "3", "--quiet"]  # (not done first)
    env = {**os.environ, "MCPGYM_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(0.1)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    gateways = _children(proc.pid)
    assert gateways, "the collector should have started its gateway as a child process"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    for pid in gateways:  # gone (or a zombie already reaped by init)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), f"gateway {pid} outlived the collector"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0] >= 2
