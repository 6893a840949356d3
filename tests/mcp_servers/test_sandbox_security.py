"""Attacks from inside the exec server's sandbox: each one is contained, and the host is left unharmed.

The server runs in-process with secrets in its environment; every attack goes through the MCP tools. The last test
checks that the server still answers after all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from host_processes import uid_processes
from mcp.client import Client

from mcp_servers.exec.sandbox import ProcessSandbox, ProcessSandboxConfig
from mcp_servers.exec.server import build_exec_server
from mcp_servers.settings import ExecSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/proc/self/ns/pid"),
    reason="the process sandbox needs root and Linux namespaces",
)

SECRETS = {"MCPGYM_TOKEN": "tok-5f1c9e-do-not-leak", "OPENAI_API_KEY": "sk-test-9b2d7a-do-not-leak"}
FILE_LIMIT = 8 * 1024 * 1024
OUTPUT_LIMIT = 65_536


class Env:
    """The server under attack, its workspace and the host-side witnesses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = root / "ws"
        self.ws.mkdir()
        self.outside = root / "outside"
        self.outside.mkdir()
        self.host_secret = self.outside / "secret.txt"
        self.host_secret.write_text("host-secret-3c8e1a")
        self.db = self.outside / "trajectories.db"
        self.db.write_bytes(b"SQLite format 3\x00trajectory-4d2b")
        self.sandbox = ProcessSandbox(ProcessSandboxConfig(pool_size=2))
        settings = ServerSettings(
            exec=ExecSettings(timeout_s=5, max_file_bytes=FILE_LIMIT, max_output_bytes=OUTPUT_LIMIT, memory_mb=256)
        )
        self.server = build_exec_server(WorkspaceManager(self.ws, per_session=False), settings, sandbox=self.sandbox)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)  # the server's own environment holds secrets the code must never see
    state = Env(tmp_path_factory.mktemp("security"))
    try:
        yield state
    finally:
        asyncio.run(state.sandbox.close())
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def call(env: Env, tool: str, **args: Any) -> dict[str, Any]:
    async with Client(env.server) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sandbox_processes(env: Env) -> list[int]:
    """Host pids still running as the workspace's sandbox uid."""
    return uid_processes(env.sandbox.uid_for(env.ws.resolve()))


def assert_host_unharmed(env: Env) -> None:
    assert env.host_secret.read_text() == "host-secret-3c8e1a"
    assert env.db.read_bytes() == b"SQLite format 3\x00trajectory-4d2b"
    assert sorted(p.name for p in env.outside.iterdir()) == ["secret.txt", "trajectories.db"]
    assert sandbox_processes(env) == []


async def test_reading_secrets_and_files_outside_the_workspace(env: Env) -> None:
    shadow = Path("/etc/shadow")
    probe = {
        "shadow": "/etc/shadow", "host_secret": str(env.host_secret), "db": str(env.db),
        "project": str(Path(__file__).resolve()), "home": "/root/.bashrc", "cwd_parent": "../outside/secret.txt",
    }  # fmt: skip
    code = (
        "import json\nout = {}\n"
        f"for name, path in {probe!r}.items():\n"
        "    try:\n        out[name] = open(path).read()\n"
        "    except OSError as exc:\n        out[name] = type(exc).__name__\n"
        "print(json.dumps(out))"
    )
    result = await call(env, "run_python", code=code)
    seen = json.loads(result["stdout"])
    assert seen["shadow"] == ""  # /etc/shadow is masked by an empty file
    for name in ("host_secret", "db", "project", "cwd_parent"):
        assert seen[name] == "FileNotFoundError", (name, seen[name])
    assert seen["home"] in ("FileNotFoundError", "PermissionError")
    if shadow.exists():
        for line in shadow.read_text().splitlines():
            if ":" in line and line.split(":")[1] not in ("", "*", "!", "!*", "x"):
                assert line.split(":")[1] not in result["stdout"]
    assert "host-secret" not in result["stdout"] and "trajectory-4d2b" not in result["stdout"]
    assert_host_unharmed(env)


async def test_writing_outside_the_workspace(env: Env) -> None:
    passwd = sha(Path("/etc/passwd"))
    targets = ["/etc/passwd", "/etc/evil", "/usr/evil", "/evil", "/root/evil", str(env.outside / "evil"), "/proc/evil"]
    code = (
        "import json\nres = {}\n"
        f"for t in {targets!r}:\n"
        "    try:\n        open(t, 'a').write('x')\n        res[t] = 'written'\n"
        "    except OSError as exc:\n        res[t] = type(exc).__name__\n"
        "print(json.dumps(res))"
    )
    result = await call(env, "run_python", code=code)
    assert "written" not in json.loads(result["stdout"]).values()
    assert sha(Path("/etc/passwd")) == passwd
    for path in ("/etc/evil", "/usr/evil", "/evil", "/root/evil"):
        assert not Path(path).exists()
    assert_host_unharmed(env)


