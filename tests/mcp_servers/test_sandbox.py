"""The process sandbox library: results, limits, the warm path without leaks, per-workspace uids, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from host_processes import uid_processes

from mcp_servers.errors import BackendError, ToolInputError
from mcp_servers.exec.sandbox import Limits, ProcessSandbox, ProcessSandboxConfig

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/proc/self/ns/pid"),
    reason="the process sandbox needs root and Linux namespaces",
)

FAST = Limits(timeout_s=5)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ProcessSandbox]:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=4))
    box.start()
    yield box
    asyncio.run(box.close())


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


async def test_python_result_fields(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(ws, code="import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.timed_out and not result.memory_exceeded and not result.stdout_truncated
    assert result.duration_s > 0 and result.rusage["max_rss_kb"] > 0


async def test_stdin_and_unicode(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(ws, code="import sys\nprint(sys.stdin.read().upper())", stdin="héllo wörld")
    assert result.ok and result.stdout == "HÉLLO WÖRLD\n"


async def test_exception_traceback_shows_only_user_frames(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(ws, code="def f():\n    1 / 0\nf()")
    assert result.exit_code == 1
    assert "ZeroDivisionError" in result.stderr and 'File "<code>", line 2' in result.stderr
    assert "_zygote" not in result.stderr and "mcp_servers" not in result.stderr


async def test_argv_runs_in_workspace_and_files_persist(sandbox: ProcessSandbox, ws: Path) -> None:
    (ws / "data.txt").write_text("41\n")
    result = await sandbox.run(ws, argv=["/bin/sh", "-c", "pwd; echo $(( $(cat data.txt) + 1 )) > out.txt"])
    assert result.ok and result.stdout == "/workspace\n"
    assert (ws / "out.txt").read_text() == "42\n"
    missing = await sandbox.run(ws, argv=["no-such-command-xyz"])
    assert missing.exit_code == 127 and "no-such-command-xyz" in missing.stderr


async def test_python_in_sandbox_is_the_same_interpreter(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(ws, argv=["python3", "-c", "import sys; print(sys.version_info[:2])"])
    assert result.ok and result.stdout.strip() == str(sys.version_info[:2])


async def test_nothing_leaks_between_executions(sandbox: ProcessSandbox, ws: Path) -> None:
    first = await sandbox.run(
        ws,
        code=(
            "import json, collections, builtins\n"
            "json.LEAKED = 1\ncollections.LEAKED = 1\nbuiltins.LEAKED = 1\nGLOBAL_LEAK = 1\n"
            "open('/tmp/secret', 'w').write('x')\n"
            "import os; os.environ['LEAK'] = '1'\n"
            "print('written')"
        ),
    )
    assert first.ok and first.stdout == "written\n"
    second = await sandbox.run(
        ws,
        code=(
            "import json, collections, builtins, os\n"
            "print(hasattr(json, 'LEAKED'), hasattr(collections, 'LEAKED'), hasattr(builtins, 'LEAKED'),"
            " 'GLOBAL_LEAK' in globals(), os.path.exists('/tmp/secret'), 'LEAK' in os.environ, os.listdir('/tmp'))"
        ),
    )
    assert second.ok, second.stderr
    assert second.stdout == "False False False False False False []\n"


async def test_wall_clock_timeout_kills_the_tree(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(
        ws, argv=["/bin/sh", "-c", "sleep 100 & sleep 100 & while :; do :; done"], limits=Limits(timeout_s=1)
    )
    assert result.timed_out and result.exit_code is None
    assert result.duration_s < 30  # bounded by the limit, not by the children's sleeps


async def test_output_cap_truncates_and_flags(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(ws, code="print('a' * 5000)", limits=Limits(output_bytes=1000))
    assert result.stdout_truncated and result.output_limit_exceeded
    assert result.stdout == "a" * 1000
    small = await sandbox.run(ws, code="print('a' * 500)", limits=Limits(output_bytes=1000))
    assert not small.stdout_truncated and small.stdout == "a" * 500 + "\n"


async def test_memory_limit(sandbox: ProcessSandbox, ws: Path) -> None:
    result = await sandbox.run(
        ws, code="blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))", limits=Limits(memory_mb=64)
    )
    assert result.memory_exceeded and result.exit_code != 0


async def test_each_workspace_gets_its_own_uid(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "made-by-host.txt").write_text("host")
    ra = await sandbox.run(a, code="import os; print(os.getuid(), os.getgid(), os.getgroups())")
    rb = await sandbox.run(b, code="import os; print(os.getuid())")
    uid_a, uid_b = int(ra.stdout.split()[0]), int(rb.stdout.split()[0])
    assert uid_a != uid_b and uid_a >= 200_000 and uid_b >= 200_000
    assert ra.stdout.split()[1] == str(uid_a) and ra.stdout.split()[2] == "[]"
    assert (a / "made-by-host.txt").stat().st_uid == uid_a  # the workspace is handed to its sandbox uid
    edit = await sandbox.run(a, code="open('made-by-host.txt', 'a').write('+sandbox')")
    assert edit.ok and (a / "made-by-host.txt").read_text() == "host+sandbox"


async def test_uids_of_released_workspaces_are_reused_and_live_ones_capped(tmp_path: Path) -> None:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=2, uid_base=230_000, uid_count=2))
    spaces = [tmp_path / name for name in "abc"]
    for space in spaces:
        space.mkdir()

    async def uid(space: Path) -> int:
        result = await box.run(space, code="import os; print(os.getuid())")
        assert result.ok, result
        return int(result.stdout)

    try:
        first, second = await uid(spaces[0]), await uid(spaces[1])
        assert first != second and {first, second} <= {230_000, 230_001}
        with pytest.raises(BackendError, match="all 2 sandbox uids are held by live workspaces"):
            await uid(spaces[2])  # (before: it got the first workspace's uid, shared with a live workspace)
        await box.release(spaces[0])
        assert await uid(spaces[2]) == first  # the released workspace's uid, no one else's
        assert await uid(spaces[1]) == second
        with pytest.raises(BackendError, match="held by live workspaces"):
            await uid(spaces[0])  # released, then back: a new workspace, and none is free
        await box.release(spaces[1])
        await box.release(spaces[2])
        assert {await uid(spaces[0]), await uid(spaces[1])} == {first, second}
    finally:
        await box.close()


async def test_network_namespaces_are_per_workspace_never_the_hosts(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    """A workspace's executions, concurrent ones included, get one network namespace of their own, kept for the
    next calls; two workspaces never share one, and none is the host's."""
    spaces = [tmp_path / "net-a", tmp_path / "net-b"]
    for space in spaces:
        space.mkdir()
    probe = "import os; print(os.readlink('/proc/self/ns/net'))"
    seen: dict[Path, set[str]] = {space: set() for space in spaces}
    for _ in range(3):
        results = await asyncio.gather(*(sandbox.run(space, code=probe) for space in spaces for _ in range(4)))
        for i, result in enumerate(results):
            assert result.ok, result.stderr
            seen[spaces[i // 4]].add(result.stdout.strip())
    host = os.readlink("/proc/self/ns/net")
    assert all(name.startswith("net:[") for names in seen.values() for name in names)
    assert not seen[spaces[0]] & seen[spaces[1]]
    assert host not in seen[spaces[0]] | seen[spaces[1]]
    assert len(seen[spaces[0]]) == len(seen[spaces[1]]) == 1  # reused across calls, not made afresh each time


async def test_ownership_handover_never_follows_symlinks(sandbox: ProcessSandbox, ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    (ws / "link").symlink_to(outside)
    await sandbox.run(ws, code="pass")
    assert outside.stat().st_uid == 0


async def test_concurrent_executions(sandbox: ProcessSandbox, ws: Path) -> None:
    results = await asyncio.gather(*(sandbox.run(ws, code=f"print({i} * {i})") for i in range(24)))
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(24)]


async def test_bad_input_is_rejected_clearly(sandbox: ProcessSandbox, ws: Path) -> None:
    with pytest.raises(ToolInputError, match="exactly one of 'code'"):
        await sandbox.run(ws)
    with pytest.raises(ToolInputError, match="exactly one of 'code'"):
        await sandbox.run(ws, code="pass", argv=["ls"])
    with pytest.raises(ToolInputError, match="non-empty list"):
        await sandbox.run(ws, argv=[])
    with pytest.raises(ToolInputError, match="timeout_s must be > 0"):
        Limits(timeout_s=0)
    with pytest.raises(ToolInputError, match="memory_mb"):
        Limits(memory_mb=1)


async def test_fork_server_restarts_after_dying(ws: Path) -> None:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1))
    try:
        assert (await box.run(ws, code="print(1)")).stdout == "1\n"
        assert box._proc is not None
        box._proc.kill()
        box._proc.wait()
        assert (await box.run(ws, code="print(2)")).stdout == "2\n"
    finally:
        await box.close()


