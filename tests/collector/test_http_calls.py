"""Sessionless tool calls (MCP 2026-07-28, one POST per call) through a real `mcpgym serve all`, against the MCP SDK's
client session on the same gateway: same tools, same results, same errors; and the session path for a server that
speaks only 2025-11-25 (the TypeScript SDK's streamable HTTP server)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ToolSessionError
from collector.pool import ToolPool
from collector.servers import GATEWAY_SERVERS, ServerSpec
from collector.settings import CollectorSettings
from collector.tools import ToolResult
from mcp_servers.gateway.process import GatewayProcess, free_port

TOKEN = "lean-token"
NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def specs(gw: GatewayProcess, names: tuple[str, ...] = GATEWAY_SERVERS) -> dict[str, ServerSpec]:
    return {n: ServerSpec(name=n, url=gw.url(n), headers={"Authorization": f"Bearer {TOKEN}"}) for n in names}


def same(result: ToolResult) -> dict[str, Any]:
    """A result without its wall time."""
    out = asdict(result)
    out.pop("duration_s")
    return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with GatewayProcess(["all"], workspace=tmp_path_factory.mktemp("gw"), token=TOKEN) as gw:
        yield gw


@pytest.fixture
async def pools(gateway: GatewayProcess) -> AsyncIterator[tuple[ToolPool, ToolPool]]:
    """The same servers through sessionless calls and through the SDK's sessions."""
    async with ToolPool(specs(gateway)) as lean, \
            ToolPool(specs(gateway), settings=CollectorSettings(mcp_client="sdk")) as sdk:
        yield lean, sdk


async def test_same_tools_and_results_as_the_sdk_session(pools: tuple[ToolPool, ToolPool]) -> None:
    lean, sdk = pools
    assert await lean.list_tools() == await sdk.list_tools()  # the data contract: byte-identical tool schemas
    calls = [
        ("get_current_weather", '{"location": "Paris"}'),
        ("get_forecast", '{"location": "Oslo", "days": 2}'),
        ("geocode", '{"name": "Lyon"}'),
        ("get_current_weather", '{"location": "Nowhere-At-All-Zz"}'),  # the tool's own error
        ("get_current_weather", '{"location": 3}'),  # invalid arguments (caught before the server)
        ("get_current_weather", '{"location": '),  # invalid JSON
        ("no_such_tool", "{}"),
    ]
    async with lean.session(["weather"]) as a, sdk.session(["weather"]) as b:
        assert a.sessionless == ["weather"] and b.sessionless == []
        assert a.tools == b.tools
        for name, arguments in calls:
            got, want = await a.call(name, arguments), await b.call(name, arguments)
            assert same(got) == same(want), name
        assert not (await a.call(*calls[0])).is_error
        kinds = [(await a.call(n, args)).error_kind for n, args in calls[3:]]
        assert kinds == ["tool_error", "invalid_arguments", "invalid_json", "unknown_tool"]
        # past the session's own checks: the server judges a tool it lacks and arguments of the wrong type
        raw: list[tuple[str, dict[str, Any]]] = [("no_such_tool", {}), ("get_current_weather", {"location": 3})]
        for tool, args in raw:
            got, want = await a.call_tool("weather", tool, args), await b.call_tool("weather", tool, args)
            assert same(got) == same(want) and got.is_error and got.error_kind == "tool_error"


async def test_workspaces_stay_per_episode(pools: tuple[ToolPool, ToolPool]) -> None:
    lean, sdk = pools
    async with lean.session(["files", "exec"]) as a, lean.session(["files", "exec"]) as b, \
            sdk.session(["files", "exec"]) as c:
        assert a.sessionless == ["files", "exec"] and a.workspace_id != b.workspace_id
        await a.setup_workspace({"notes.txt": "episode a", "sub/x.py": "print('a')"})
        await b.setup_workspace({"notes.txt": "episode b"})
        await c.setup_workspace({"notes.txt": "episode a", "sub/x.py": "print('a')"})
        assert await a.snapshot_files() == await c.snapshot_files() == {"notes.txt": "episode a",
                                                                          "sub/x.py": "print('a')"}
        assert await b.snapshot_files() == {"notes.txt": "episode b"}
        for s, text in [(a, "episode a"), (b, "episode b")]:  # what files wrote is what exec runs on
            shell = await s.call("exec__run_shell", '{"command": "cat notes.txt"}')
            assert not shell.is_error and shell.structured["stdout"] == text
        got = await a.call("files__read_text_file", '{"path": "missing.txt"}')
        want = await c.call("files__read_text_file", '{"path": "missing.txt"}')
        assert same(got) == same(want) and got.error_kind == "tool_error" and "missing.txt" in got.text
        escape = await a.call("files__write_file", '{"path": "../x", "content": "y"}')
        assert same(escape) == same(await c.call("files__write_file", '{"path": "../x", "content": "y"}'))
        assert escape.is_error and "outside the workspace" in escape.text
        report = await a.run_tests("def inc(x):\n    return x + 1\n",
                                   "def check(candidate):\n    assert candidate(1) == 2\n", "inc")
        assert report["passed"] == report["total"] == 1