async def test_symlink_out_of_the_workspace(env: Env) -> None:
    (env.ws / "host-link").symlink_to(env.host_secret)  # a link planted on the host side
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'evil-link')\n"
        "for path in ('host-link', 'evil-link'):\n"
        "    try:\n        open(path, 'a').write('pwned')\n        print(path, 'written')\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)\n"
        "try:\n    print(open('host-link').read())\nexcept OSError as exc:\n    print('read', type(exc).__name__)"
    )
    passwd = sha(Path("/etc/passwd"))
    result = await call(env, "run_python", code=code)
    assert "written" not in result["stdout"] and "host-secret" not in result["stdout"]
    assert sha(Path("/etc/passwd")) == passwd
    (env.ws / "host-link").unlink()
    (env.ws / "evil-link").unlink()
    assert_host_unharmed(env)


async def test_no_network_even_to_a_live_local_server(env: Env) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the server is live from the host
        deadline = time.monotonic() + 5
        while len(accepted) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(accepted) == 1
        code = (
            "import socket, json\nres = {}\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    res['tcp'] = 'connected'\n"
            "except OSError as exc:\n    res['tcp'] = type(exc).__name__\n"
            "res['ifaces'] = [name for _, name in socket.if_nameindex()]\n"
            "res['routes'] = open('/proc/net/route').read().splitlines()[1:]\n"
            "res['routes6'] = [l for l in open('/proc/net/ipv6_route').read().splitlines() if not l.endswith('lo')]\n"
            "res['devs'] = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
            "print(json.dumps(res))"
        )
        result = await call(env, "run_python", code=code)
        seen = json.loads(result["stdout"])
        assert seen["tcp"] == "ConnectionRefusedError"  # the sandbox's 127.0.0.1 is its own, empty loopback
        assert seen["ifaces"] == ["lo"] and seen["devs"] == ["lo"]
        assert seen["routes"] == [] and seen["routes6"] == []  # no route leads anywhere but loopback
        await asyncio.sleep(0.3)
        assert len(accepted) == 1  # nothing from the sandbox reached the host's server
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert_host_unharmed(env)


async def test_fork_bomb(env: Env) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    t0 = time.monotonic()
    result = await call(env, "run_python", code=code, timeout_s=2)
    assert result["timed_out"] is True and result["exit_code"] is None
    assert time.monotonic() - t0 < 60
    assert_host_unharmed(env)
    assert os.fork is not None and (await call(env, "run_shell", command="echo ok"))["stdout"] == "ok\n"


async def test_allocating_10_gb(env: Env) -> None:
    result = await call(env, "run_python", code="x = bytearray(10 * 1024 ** 3)\nprint('allocated')")
    assert result["memory_exceeded"] is True and result["exit_code"] != 0
    assert "allocated" not in result["stdout"]
    assert_host_unharmed(env)


async def test_infinite_loop(env: Env) -> None:
    result = await call(env, "run_python", code="while True:\n    pass", timeout_s=1)
    assert result["timed_out"] is True and result["exit_code"] is None
    assert_host_unharmed(env)


async def test_one_gigabyte_to_stdout(env: Env) -> None:
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)"
    result = await call(env, "run_python", code=code)
    assert result["stdout_truncated"] is True and result["output_limit_exceeded"] is True
    assert len(result["stdout"]) == OUTPUT_LIMIT
    assert_host_unharmed(env)


async def test_one_gigabyte_file(env: Env) -> None:
    code = "f = open('big.bin', 'wb')\nfor _ in range(1024):\n    f.write(b'x' * (1 << 20))\nprint('done')"
    result = await call(env, "run_python", code=code)
    assert result["exit_code"] != 0 and "done" not in result["stdout"]
    assert "File too large" in result["stderr"]
    assert (env.ws / "big.bin").stat().st_size <= FILE_LIMIT
    (env.ws / "big.bin").unlink()
    tmp = await call(env, "run_shell", command="head -c 200000000 /dev/zero > /tmp/fill; echo $?; ls -l /tmp/fill")
    assert tmp["stdout"].split()[0] != "0"  # the private /tmp is small and the file-size limit holds there too
    assert_host_unharmed(env)


async def test_background_process_cannot_outlive_the_call(env: Env) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        "    if os.fork() == 0:\n        time.sleep(1.5)\n        open('late.txt', 'w').write('survived')\n"
        "    os._exit(0)\n"
        "print('parent done')"
    )
    result = await call(env, "run_python", code=code)
    shell = await call(env, "run_shell", command="(sleep 1.5; echo late > late-shell.txt) & nohup sleep 100 & echo bg")
    assert result["stdout"] == "parent done\n" and shell["stdout"] == "bg\n"
    assert sandbox_processes(env) == []
    await asyncio.sleep(2.0)
    assert not (env.ws / "late.txt").exists() and not (env.ws / "late-shell.txt").exists()
    assert_host_unharmed(env)