async def test_no_data_of_one_execution_in_the_next_ones_memory(sandbox: ProcessSandbox, ws: Path) -> None:
    marker = "mark-" + os.urandom(8).hex()
    first = await sandbox.run(ws, code=f"data = {marker!r} * 100\nprint(len(data))", stdin=marker * 10)
    assert first.ok
    scan = (  # reads every private, readable mapping (heap, anonymous, stack) of its own process
        "import ctypes\nneedle = " + repr(marker[::-1]) + "[::-1].encode()\nfound = 0\n"
        "for line in open('/proc/self/maps').read().splitlines():\n"
        "    parts = line.split()\n"
        "    if 'r' not in parts[1] or (len(parts) > 5 and parts[5] not in ('[heap]', '[stack]')):\n"
        "        continue\n"
        "    lo, hi = (int(x, 16) for x in parts[0].split('-'))\n"
        "    found += ctypes.string_at(lo, hi - lo).count(needle)\n"
        "print(found)"
    )
    second = await sandbox.run(ws, code=scan)
    assert second.ok, second.stderr
    assert second.stdout == "1\n"  # only the needle this scan built itself


async def test_both_mount_paths_build_the_same_file_system(sandbox: ProcessSandbox, ws: Path) -> None:
    """The prepared-namespace path (open_tree/move_mount) and the older pivot_root path give the same mounts."""
    probe = (
        "import json\n"
        "points = sorted((l.split()[4], ' '.join(sorted(set(l.split()[5].split(',')) & {'ro', 'rw', 'nosuid', "
        "'nodev', 'noexec'}))) for l in open('/proc/self/mountinfo'))\n"
        "open('/workspace/written.txt', 'w').write('ok')\n"
        "print(json.dumps(points))"
    )
    legacy = ProcessSandbox(ProcessSandboxConfig(pool_size=1, mount_api=False))
    try:
        old = await legacy.run(ws, code=probe)
    finally:
        await legacy.close()
    new = await sandbox.run(ws, code=probe)
    assert old.ok and new.ok, (old.stderr, new.stderr)
    assert old.stdout == new.stdout
    mounts = dict(json.loads(new.stdout))
    assert mounts["/"] == "nodev nosuid ro" and mounts["/workspace"] == "nodev nosuid rw"
    assert mounts["/tmp"] == "nodev nosuid rw" and "/var/lib/docker" not in mounts and "/sys" not in mounts
    assert (ws / "written.txt").read_text() == "ok"


