"""README's quickstart, run as a newcomer runs it: its commands, in its order, in a fresh clone of the repository.

The clone carries the working tree's uncommitted changes, so it tests the code under test (in CI: a plain clone).
The commands are read from the first `bash` block of README's "Quickstart" section, so the test fails when README and
the code drift apart (a renamed option, a command that fails after the one before it, a printed hint that does not
run). Two substitutions keep it to a few minutes, both stated in the test's output:

- `bash scripts/setup.sh` is not run: a fresh setup installs PyTorch, transformers and the rest into a new `.venv`
  (minutes, and a package index). The clone's `.venv` is this interpreter's environment instead, and
  `PYTHONPATH=<clone>` makes the clone's code, not this checkout's, the code that runs (checked below). The script
  is still checked for syntax.
- `mcpgym demo` runs with `--quick` (the full size takes about 15 minutes on two cores). It runs after the quick demo,
  into the same directory, as README says: that order is what broke before.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from collector.store import Store

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def quickstart_commands(text: str) -> list[str]:
    """The commands of the first bash block of README's Quickstart section, in order (comments dropped, `&&` chains
    split)."""
    match = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Quickstart' section"
    block = re.search(r"```bash\n(.*?)```", match.group(1), re.DOTALL)
    assert block, "README's Quickstart has no bash block"
    commands = []
    for line in block.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(clone: Path) -> dict[str, str]:
    """A newcomer's shell: no MCPGYM_ settings, the environment not activated, the clone's code first."""
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p != venv_bin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPGYM_", "VIRTUAL_ENV", "PYTHON"))}
    return env | {"PATH": path, "PYTHONPATH": str(clone), "COLUMNS": "120"}


def _run(argv: list[str], clone: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    print(f"$ {shlex.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=clone, env=_env(clone), capture_output=True, text=True, timeout=timeout,
                          check=False)
    print(f"  exit {proc.returncode} in {time.monotonic() - started:.0f}s", flush=True)
    return proc


def _view(argv: list[str], clone: Path) -> None:
    """Start a viewer command, read the URL it prints, fetch the runs page, stop it."""
    port = _free_port()
    print(f"$ {shlex.join(argv)} --port {port}", flush=True)
    proc = subprocess.Popen([*argv, "--port", str(port)], cwd=clone, env=_env(clone), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = [proc.stderr.readline() for _ in range(1)]  # printed before the server starts (after any warning)
        while not seen[-1].startswith("viewer: ") and seen[-1] and len(seen) < 50:
            seen.append(proc.stderr.readline())
        assert seen[-1].startswith(f"viewer: http://127.0.0.1:{port}/"), "".join(seen)
        url = seen[-1].split()[1]
        deadline, last = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            try:
                page = httpx.get(url + "runs", timeout=5)
                if page.status_code == 200:
                    assert "demo-expert" in page.text
                    return
                last = f"HTTP {page.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            assert proc.poll() is None, f"the viewer exited: {proc.stderr.read()}"
            time.sleep(0.5)
        raise AssertionError(f"{url} did not answer within 120 s ({last})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _fresh_clone(clone: Path) -> Path:
    """A clone of this repository carrying the working tree's changes (tracked edits and new files git does not
    ignore), so the test checks the code under test; without changes it is a plain clone of HEAD."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, capture_output=True, check=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--binary", "-"], cwd=clone, input=diff, check=True, timeout=120)
    new = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode().split("\0")
    for name in filter(None, new):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    return clone


