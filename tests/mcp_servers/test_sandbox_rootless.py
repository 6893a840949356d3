"""The process sandbox without root: the exec server runs as an unprivileged user (nobody) and its fork server makes
a user namespace of its own. Each attack goes through the MCP tools over HTTP and is asserted contained.

The tests need root only to start the server as another user. What that user needs is prepared for it: the server
runs in a mount namespace of its own in which this checkout and the interpreter's site-packages are bound at
world-readable paths, so the tests run wherever the suite runs as root, also in a checkout under a mode-700
directory. They are skipped, with the reason, where that user cannot create user namespaces or no interpreter of
this Python version is runnable by it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from host_processes import uid_processes
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_servers.gateway.process import GatewayProcess

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
SECRETS = {"MCPGYM_TOKEN": "tok-71d3-do-not-leak", "OPENAI_API_KEY": "sk-test-5e0a-do-not-leak"}
REPO = Path(__file__).resolve().parents[2]


def _launcher(view: Path) -> list[str]:
    """The command prefix that runs a program as nobody, in a mount namespace of its own where this checkout is
    bound at `view`/repo and the site-packages at `view`/site-packages (readable whatever the modes of the
    directories above them), with / as working directory."""
    purelib = sysconfig.get_paths()["purelib"]
    binds = [(REPO, view / "repo"), (Path(purelib), view / "site-packages")]
    script = " && ".join(f"mount --bind {shlex.quote(str(a))} {shlex.quote(str(b))}" for a, b in binds)
    script += ' && cd / && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", *AS_NOBODY]


def _python_for_nobody(env: dict[str, str], launcher: list[str]) -> tuple[str | None, str]:
    """An interpreter of this Python version that the unprivileged user can run and that imports this project
    (with `env`'s PYTHONPATH, under `launcher`); None and the reason when there is none."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("unshare") is None:
        return None, "needs root, setpriv and unshare to start the server as an unprivileged user"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}", sys.executable]
    probe = f"import sys, mcp, mcp_servers; assert sys.version_info[:2] == {tuple(sys.version_info[:2])}"
    for python in candidates:
        if not os.path.exists(python):
            continue
        done = subprocess.run([*launcher, python, "-c", probe], env=env, capture_output=True, cwd="/", check=False)
        if done.returncode == 0:
            userns = subprocess.run(
                [*AS_NOBODY, "unshare", "--user", "--map-root-user", "true"], capture_output=True, check=False
            )
            if userns.returncode != 0:
                return None, f"the unprivileged user cannot create user namespaces: {userns.stderr.decode()[:200]}"
            return python, ""
    return None, f"no interpreter runnable by uid {NOBODY} imports this project"