async def test_a_listener_does_not_outlive_its_call_in_the_shared_network_namespace(ws: Path) -> None:
    """A workspace's calls share one network namespace; a server started by one call (even a detached background
    process) is gone before the next call, which finds the port closed."""
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1))
    try:
        start = await box.run(ws, code=(
            "import os, socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1]); sys.stdout.flush()\n"
            "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
            "c = socket.create_connection(('127.0.0.1', s.getsockname()[1])); print('reached')\n"
        ), limits=FAST)  # fmt: skip
        assert start.ok and start.stdout.split()[1] == "reached", start.stderr
        port = int(start.stdout.split()[0])
        probe = (
            "import os, socket\nprint(os.readlink('/proc/self/ns/net'))\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('open')\n"
            "except OSError as exc:\n    print(type(exc).__name__)\n"
        )
        first = await box.run(ws, code=probe, limits=FAST)
        second = await box.run(ws, code=probe, limits=FAST)
        assert first.stdout.split()[1] == second.stdout.split()[1] == "ConnectionRefusedError"
        assert first.stdout.split()[0] == second.stdout.split()[0]  # the same namespace, reused
    finally:
        await box.close()


async def test_loopback_can_be_left_down(ws: Path) -> None:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1, loopback=False))
    try:
        result = await box.run(ws, code=(
            "import socket\ntry:\n    socket.socket().bind(('127.0.0.1', 0)); s = socket.socket(); "
            "s.connect(('127.0.0.1', 9)); print('connected')\nexcept OSError as exc:\n    print(exc.errno)\n"
        ), limits=FAST)  # fmt: skip
    finally:
        await box.close()
    assert result.ok, result.stderr
    assert result.stdout.strip() in ("99", "101")  # EADDRNOTAVAIL / ENETUNREACH: no loopback to use