def _check_quick_demo(out: Path, stdout: str, stderr: str) -> None:
    """What a quick demo leaves: the summary, the runs and episodes, the dataset, a checkpoint that loads."""
    assert "mcpgym demo" in stdout and "eval before" in stdout and "eval after" in stdout and "valid" in stdout
    # no terminal: the long steps report progress as plain lines while they run
    fine_tune = r"^\d\d:\d\d:\d\d \[4/6\] fine-tune on the CPU \(4 steps\).*: [1-4]/4$"
    assert re.search(fine_tune, stderr, re.MULTILINE), stderr
    assert re.search(r"^\d\d:\d\d:\d\d \[6/6\] evaluate after: .*: 8/8$", stderr, re.MULTILINE), stderr
    store = Store(out / "trajectories.db", readonly=True)
    try:
        runs = {r: store.get_run(r) for r in store.run_ids()}
        episodes = {r: list(store.episodes([r])) for r in runs}
    finally:
        store.close()
    assert len(episodes["demo-expert"]) == 16 and all(e["status"] == "done" for e in episodes["demo-expert"])
    assert sum(bool(e["passed"]) for e in episodes["demo-expert"]) >= 12  # the experts solve weather tasks
    evals = sorted(r for r, info in runs.items() if info["kind"] == "eval")
    assert [r.split("-1-")[0] for r in evals] == ["demo-after", "demo-before"], evals
    for run in evals:  # every held-out episode ran to its end (a failed episode also counts as not passed)
        assert [(e["split"], e["status"]) for e in episodes[run]] == [("test", "done")] * 8, [
            (e["status"], e.get("error_type"), e.get("error_message")) for e in episodes[run]]
    assert runs[evals[0]]["model"].endswith("checkpoint")

    rows = [json.loads(line) for line in (out / "dataset" / "train.jsonl").read_text().splitlines()]
    assert rows and all({"messages", "tools"} <= set(row) for row in rows)
    assert any(m.get("tool_calls") for row in rows for m in row["messages"])
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert len(load_from_disk(str(out / "dataset"))["train"]) == len(rows)
    model = AutoModelForCausalLM.from_pretrained(str(out / "checkpoint"))
    assert model.config.model_type == "llama" and AutoTokenizer.from_pretrained(str(out / "checkpoint")).chat_template

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_rows"]["train"] == len(rows) and summary["train"]["first_loss"] > 0
    assert set(summary["collections"]) == {"expert", "before", "after"}
    assert set(summary["timings_s"]) == {"servers", "collect_expert", "dataset", "train", "eval_before", "eval_after"}
    for key in ("before", "after"):
        print(f"  eval {key}: {summary['collections'][key]['passed']}/8 passed, "
              f"{summary['collections'][key]['tool_calls']} calls, {summary['timings_s'][f'eval_{key}']:.0f}s")


def test_quickstart_commands_are_what_this_test_runs() -> None:
    commands = quickstart_commands(README.read_text())
    assert commands[0] == "bash scripts/setup.sh", commands
    assert [c for c in commands if " demo" in c] == [".venv/bin/mcpgym demo --quick", ".venv/bin/mcpgym demo"]
    assert commands[-1] == ".venv/bin/mcpgym view --db mcpgym-demo/trajectories.db"
    assert ". .venv/bin/activate" in README.read_text()  # README says once how to type plain `mcpgym`


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_quickstart_in_a_fresh_clone(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    if not (venv / "bin" / "mcpgym").is_file():
        pytest.skip(f"this interpreter's environment ({venv}) has no mcpgym console script to stand in for .venv")
    clone = _fresh_clone(tmp_path / "mcpgym")
    new_files = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=clone, capture_output=True,
                               text=True, check=True).stdout.split()  # the working tree's new files, copied
    commands = quickstart_commands((clone / "README.md").read_text())
    print("README quickstart:", *commands, sep="\n  ")
    out = clone / "mcpgym-demo"
    demos = 0
    for command in commands:
        argv = shlex.split(command)
        if argv[:2] == ["bash", "scripts/setup.sh"]:
            assert subprocess.run(["bash", "-n", "scripts/setup.sh"], cwd=clone, check=False).returncode == 0
            (clone / ".venv").symlink_to(venv, target_is_directory=True)
            print(f"$ {command}   # not run: .venv -> {venv}, with PYTHONPATH={clone}")
            where = subprocess.run([".venv/bin/python", "-c", "import training; print(training.__file__)"],
                                   cwd=clone, env=_env(clone), capture_output=True, text=True, check=True)
            assert Path(where.stdout.strip()).is_relative_to(clone), where.stdout  # the clone's code runs
        elif argv[1:2] == ["demo"]:
            if "--quick" not in argv:
                argv.append("--quick")  # full size: ~15 minutes on two cores
            proc = _run(argv, clone, timeout=1800)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
            demos += 1
            if demos > 1:
                assert f"replacing the earlier demo's outputs in {out.relative_to(clone)}/" in proc.stderr
            _check_quick_demo(out, proc.stdout, proc.stderr)
            printed = re.search(r"^browse the episodes:\s+(.+)$", proc.stdout, re.MULTILINE)
            assert printed, proc.stdout
            _view(shlex.split(printed.group(1)), clone)  # the command the demo prints runs as printed
        elif argv[1:2] == ["view"]:
            _view(argv, clone)
        else:
            proc = _run(["bash", "-c", command], clone, timeout=600)
            assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    assert demos == 2
    # every file the quickstart wrote is one git ignores (.venv is this test's symlink; `.venv/` ignores a folder)
    left = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", ".", ":!.venv"], cwd=clone,
                          capture_output=True, text=True, check=True).stdout.split()
    assert not set(left) - set(new_files), f"the quickstart left files git does not ignore: {left}"
