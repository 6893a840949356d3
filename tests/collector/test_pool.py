"""The MCP client pool over real servers: stdio, HTTP, the managed gateway; malformed calls, timeouts, deaths."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from toy_fixtures import ToyHttp, toy_http, toy_stdio_spec  # noqa: F401 - fixture

from collector.errors import ConfigError, ToolSessionError
from collector.pool import ToolPool
from collector.servers import ServerSpec
from collector.settings import CollectorSettings


async def test_stdio_session_calls_and_malformed_calls() -> None:
    recorded: list[tuple[str, list[str]]] = []

    def on_tools(server: str, tools: list[dict]) -> list[str]:
        recorded.append((server, [t["name"] for t in tools]))
        return []

    async with ToolPool({"files": toy_stdio_spec()}, on_tools=on_tools) as pool, pool.session(["files"]) as s:
        assert {t["function"]["name"] for t in s.tools} >= {"add", "echo", "write_file"}
        ok = await s.call("add", '{"a": 2, "b": 40}')
        assert (ok.text, ok.is_error, ok.server, ok.tool) == ("42", False, "files", "add")
        assert ok.structured == {"result": 42}
        failing = await s.call("fail", '{"message": "no such city"}')
        assert failing.is_error and failing.error_kind == "tool_error" and not failing.malformed
        unknown = await s.call("nope", "{}")
        assert unknown.malformed and "Available tools" in unknown.text
        bad = await s.call("add", '{"a": 1}')
        assert bad.error_kind == "invalid_arguments" and "'b' is a required property" in bad.text
    assert recorded and recorded[0][0] == "files" and "add" in recorded[0][1]


async def test_tool_list_is_cached_per_server() -> None:
    calls: list[str] = []
    async with ToolPool({"files": toy_stdio_spec()}, on_tools=lambda s, t: calls.append(s) or []) as pool:
        for _ in range(2):
            async with pool.session(["files"]):
                pass
        assert calls == ["files"]
        pool.forget("files")
        async with pool.session(["files"]):
            pass
        assert calls == ["files", "files"]


async def test_each_session_has_its_own_workspace_and_snapshot() -> None:
    async with ToolPool({"files": toy_stdio_spec()}) as pool:
        async with pool.session(["files"]) as s:
            await s.setup_workspace({"a.txt": "alpha", "sub/b.txt": "beta"})
            assert await s.snapshot_files() == {"a.txt": "alpha", "sub/b.txt": "beta"}
        async with pool.session(["files"]) as s2:
            assert await s2.snapshot_files() == {}


async def test_call_timeout_is_a_tool_error() -> None:
    settings = CollectorSettings(call_timeout_s=0.5)
    async with ToolPool({"files": toy_stdio_spec()}, settings=settings) as pool, pool.session(["files"]) as s:
        slow = await s.call("sleep", '{"seconds": 5}')
        assert slow.is_error and slow.error_kind == "timeout" and "0.5 seconds" in slow.text
        assert (await s.call("echo", '{"text": "still alive"}')).text == "still alive"


async def test_output_budget_truncates_with_marker() -> None:
    settings = CollectorSettings(max_tool_output_chars=300)
    async with ToolPool({"files": toy_stdio_spec()}, settings=settings) as pool, pool.session(["files"]) as s:
        out = await s.call("echo", '{"text": "%s"}' % ("x" * 2000))
        assert out.truncated and len(out.text) <= 300 and "[... truncated" in out.text


async def test_several_servers_are_namespaced() -> None:
    specs = {"files": toy_stdio_spec("files"), "toy": toy_stdio_spec("toy")}
    async with ToolPool(specs) as pool, pool.session(["files", "toy"]) as s:
        names = {t["function"]["name"] for t in s.tools}
        assert {"files__add", "toy__add"} <= names and "add" not in names
        result = await s.call("toy__add", '{"a": 1, "b": 1}')
        assert result.server == "toy" and result.text == "2"


async def test_stdio_server_death_fails_the_session_then_reconnects() -> None:
    async with ToolPool({"files": toy_stdio_spec()}) as pool:
        async with pool.session(["files"]) as s:
            with pytest.raises(ToolSessionError, match="server died"):
                await s.call("die", "{}")
        async with pool.session(["files"]) as s:
            assert (await s.call("add", '{"a": 1, "b": 2}')).text == "3"


async def test_http_server_death_and_reconnect(toy_http: ToyHttp) -> None:  # noqa: F811
    async with ToolPool({"toy": ServerSpec(name="toy", url=toy_http.url)}) as pool:
        async with pool.session(["toy"]) as s:
            assert (await s.call("add", '{"a": 1, "b": 2}')).text == "3"
            toy_http.kill()
            with pytest.raises(ToolSessionError, match="toy"):
                await s.call("add", '{"a": 1, "b": 2}')
        with pytest.raises(ToolSessionError, match="cannot connect"):
            await pool.open_session(["toy"])
        toy_http.start()
        async with pool.session(["toy"]) as s:
            assert (await s.call("echo", '{"text": "back"}')).text == "back"


async def test_legacy_handshake_mode() -> None:
    settings = CollectorSettings(mcp_mode="legacy")
    async with ToolPool({"files": toy_stdio_spec()}, settings=settings) as pool, pool.session(["files"]) as s:
        assert (await s.call("add", '{"a": 20, "b": 22}')).text == "42"


async def test_unknown_server_and_unreachable_command_are_clear() -> None:
    bad = ServerSpec(name="gone", command="/nonexistent/mcp-server")
    async with ToolPool({"gone": bad}) as pool:
        with pytest.raises(ConfigError, match="no MCP server named 'weather'"):
            await pool.open_session(["weather"])
        with pytest.raises(ToolSessionError, match="cannot connect"):
            await pool.open_session(["gone"])


@pytest.mark.slow
async def test_managed_gateway_per_session_workspaces_and_restart(tmp_path: Path) -> None:
    settings = CollectorSettings(workspace_root=tmp_path / "ws")
    async with ToolPool(settings=settings) as pool:
        assert pool.gateway is not None and {"files", "weather"} <= set(pool.server_names)
        async with pool.session(["files", "weather"]) as s:
            assert any(t["function"]["name"] == "weather__get_current_weather" for t in s.tools)
            await s.setup_workspace({"notes/a.md": "hello"})
            assert await s.snapshot_files() == {"notes/a.md": "hello"}
            escape = await s.call("files__write_file", '{"path": "../x", "content": "y"}')
            assert escape.is_error and "outside the workspace" in escape.text
        async with pool.session(["files", "exec"]) as s:  # one workspace across the session's servers
            await s.setup_workspace({"data.txt": "shared"})
            shell = await s.call("exec__run_shell", '{"command": "cat data.txt"}')
            assert not shell.is_error and "shared" in shell.text
            report = await s.run_tests("def inc(x):\n    return x + 1\n",
                                       "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n",
                                       "inc")
            assert report["passed"] == report["total"] == 2
        pid = pool.gateway.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while pool.gateway.alive():  # the kill has landed (sessionless sessions send nothing when they open)
            await asyncio.sleep(0.01)
        async with pool.session(["files"]) as s:  # the dead gateway is restarted
            assert await s.snapshot_files() == {}
        assert pool.gateway.restarts == 1
    assert not pool.gateway.alive()