async def test_output_under_a_large_cap_arrives_whole(sandbox: ProcessSandbox, ws: Path) -> None:
    """With a cap above a pipe's default 64 KiB, a program that prints 300 KB in bursts gets all of it back."""
    code = "import sys\nfor i in range(3000):\n    sys.stdout.write(f'{i:09d}' * 10 + '\\n')\n"
    result = await sandbox.run(ws, code=code, limits=Limits(timeout_s=10, output_bytes=400_000))
    assert result.ok and not result.stdout_truncated and not result.output_limit_exceeded
    lines = result.stdout.splitlines()
    assert len(lines) == 3000 and lines[-1] == f"{2999:09d}" * 10


def test_preload_setting_reaches_the_process_backend() -> None:
    from mcp_servers.exec.sandbox import DEFAULT_PRELOAD as default
    from mcp_servers.exec.sandbox import make_sandbox
    from mcp_servers.settings import ExecSettings

    lean = make_sandbox(ExecSettings(preload=["typing", "math"]))
    assert isinstance(lean, ProcessSandbox) and lean.config.preload == ("typing", "math")
    standard = make_sandbox(ExecSettings())
    assert isinstance(standard, ProcessSandbox) and standard.config.preload == default
    assert "subprocess" not in default and "random" not in default


async def test_a_module_left_out_of_the_preload_list_still_imports(ws: Path) -> None:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1, preload=("json",)))
    try:
        result = await box.run(ws, code="import sys\nprint('csv' in sys.modules)\nimport csv\nprint('ok')")
    finally:
        await box.close()
    assert result.ok and result.stdout.split() == ["False", "ok"], result.stderr


async def test_a_preloaded_module_with_at_fork_hooks_still_gets_them_run(ws: Path) -> None:
    # Sandboxes are cloned without the interpreter's fork protocol unless a preloaded module registered at-fork
    # hooks; `random` does (it re-seeds in each child): without them every execution would draw the same numbers.
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1, preload=("random",)))
    try:
        draws = [await box.run(ws, code="import random, sys\nprint('random' in sys.modules, random.getrandbits(64))")
                 for _ in range(3)]  # fmt: skip
    finally:
        await box.close()
    assert all(d.ok and d.stdout.split()[0] == "True" for d in draws), [d.stderr for d in draws]
    assert len({d.stdout for d in draws}) == 3


async def test_standard_streams_are_fresh_and_of_the_right_kind(sandbox: ProcessSandbox, ws: Path) -> None:
    # The stream objects are made once in the fork server over a stand-in of the same kind (a memfd for stdin,
    # pipes for stdout and stderr); an execution must see them as such, and not the server's own streams.
    code = (
        "import sys\n"
        "print(sys.stdin.seekable(), sys.stdout.seekable(), sys.stderr.line_buffering, sys.stdout is sys.__stdout__)\n"
        "print(sys.stdin.read(3), sys.stdin.seek(0), sys.stdin.read())\n"
        "print('e', file=sys.stderr)"
    )
    first = await sandbox.run(ws, code=code, stdin="abcdef")
    second = await sandbox.run(ws, code=code, stdin="xyz")
    assert first.stdout == "True False True True\nabc 0 abcdef\n" and first.stderr == "e\n"
    assert second.stdout == "True False True True\nxyz 0 xyz\n" and second.stderr == "e\n"