class Server:
    """The exec server running as nobody, with secrets in its environment, and host-side witnesses."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mcpgym-rootless-"))
        os.chmod(self.root, 0o755)
        self.workspaces = self.root / "workspaces"
        self.workspaces.mkdir()
        self.outside = self.root / "outside"
        self.outside.mkdir()
        self.secret = self.outside / "secret.txt"  # readable by nobody on the host: only the sandbox hides it
        self.secret.write_text("host-secret-9a41")
        os.chmod(self.secret, 0o644)
        for path in (self.workspaces, self.outside):
            os.chown(path, NOBODY, NOBODY)
        view = self.root / "view"  # what nobody reads this checkout and its site-packages through
        for name in ("repo", "site-packages"):
            (view / name).mkdir(parents=True)
        self.launcher = _launcher(view)
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "PYTHONPATH": f"{view / 'repo'}{os.pathsep}{view / 'site-packages'}",
            "MCPGYM_EXEC__TIMEOUT_S": "5",
            "MCPGYM_EXEC__MEMORY_MB": "256",
            **SECRETS,
        }
        self.python, self.skip_reason = _python_for_nobody(self.env, self.launcher)
        self.gateway: GatewayProcess | None = None

    def start(self) -> None:
        assert self.python is not None
        self.gateway = GatewayProcess(
            ["exec"], workspace=self.workspaces, env=self.env, python=self.python, launcher=self.launcher
        ).start()

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server()
    if state.python is None:
        shutil.rmtree(state.root, ignore_errors=True)
        pytest.skip(state.skip_reason)
    try:
        state.start()
        yield state
    finally:
        state.stop()


async def call(server: Server, tool: str, workspace: str = "alice", **args: Any) -> dict[str, Any]:
    assert server.gateway is not None
    headers = {"Mcpgym-Workspace": workspace, "Authorization": f"Bearer {SECRETS['MCPGYM_TOKEN']}"}
    http = httpx2.AsyncClient(headers=headers, timeout=60)  # (MCPGYM_TOKEN is also the server's bearer token)
    async with http, Client(streamable_http_client(server.gateway.url("exec"), http_client=http)) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_the_code_runs_as_the_servers_user_with_no_capability(server: Server) -> None:
    out = await call(server, "run_python", code=(
        "import os\nstatus = open('/proc/self/status').read().splitlines()\n"
        "print(os.getuid(), os.getgid())\n"
        "print(*[line.split()[1] for line in status if line.startswith(('CapEff', 'CapPrm', 'CapBnd', 'CapAmb'))])\n"
        "print(*sorted(os.listdir('/')))\n"
    ))  # fmt: skip
    ids, caps, root = out["stdout"].splitlines()
    assert ids == f"{NOBODY} {NOBODY}"
    assert set(caps.split()) == {"0000000000000000"}, caps
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "tmp", "workspace"}
    interpreter_top = os.path.realpath(str(server.python)).split("/")[1]  # its prefix is bound read-only too
    assert set(root.split()) <= system | {interpreter_top} and "workspace" in root.split(), root


async def test_files_outside_the_workspace_are_out_of_reach(server: Server) -> None:
    out = await call(server, "run_python", code=(
        f"import os\nprint(os.path.exists({str(server.secret)!r}), open('/etc/shadow').read() == '')\n"
        "for path in ('/usr/evil', '/etc/evil', '/evil', '/proc/evil'):\n"
        "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
        "    except OSError as exc:\n        print(type(exc).__name__)\n"
        "open('/workspace/mine.txt', 'w').write('in the workspace')\n"
    ))  # fmt: skip
    lines = out["stdout"].splitlines()
    assert lines[0] == "False True", out
    assert not any(line.startswith("wrote") for line in lines), out
    mine = server.workspaces / "w-alice" / "mine.txt"  # (the workspace a header names)
    assert mine.read_text() == "in the workspace" and mine.stat().st_uid == NOBODY
    assert server.secret.read_text() == "host-secret-9a41"
    assert sorted(p.name for p in server.outside.iterdir()) == ["secret.txt"]


async def test_no_network_even_to_a_live_local_server(server: Server) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[Any] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        out = await call(server, "run_python", code=(
            "import socket\nprint([name for _, name in socket.if_nameindex()])\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
            "except OSError as exc:\n    print(type(exc).__name__)\n"
        ))  # fmt: skip
    finally:
        listener.close()
    names, outcome = out["stdout"].splitlines()
    assert names == "['lo']" and outcome != "connected", out
    assert accepted == []


async def test_no_new_namespaces_mounts_or_privileges(server: Server) -> None:
    out = await call(server, "run_python", code=(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n"
        "try:\n    os.setuid(0)\n    print('root')\nexcept OSError as exc:\n    print(type(exc).__name__)\n"
    ))  # fmt: skip
    unshare, mount, setuid = out["stdout"].splitlines()
    assert unshare.startswith("-1 ") and mount.startswith("-1 ") and setuid != "root", out


async def test_host_processes_and_secrets_are_invisible(server: Server) -> None:
    out = await call(server, "run_python", code=(
        "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(sorted(os.environ))\n"
    ))  # fmt: skip
    pids, names = out["stdout"].splitlines()
    assert pids == "[1]", out
    for key, value in SECRETS.items():
        assert key not in names and value not in out["stdout"]


async def test_nothing_outlives_a_call_or_leaks_into_the_next(server: Server) -> None:
    before = set(uid_processes(NOBODY))
    first = await call(server, "run_python", code=(
        "import json, subprocess\njson.dumps.leaked = 1\nopen('/tmp/left.txt', 'w').write('leak')\n"
        "subprocess.Popen(['sleep', '60'], start_new_session=True)\nprint('started')\n"
    ))  # fmt: skip
    assert first["stdout"].strip() == "started", first
    second = await call(server, "run_python", code=(
        "import json, os\nprint(os.path.exists('/tmp/left.txt'), hasattr(json.dumps, 'leaked'))\n"
    ))  # fmt: skip
    assert second["stdout"].strip() == "False False", second
    await asyncio.sleep(0.2)
    assert set(uid_processes(NOBODY)) <= before  # the server and its fork server, nothing of the calls


async def test_workspaces_cannot_see_each_other(server: Server) -> None:
    await call(server, "run_shell", workspace="bob", command="echo bob > bobs.txt")
    out = await call(
        server, "run_shell", workspace="alice", command="ls /workspace; ls /workspace/.. ; cat ../w-bob/bobs.txt"
    )
    assert "bobs.txt" not in out["stdout"] and "bob" not in out["stdout"].split(), out


async def test_fork_bomb_and_runaway_loop_are_stopped_and_the_server_answers(server: Server) -> None:
    bomb = await call(server, "run_python", code="import os\nwhile True:\n    os.fork()\n", timeout_s=3)
    assert bomb["exit_code"] != 0 or bomb["timed_out"]
    loop = await call(server, "run_python", code="while True:\n    pass\n", timeout_s=1)
    assert loop["timed_out"]
    report = await call(server, "run_tests", code="def add(a, b):\n    return a + b\n",
                        test_code="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 1\n",
                        entry_point="add")  # fmt: skip
    assert (report["passed"], report["total"]) == (1, 2)


async def test_each_execution_counts_its_own_processes(server: Server) -> None:
    """All sandboxes run as one uid; each has a user namespace of its own, so RLIMIT_NPROC (64 by default) is
    counted per execution: two at once may each start 40 processes."""
    code = (
        "import subprocess, time\nprocs = [subprocess.Popen(['sleep', '5']) for _ in range(40)]\n"
        "time.sleep(1)\nprint(len(procs))\nfor p in procs:\n    p.kill()\n"
    )
    results = await asyncio.gather(*(call(server, "run_python", code=code, timeout_s=20) for _ in range(2)))
    for out in results:
        assert out["stdout"].strip() == "40", out


async def test_the_run_tests_judge_holds_without_root(server: Server) -> None:
    tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    wrong = "def add(a, b):\n    return 0\n"
    attacks = {  # each on top of the wrong solution: reach the judge (the same uid here) and forge its results
        "signals": "import os, signal\nfor sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGINT):\n"
        "    for pid in (1, os.getppid()):\n        try:\n            os.kill(pid, sig)\n"
        "        except OSError:\n            pass\n",
        "ptrace": "import ctypes, os\nassert ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0) != 0\n",
        "memory": "import os\nfor name in ('mem', 'fd/1'):\n    try:\n"
        "        open(f'/proc/{os.getppid()}/{name}', 'r+b' if name == 'mem' else 'rb')\n"
        "    except OSError:\n        pass\n    else:\n        raise SystemExit(f'opened {name}')\n",
        "json": 'import json\njson.dumps = lambda *a, **k: \'{"test": 0, "ok": true}\'\n',
    }
    honest = await call(server, "run_tests", code=wrong, test_code=tests, entry_point="add")
    assert (honest["passed"], honest["total"], honest["trusted"]) == (1, 2, True), honest
    for name, attack in attacks.items():
        body = wrong.replace(
            "    return 0\n", "".join(f"    {line}\n" for line in attack.splitlines()) + "    return 0\n"
        )
        report = await call(server, "run_tests", code=body, test_code=tests, entry_point="add")
        assert (report["passed"], report["trusted"]) == (1, True), (name, report)