async def test_output_budget_and_call_timeout(gateway: GatewayProcess) -> None:
    for mode in ("auto", "sdk"):
        settings = CollectorSettings(mcp_client=mode, max_tool_output_chars=300, call_timeout_s=1.0)
        async with ToolPool(specs(gateway, ("files", "exec")), settings=settings) as pool, \
                pool.session(["files", "exec"]) as s:
            assert len(s.sessionless) == (2 if mode == "auto" else 0)
            await s.setup_workspace({"big.txt": "x" * 2000})
            out = await s.call("files__read_text_file", '{"path": "big.txt"}')
            assert out.truncated and len(out.text) <= 300 and "[... truncated: " in out.text, mode
            slow = await s.call("exec__run_shell", '{"command": "sleep 5"}')
            assert slow.is_error and slow.error_kind == "timeout", mode
            assert slow.text == "Error: the tool 'run_shell' did not answer within 1 seconds."
            assert not (await s.call("exec__run_shell", '{"command": "true"}')).is_error  # the session goes on


async def test_a_killed_gateway_is_a_session_error_naming_server_and_url(tmp_path: Path) -> None:
    gw = GatewayProcess(["all"], workspace=tmp_path / "ws", token=TOKEN).start()
    try:
        async with ToolPool(specs(gw, ("exec", "weather"))) as pool:
            async with pool.session(["exec", "weather"]) as s:
                assert s.sessionless == ["exec", "weather"]
                call = asyncio.ensure_future(s.call("exec__run_shell", '{"command": "sleep 3"}'))
                await asyncio.sleep(1.0)
                assert gw.proc is not None
                gw.proc.kill()  # mid-call
                with pytest.raises(ToolSessionError, match=f"server died: MCP server 'exec' \\({gw.url('exec')}\\)"):
                    await call
                gw.proc.wait()
                with pytest.raises(ToolSessionError, match=f"MCP server 'weather' \\({gw.url('weather')}\\)"):
                    await s.call("weather__geocode", '{"name": "Paris"}')
            with pytest.raises(ToolSessionError, match="cannot connect"):
                await pool.open_session(["weather"])  # asked again, not reachable
            gw.start()  # same port
            async with pool.session(["weather"]) as s:
                assert s.sessionless == ["weather"]
                assert "Paris" in (await s.call("geocode", '{"name": "Paris"}')).text
    finally:
        gw.stop()


async def test_a_hung_server_fails_the_next_session_opening(tmp_path: Path) -> None:
    gw = GatewayProcess(["all"], workspace=tmp_path / "ws", token=TOKEN).start()
    settings = CollectorSettings(call_timeout_s=1.0, connect_timeout_s=2.0)
    try:
        async with ToolPool(specs(gw, ("weather",)), settings=settings) as pool:
            assert gw.proc is not None
            async with pool.session(["weather"]) as s:
                assert s.sessionless == ["weather"]
                gw.proc.send_signal(signal.SIGSTOP)  # alive, answering nothing
                stuck = await s.call("geocode", '{"name": "Paris"}')
                assert stuck.error_kind == "timeout"
            with pytest.raises(ToolSessionError, match=r"cannot connect to MCP server 'weather' .*no answer in 2s"):
                await pool.open_session(["weather"])  # a call timed out: the server is asked again, as a session would
            gw.proc.send_signal(signal.SIGCONT)
            async with pool.session(["weather"]) as s:
                assert "Paris" in (await s.call("geocode", '{"name": "Paris"}')).text
    finally:
        if gw.proc is not None:
            gw.proc.send_signal(signal.SIGCONT)
        gw.stop()


async def test_settings_force_the_sdk_session(gateway: GatewayProcess) -> None:
    for settings in (CollectorSettings(mcp_client="sdk"), CollectorSettings(mcp_mode="legacy")):
        async with ToolPool(specs(gateway, ("weather",)), settings=settings) as pool, \
                pool.session(["weather"]) as s:
            assert s.sessionless == []
            assert "Paris" in (await s.call("geocode", '{"name": "Paris"}')).text


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-filesystem").is_dir():
        return "run `npm install` in tests/node (scripts/setup-system.sh does it)"
    return None


@pytest.fixture
def session_only_server(tmp_path: Path) -> Iterator[str]:
    """The TypeScript SDK's streamable HTTP server (`tests/node/ref-http.mjs`): sessions only, MCP 2025-11-25."""
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    (tmp_path / "hello.txt").write_text("from a 2025-11-25 server")
    port = free_port()
    proc = subprocess.Popen(["node", str(NODE_DIR / "ref-http.mjs"), str(port), str(tmp_path)], cwd=NODE_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the Node MCP server did not start") from None
            time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait()


async def test_a_server_without_2026_07_28_gets_the_sdk_session(session_only_server: str, tmp_path: Path) -> None:
    spec = ServerSpec(name="ref", url=session_only_server)
    async with ToolPool({"ref": spec}) as pool:
        for _ in range(2):  # asked once; the answer holds for the next session
            async with pool.session(["ref"]) as s:
                assert s.sessionless == []
                result = await s.call("read_text_file", f'{{"path": "{tmp_path / "hello.txt"}"}}')
                assert not result.is_error and result.text == "from a 2025-11-25 server"