def test_a_running_sandbox_survives_the_end_of_the_thread_that_started_the_fork_server(ws: Path) -> None:
    # A sandbox dies with its parent (PDEATHSIG), the fork server: the end of the caller's thread that started the
    # fork server kills nothing.
    import threading

    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1))
    started, finish = threading.Event(), threading.Event()

    def starter() -> None:
        box.start()
        started.set()
        finish.wait()

    thread = threading.Thread(target=starter)
    thread.start()
    started.wait()

    async def scenario() -> Any:
        run = asyncio.create_task(box.run(ws, code="import time\ntime.sleep(0.6)\nprint('done')", limits=FAST))
        await asyncio.sleep(0.3)  # the sandbox is running
        finish.set()
        await asyncio.to_thread(thread.join)  # the thread that called start() ends now
        return await run

    try:
        result = asyncio.run(scenario())
    finally:
        asyncio.run(box.close())
    assert result.ok and result.stdout == "done\n", (result.exit_code, result.stderr)


def test_shutting_the_backend_down_kills_a_running_sandbox_and_removes_its_cgroups(ws: Path) -> None:
    import threading

    box = ProcessSandbox(ProcessSandboxConfig(pool_size=1))
    box.start()
    assert box._cgroups is not None
    roots, prefix = dict(box._cgroups.roots), box._cgroups.prefix

    async def scenario() -> Any:
        run = asyncio.create_task(box.run(ws, code="import time\ntime.sleep(30)", limits=Limits(timeout_s=60)))
        await asyncio.sleep(0.5)  # it sleeps in its sandbox
        stopper = threading.Thread(target=box.shutdown)
        stopper.start()
        with pytest.raises(BackendError, match="lost the fork server"):  # long before its 30 s
            await asyncio.wait_for(run, timeout=10)
        await asyncio.to_thread(stopper.join)

    asyncio.run(scenario())
    left = [name for root in roots.values() for name in os.listdir(root) if name.startswith(prefix + "-")]
    assert left == []
    assert sandbox_uid_processes(box, ws) == []


def test_cgroups_of_a_server_killed_with_its_fork_server_are_removed_by_the_next_start(ws: Path) -> None:
    from mcp_servers.exec.sandbox import _nsutil as ns

    roots = ns.Cgroup.roots()
    if not roots:
        pytest.skip("cgroups are not writable here")
    script = (
        "import asyncio, sys, time\n"
        "from pathlib import Path\n"
        "from mcp_servers.exec.sandbox import ProcessSandbox\n"
        "box = ProcessSandbox()\n"
        "result = asyncio.run(box.run(Path(sys.argv[1]), code='print(1)'))\n"
        "assert result.ok, result\n"
        "print(box._cgroups.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script, str(ws)], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert server.stdout is not None
        prefix = server.stdout.readline().decode().strip()
        assert prefix.startswith("x-"), prefix

        def left() -> list[str]:
            return [n for root in roots.values() for n in os.listdir(root) if n.startswith(prefix + "-")]

        assert left(), "the execution ran in a cgroup of its server"
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and its fork server together: nobody cleans up
        server.wait()
    assert left(), "a killed fork server leaves its cgroups"
    owner = prefix.rsplit("-", 2)[0]  # x-<pid namespace>
    ours = os.path.join(next(iter(roots.values())), f"{owner}-{os.getpid()}-1-999999")  # a live server's: kept
    os.mkdir(ours)
    box = ProcessSandbox()
    try:
        box.start()
        assert left() == []
        assert os.path.isdir(ours)
    finally:
        box.shutdown()
        os.rmdir(ours)


def sandbox_uid_processes(box: ProcessSandbox, ws: Path) -> list[int]:
    """Host pids running as the workspace's sandbox uid."""
    return uid_processes(box.uid_for(ws.resolve()))


async def test_a_cancelled_call_leaves_no_process_and_no_zombie(sandbox: ProcessSandbox, ws: Path) -> None:
    # A call cancelled at any point (even while its sandbox is being made) must leave no process behind.
    await sandbox.run(ws, code="pass")
    for delay in (0.0, 0.001, 0.005, 0.3):
        run = asyncio.create_task(sandbox.run(ws, code="import time\ntime.sleep(30)", limits=FAST))
        await asyncio.sleep(delay)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    for _ in range(100):
        if not sandbox_uid_processes(sandbox, ws):
            break
        await asyncio.sleep(0.05)
    assert sandbox_uid_processes(sandbox, ws) == []
    assert (await sandbox.run(ws, code="print('still serving')")).stdout == "still serving\n"
