"""A task's tool subset (`Task.tools`) against the real files and weather servers (stdio): what is offered, what is
recorded, what an unoffered call does, and the errors of a bad subset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from text_policy import TextPolicy

from collector.collect import CollectConfig, play_episode, run_collection
from collector.errors import ConfigError
from collector.loop import LoopConfig
from collector.pool import ToolPool
from collector.servers import ServerSpec
from collector.store import Store
from collector.tasks.model import Task, VerifierSpec


def _serve(name: str, *extra: str) -> ServerSpec:
    return ServerSpec(name=name, command=sys.executable,
                      args=("-m", "mcpgym.cli", "serve", name, "--transport", "stdio", *extra))


SERVERS = {"files": _serve("files", "--workspace", "{workspace}"), "weather": _serve("weather")}
OFFERED = ["read_text_file", "list_directory"]


def _task(**fields: object) -> Task:
    base: dict[str, object] = {
        "id": "subset-1", "family": "toy", "messages": [{"role": "user", "content": "What does a.txt say?"}],
        "servers": ["files"], "tools": {"files": OFFERED}, "setup_files": {"a.txt": "payload\n"},
        "verifier": VerifierSpec(type="contains", expected="payload")}
    return Task.model_validate({**base, **fields})


def test_the_subset_must_name_the_task_s_servers_and_some_tools() -> None:
    with pytest.raises(ValidationError, match=r"tools lists server\(s\) \['exec'\] that are not in its servers"):
        _task(tools={"exec": ["run_shell"]})
    with pytest.raises(ValidationError, match=r"offers no tool of server\(s\) \['files'\]"):
        _task(tools={"files": []})
    assert _task(tools={}).tools == {}  # the default: every tool of every server


async def test_a_session_offers_the_subset_and_an_unoffered_call_never_runs() -> None:
    async with ToolPool(SERVERS) as pool:
        async with pool.session(["files"]) as everything:
            all_files = [t["function"]["name"] for t in everything.tools]
        async with pool.session(["files"], tools={"files": ["list_directory", "read_text_file"]}) as s:
            assert [t["function"]["name"] for t in s.tools] == [n for n in all_files if n in OFFERED]
            assert len(all_files) > len(s.tools)
            await s.setup_workspace({"a.txt": "payload\n"})  # workspace setup reaches the server's other tools
            unoffered = await s.call("write_file", '{"path": "b.txt", "content": "x"}')
            unknown = await s.call("no_such_tool", "{}")
            assert unoffered.error_kind == unknown.error_kind == "unknown_tool"
            assert unoffered.text == ("Error: unknown tool 'write_file'. Available tools: list_directory, "
                                      "read_text_file.")
            assert await s.snapshot_files() == {"a.txt": "payload\n"}  # no b.txt: the call was never sent
            read = await s.call("read_text_file", '{"path": "a.txt"}')
            assert not read.is_error and "payload" in read.text


async def test_several_servers_stay_namespaced_with_a_subset() -> None:
    async with ToolPool(SERVERS) as pool, pool.session(["files", "weather"], tools={"weather": ["get_forecast"]}) as s:
        names = [t["function"]["name"] for t in s.tools]
        assert [n for n in names if n.startswith("weather__")] == ["weather__get_forecast"]
        assert "files__write_file" in names and "files__grep" in names  # files is not in the subset: all its tools
        assert (await s.call("weather__get_current_weather", '{"location": "Paris"}')).error_kind == "unknown_tool"


async def test_a_tool_the_server_lacks_is_a_clear_error() -> None:
    async with ToolPool(SERVERS) as pool:
        with pytest.raises(ConfigError, match=r"server 'files' has no tool 'read_file' to offer; its tools: "
                                              r"read_text_file, .*list_directory"):
            await pool.open_session(["files"], {"files": ["read_file"]})
        with pytest.raises(ConfigError, match=r"names server\(s\) \['weather'\] that this session does not attach"):
            await pool.open_session(["files"], {"weather": ["get_forecast"]})
        result = await play_episode(_task(tools={"files": ["read_file"]}), pool=pool, policy=TextPolicy(["done"]),
                                    loop_cfg=LoopConfig())
        assert result.status == "failed" and result.error_type == "config_error"
        assert "no tool 'read_file'" in (result.error_message or "")


def test_the_recorded_episode_offers_exactly_the_subset(tmp_path: Path) -> None:
    calls = ('<tool_call>{"name": "write_file", "arguments": {"path": "b.txt", "content": "x"}}</tool_call>\n'
             '<tool_call>{"name": "read_text_file", "arguments": {"path": "a.txt"}}</tool_call>')
    outputs = [calls, "a.txt says payload"]
    task = _task(verifier=VerifierSpec(type="file_state", files={"a.txt": "payload\n", "b.txt": None}))
    db = tmp_path / "episodes.db"
    summary = run_collection(CollectConfig(db=db, run="subset", task_list=[task], policy_instance=TextPolicy(outputs),
                                           servers=SERVERS, concurrency=1, max_turns=3))
    assert summary.done == 1 and summary.failed == 0, summary.errors
    store = Store(db, readonly=True)
    try:
        [episode] = store.episodes(["subset"])
        assert [t["function"]["name"] for t in episode["tools"]] == ["read_text_file", "list_directory"]
        assert episode["task"]["tools"] == {"files": OFFERED}
        recorded = store.tool_calls(episode["id"])
    finally:
        store.close()
    assert [(c["tool"], c["error_kind"]) for c in recorded] == [("write_file", "unknown_tool"), ("read_text_file", None)]
    assert episode["passed"] == 1  # file_state: b.txt does not exist, a.txt is unchanged


def test_short_descriptions_keep_the_first_sentence_and_every_schema_rule() -> None:
    from collector.tools import first_sentence, mcp_tool_to_openai

    assert first_sentence("Get the forecast. Use this for the coming days.") == "Get the forecast."
    assert first_sentence("Read a file\nwith details") == "Read a file"
    assert first_sentence("Version 2.5 of it. More.") == "Version 2.5 of it."  # a period inside a number stays
    tool = {"name": "t", "description": "Do it. Then more words.", "inputSchema": {
        "type": "object", "required": ["a"], "$defs": {"Item": {"type": "object", "description": "An item. Long.",
                                                                "properties": {"description": {"type": "string"}}}},
        "properties": {"a": {"type": "string", "enum": ["x", "y"], "description": "The a. Details."},
                       "description": {"type": "integer", "minimum": 1, "default": 2}}}}
    full = mcp_tool_to_openai(tool)
    short = mcp_tool_to_openai(tool, short=True)
    assert full["function"]["description"] == "Do it. Then more words."
    assert short["function"]["description"] == "Do it."
    params = short["function"]["parameters"]
    assert params["properties"]["a"] == {"type": "string", "enum": ["x", "y"], "description": "The a."}
    assert params["properties"]["description"] == {"type": "integer", "minimum": 1, "default": 2}  # a property name
    assert params["$defs"]["Item"]["description"] == "An item."
    assert params["required"] == ["a"] and tool["inputSchema"]["properties"]["a"]["description"] == "The a. Details."


async def test_the_short_descriptions_setting_shortens_what_a_session_offers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.settings import CollectorSettings

    monkeypatch.setenv("MCPGYM_TOOL_DESCRIPTIONS", "short")
    async with ToolPool({"weather": SERVERS["weather"]}, settings=CollectorSettings()) as pool:
        async with pool.session(["weather"]) as s:
            short = {t["function"]["name"]: t for t in s.tools}
    async with ToolPool({"weather": SERVERS["weather"]}, settings=CollectorSettings(tool_descriptions="full")) as pool:
        async with pool.session(["weather"]) as s:
            full = {t["function"]["name"]: t for t in s.tools}
    assert list(short) == list(full) and short
    for name, tool in full.items():
        assert len(str(short[name])) < len(str(tool))
        assert short[name]["function"]["parameters"]["properties"].keys() == tool["function"]["parameters"][
            "properties"].keys()
    with pytest.raises(ValidationError, match="tool_descriptions"):
        CollectorSettings(tool_descriptions="tiny")  # type: ignore[arg-type]