async def test_killing_the_parent_and_the_server(env: Env) -> None:
    code = (
        "import os, signal, json\nres = {'ppid': os.getppid()}\n"
        f"for name, pid in (('pid1', 1), ('server', {os.getpid()}), ('all', -1)):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n        res[name] = 'sent'\n"
        "    except OSError as exc:\n        res[name] = type(exc).__name__\n"
        "print(json.dumps(res))"
    )
    result = await call(env, "run_python", code=code)
    seen = json.loads(result["stdout"] or "{}")
    if seen:  # the code may have killed itself with kill(-1): that is contained too
        assert seen["ppid"] == 0 and seen["server"] == "ProcessLookupError"
    assert env.sandbox._proc is not None and env.sandbox._proc.poll() is None  # the fork server lives
    assert_host_unharmed(env)


async def test_ptrace(env: Env) -> None:
    code = (
        "import ctypes, json, os\nlibc = ctypes.CDLL(None, use_errno=True)\nres = {}\n"
        f"for name, pid in (('pid1', 1), ('server', {os.getpid()})):\n"
        "    rc = libc.ptrace(16, pid, 0, 0)\n    res[name] = (rc, ctypes.get_errno())\n"
        "print(json.dumps(res))"
    )
    result = await call(env, "run_python", code=code)
    seen = json.loads(result["stdout"])
    assert seen["server"][0] == -1 and seen["server"][1] == 3  # ESRCH: the host's processes do not exist in here
    assert seen["pid1"] == [-1, 1]  # EPERM: not even its own pid 1 (which it is) may be traced
    assert_host_unharmed(env)


async def test_host_processes_are_invisible(env: Env) -> None:
    code = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\nprint(open('/proc/1/cmdline').read())"
    result = await call(env, "run_python", code=code)
    pids = json.loads(result["stdout"].splitlines()[0])
    assert pids == [1]
    assert str(os.getpid()) not in result["stdout"].splitlines()[0]
    assert_host_unharmed(env)


async def test_no_host_path_in_command_lines_or_module_files(env: Env) -> None:
    project = str(Path(__file__).resolve().parents[2])
    code = (
        "import os, sys\n"
        "seen = [open(f'/proc/{p}/cmdline', 'rb').read().decode() for p in ('self', '1')]\n"
        "seen += [' '.join(sys.orig_argv)]\n"
        "seen += [str(getattr(m, '__file__', '')) for m in list(sys.modules.values())]\n"
        "seen += [f.f_code.co_filename for f in [sys._getframe()] if f]\n"
        "import traceback\nseen += [''.join(traceback.format_stack())]\n"
        "print('\\n'.join(seen))"
    )
    for tool, args in (
        ("run_python", {"code": code}),
        ("run_shell", {"command": "cat /proc/self/cmdline /proc/1/cmdline"}),
    ):
        result = await call(env, tool, **args)
        assert result["exit_code"] == 0, result
        assert project not in result["stdout"] and "/mcp_servers/" not in result["stdout"], result
        assert "stage_dir" not in result["stdout"] and "/mcpgym-exec-" not in result["stdout"], result
    assert_host_unharmed(env)


async def test_environment_secrets_are_not_visible(env: Env) -> None:
    code = (
        "import os, glob\nprint(sorted(os.environ))\n"
        "for path in glob.glob('/proc/*/environ'):\n    print(open(path, 'rb').read())"
    )
    result = await call(env, "run_python", code=code)
    for name, value in SECRETS.items():
        assert name not in result["stdout"] and value not in result["stdout"]
    shell = await call(env, "run_shell", command="env; cat /proc/self/environ")
    for name, value in SECRETS.items():
        assert name not in shell["stdout"] and value not in shell["stdout"]
    assert_host_unharmed(env)


async def test_subprocess_os_system_and_ctypes_are_allowed_but_contained(env: Env) -> None:
    code = (
        "import subprocess, os, ctypes\n"
        "print(subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip(), flush=True)\n"
        "os.system('echo from-system')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('unshare', libc.unshare(0x10000000 | 0x00020000), ctypes.get_errno())\n"
        "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n"
        "print('setuid', libc.setuid(0), ctypes.get_errno())"
    )
    result = await call(env, "run_python", code=code)
    lines = result["stdout"].splitlines()
    assert int(lines[0]) == env.sandbox.uid_for(env.ws.resolve())
    assert "from-system" in lines
    assert "unshare -1 1" in lines and "mount -1 1" in lines and "setuid -1 1" in lines  # EPERM each
    assert_host_unharmed(env)


async def test_the_server_still_answers_after_the_attacks(env: Env) -> None:
    result = await call(env, "run_python", code="print(6 * 7)")
    assert result["stdout"] == "42\n" and result["exit_code"] == 0
    report = await call(env, "run_tests", code="def f(x):\n    return x + 1", test_code="assert f(1) == 2")
    assert report["passed"] == report["total"] == 1
    await env.sandbox.close()
