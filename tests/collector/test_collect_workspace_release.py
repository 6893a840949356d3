"""The collector releases each episode's gateway workspace when its tools close, over real gateways and servers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from toy_fixtures import ToyHttp, toy_http  # noqa: F401 - fixture

from collector.collect import CollectConfig, run_collection
from collector.http_calls import release_workspace
from collector.pool import ToolPool
from collector.servers import ServerSpec
from collector.settings import CollectorSettings
from mcp_servers.gateway.process import GatewayProcess

TOKEN = "collect-release-token"
EPISODES = 20
CONCURRENCY = 2
CAP = 8  # live workspaces the gateway holds at most: fewer than the episodes, more than the ones in flight


def specs(gw: GatewayProcess, *names: str) -> dict[str, ServerSpec]:
    return {n: ServerSpec(name=n, url=gw.url(n), headers={"Authorization": f"Bearer {TOKEN}"}) for n in names}


def released_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "collector.http_calls"]


def episode_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.mark.parametrize(("client", "mode"), [("auto", "auto"), ("sdk", "auto"), ("sdk", "legacy")])
def test_a_collection_leaves_no_workspace_and_outlives_the_cap(tmp_path: Path, client: str, mode: str) -> None:
    """Before the release, a gateway capped below the episode count refused every episode past the cap ("this
    server already holds 8 live workspaces"); now each episode's workspace goes when the episode ends: sessionless
    calls, SDK sessions of 2026-07-28, and handshake sessions (2025-11-25) that send the header."""
    root = (tmp_path / "ws").resolve()
    with GatewayProcess(["all"], workspace=root, token=TOKEN, extra_args=["--max-workspaces", str(CAP)]) as gw:
        settings = CollectorSettings(mcp_client=client, mcp_mode=mode)  # type: ignore[arg-type]
        config = CollectConfig(db=tmp_path / "t.db", run="files", tasks=["files"], policy="scripted",
                               servers=specs(gw, "files", "exec"), limit=EPISODES, concurrency=CONCURRENCY,
                               settings=settings)
        summary = run_collection(config)
        assert (summary.done, summary.failed, summary.passed) == (EPISODES, 0, EPISODES), summary.errors
        assert episode_dirs(root) == []  # checked while the gateway runs (it removes everything when it stops)


async def test_release_once_per_gateway_and_a_fresh_workspace_next_time(tmp_path: Path) -> None:
    root = (tmp_path / "ws").resolve()
    with GatewayProcess(["all"], workspace=root, token=TOKEN) as gw:
        async with ToolPool(specs(gw, "files", "exec", "weather")) as pool:
            async with pool.session(["weather"]) as s:  # no workspace tool called: nothing created
                assert not (await s.call("get_current_weather", '{"location": "Paris"}')).is_error
            assert episode_dirs(root) == []
            async with pool.session(["files", "exec"]) as s:
                await s.setup_workspace({"main.py": "print('hi')"})
                ran = await s.call_tool("exec", "run_shell", {"command": "python3 main.py"})
                assert ran.structured["stdout"] == "hi\n"
                assert episode_dirs(root) == [f"w-{s.workspace_id}"]
            assert episode_dirs(root) == []
            async with pool.session(["files"], wait_close=False) as s:  # closing in the background
                await s.setup_workspace({"a.txt": "a"})
            await pool.aclose()  # waits for the background closing
            assert episode_dirs(root) == []


async def test_a_failed_release_is_logged_and_never_fails_the_episode(tmp_path: Path, toy_http: ToyHttp,  # noqa: F811
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="collector.http_calls")
    root = (tmp_path / "ws").resolve()
    gw = GatewayProcess(["all"], workspace=root, token=TOKEN).start()
    try:
        async with ToolPool(specs(gw, "files")) as pool:
            s = await pool.open_session(["files"])
            await s.setup_workspace({"a.txt": "a"})
            gw.stop()  # the gateway is gone when the episode ends
            await s.aclose()
        assert any("releasing the workspace at MCP server 'files'" in m for m in released_logs(caplog))
    finally:
        gw.stop()
    caplog.clear()
    # a server without gateway workspaces (the SDK's own HTTP server) advertises none: nothing is sent to it, and
    # asked anyway it takes no release (the pool would then not ask it again)
    toy = ServerSpec(name="files", url=toy_http.url, headers={"Mcpgym-Workspace": "ep-toy"})
    async with ToolPool({"files": toy}) as pool:
        for _ in range(3):
            async with pool.session(["files"]) as s:
                assert (await s.call("add", '{"a": 2, "b": 3}')).text == "5"
        assert released_logs(caplog) == []
        assert await release_workspace(pool._client(), toy, 10.0) is None
    said = released_logs(caplog)
    assert len(said) == 1 and "does not release workspaces" in said[0] and toy_http.url in said[0]
