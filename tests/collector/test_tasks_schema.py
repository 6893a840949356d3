"""Tests of schema tasks: sampled arguments validate against real tool schemas; verification is order-insensitive."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest
from mcp.client.client import Client

from collector.errors import ConfigError
from collector.tasks._schema_sample import SchemaSampleError, sample_arguments
from collector.tasks.model import VerifyContext
from collector.tasks.schema_tasks import agenerate_schema_tasks, generate_schema_tasks
from collector.verifiers import verify
from mcp_servers.settings import ServerSettings

HAND_WRITTEN: list[dict[str, Any]] = [
    {
        "name": "create_ticket",
        "description": "Create a support ticket. Use it when a customer reports a problem.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 12, "maxLength": 40},
                "priority": {"type": "string", "enum": ["low", "normal", "urgent"]},
                "estimate_h": {"type": "number", "exclusiveMinimum": 0, "maximum": 8},
                "count": {"type": "integer", "minimum": 5, "maximum": 50, "multipleOf": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "assignee": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}], "default": None},
                "due": {"type": "string", "format": "date"},
                "notify": {"type": "boolean", "default": False},
            },
            "required": ["title", "priority", "count", "assignee"],
            "$defs": {
                "Person": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                    "required": ["name"],
                }
            },
        },
    },
    {"name": "ping", "description": "Check that the service answers.", "inputSchema": {"type": "object"}},
]


async def listed_tools(server: Any) -> list[dict[str, Any]]:
    async with Client(server) as client:
        result = await client.list_tools()
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]


@pytest.fixture(scope="module")
def weather_tools() -> list[dict[str, Any]]:
    import asyncio

    from mcp_servers.weather.server import build_weather_server

    return asyncio.run(listed_tools(build_weather_server(ServerSettings())))


@pytest.fixture(scope="module")
def server_tools(weather_tools: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tool lists of the files, search and weather servers, listed through a real in-process MCP client."""
    import asyncio

    from mcp_servers.files.server import build_files_server
    from mcp_servers.search.server import build_search_server
    from mcp_servers.workspace import WorkspaceManager

    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("data"))
    workspaces = WorkspaceManager(tmp_path_factory.mktemp("ws"), per_session=False)
    return {
        "files": asyncio.run(listed_tools(build_files_server(workspaces, settings))),
        "search": asyncio.run(listed_tools(build_search_server(settings))),
        "weather": weather_tools,
    }


def test_every_real_tool_gets_valid_tasks(server_tools: dict[str, list[dict[str, Any]]]) -> None:
    tasks = generate_schema_tasks(server_tools, seed=0, n=90)
    called = {(t.servers[0], c["name"]) for t in tasks for c in t.verifier.calls or []}
    offered = {(server, tool["name"]) for server, tools in server_tools.items() for tool in tools}
    assert called == offered  # every tool of every server is exercised, including edit_file's nested $defs
    schemas = {(server, tool["name"]): tool["inputSchema"] for server, tools in server_tools.items() for tool in tools}
    for task in tasks:
        for call in task.verifier.calls or []:
            jsonschema.validate(call["arguments"], schemas[(task.servers[0], call["name"])])


def tool_schemas(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t["inputSchema"] for t in tools}


def test_sampled_arguments_validate_hand_written() -> None:
    schema = HAND_WRITTEN[0]["inputSchema"]
    rng = random.Random(0)
    validator = jsonschema.Draft202012Validator(schema)
    for _ in range(200):
        args = sample_arguments(schema, rng)
        validator.validate(args)
        assert {"title", "priority", "count", "assignee"} <= set(args)


def test_sampler_refuses_unsupported() -> None:
    with pytest.raises(SchemaSampleError, match="pattern"):
        sample_arguments(
            {"type": "object", "properties": {"x": {"type": "string", "pattern": "^[A-Z]{3}$"}}, "required": ["x"]},
            random.Random(0),
        )
    with pytest.raises(SchemaSampleError, match="range"):
        sample_arguments(
            {"type": "object", "properties": {"x": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["x"]},
            random.Random(0),
        )


def test_weather_schema_tasks_validate_and_are_deterministic(weather_tools: list[dict[str, Any]]) -> None:
    tasks = generate_schema_tasks({"weather": weather_tools}, seed=3, n=30)
    again = generate_schema_tasks({"weather": weather_tools}, seed=3, n=30)
    assert [t.model_dump() for t in tasks] == [t.model_dump() for t in again]
    assert len(tasks) == 30
    schemas = tool_schemas(weather_tools)
    kinds = {t.metadata["kind"] for t in tasks}
    assert kinds == {"single", "parallel"}
    for task in tasks:
        assert task.servers == ["weather"] and task.verifier.type == "expected_calls"
        for call in task.verifier.calls or []:
            assert "__" not in call["name"]
            jsonschema.validate(call["arguments"], schemas[call["name"]])
            assert call["name"] in task.messages[-1]["content"]
        if task.metadata["kind"] == "parallel":
            assert 2 <= len(task.verifier.calls or []) <= 3
    test_only = generate_schema_tasks({"weather": weather_tools}, seed=3, n=30, split="test")
    assert {t.id for t in test_only} == {t.id for t in tasks if t.split == "test"}


async def test_expected_calls_verify_any_order(weather_tools: list[dict[str, Any]]) -> None:
    tasks = generate_schema_tasks({"weather": weather_tools, "tickets": HAND_WRITTEN}, seed=1, n=24)
    assert {t.servers[0] for t in tasks} == {"weather", "tickets"}
    parallel = [t for t in tasks if t.metadata["kind"] == "parallel"]
    assert parallel
    for task in parallel:
        calls = task.verifier.calls or []
        made = [{"name": f"{task.servers[0]}__{c['name']}", "arguments": c["arguments"]} for c in reversed(calls)]
        v = await verify(task.verifier, VerifyContext(tool_calls=made))
        assert v["passed"], v
        v = await verify(task.verifier, VerifyContext(tool_calls=made[:1]))
        assert not v["passed"] and 0 < v["score"] < 1


class _ChatHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions endpoint that rewrites the request: faithfully for the model "keep",
    dropping the values for any other model."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        keep = body["model"] == "keep"
        content = f"Hi! Could you help me out? {text} Thanks." if keep else "Do the weather thing please."
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def chat_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_policy_phrasing_kept_only_when_faithful(weather_tools: list[dict[str, Any]], chat_url: str) -> None:
    """Requests are rewritten by an OpenAI-compatible endpoint (a real local HTTP server): a rewrite that keeps
    every tool name and value is used; one that drops them falls back to the template."""
    from collector.policies.openai import OpenAIPolicy

    keep = OpenAIPolicy("keep", base_url=chat_url, max_retries=0)
    drop = OpenAIPolicy("drop", base_url=chat_url, max_retries=0)
    try:
        kept = await agenerate_schema_tasks({"weather": weather_tools}, seed=0, n=4, policy=keep)
        assert all(t.messages[-1]["content"].startswith("Hi! Could you help me out?") for t in kept)
        dropped = await agenerate_schema_tasks({"weather": weather_tools}, seed=0, n=4, policy=drop)
        plain = generate_schema_tasks({"weather": weather_tools}, seed=0, n=4)
        assert [t.messages for t in dropped] == [t.messages for t in plain]
        assert [t.verifier for t in kept] == [t.verifier for t in plain]
        with pytest.raises(ConfigError, match="agenerate_schema_tasks"):
            generate_schema_tasks({"weather": weather_tools}, seed=0, n=4, policy=keep)
    finally:
        await keep.aclose()
        await drop.aclose()


def test_a_single_argless_tool_still_gets_tasks() -> None:
    tasks = generate_schema_tasks({"svc": [HAND_WRITTEN[1]]}, seed=0, n=10)
    assert 1 <= len(tasks) < 10  # only the phrasings differ: no parallel request of distinct calls exists
    assert len({t.messages[-1]["content"] for t in tasks}) == len(tasks)
    assert all(t.verifier.calls == [{"name": "ping", "arguments": {}, "defaults": {}}] for t in tasks)


def test_no_tools_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one attached server"):
        generate_schema_tasks({}, seed=0, n=3)


def test_schema_suite_restricted_to_named_servers(server_tools: dict[str, list[dict[str, Any]]]) -> None:
    from collector.tasks.registry import is_live_suite, load_tasks, suite_name

    only = load_tasks(["schema:weather+search"], seed=0, tools_by_server=server_tools)
    assert only and {t.servers[0] for t in only} == {"weather", "search"}
    # the restricted suite is the schema suite generated from those servers' tools alone
    alone = generate_schema_tasks({k: server_tools[k] for k in ("weather", "search")}, seed=0, n=100)
    assert sorted(t.id for t in only) == sorted(t.id for t in alone)
    test_split = load_tasks([" Schema:files "], split="test", seed=0, tools_by_server=server_tools)
    assert test_split and {(t.servers[0], t.split) for t in test_split} == {("files", "test")}
    assert is_live_suite("schema:files") and is_live_suite("schema-selection:files+weather")
    assert not is_live_suite("weather") and not is_live_suite("tasks/schema.jsonl")
    assert suite_name(" SCHEMA:weather+weather ") == "schema:weather"
    with pytest.raises(ConfigError, match=r"names 'almanac', which is not an attached server; "
                                          r"accepted: files, search, weather"):
        load_tasks(["weather", "schema:almanac"], tools_by_server=server_tools)
    with pytest.raises(ConfigError, match=r"suite 'schema:' names no server: write schema:SERVER"):
        load_tasks(["schema:"], tools_by_server=server_tools)
    with pytest.raises(ConfigError, match="pass tools_by_server"):
        load_tasks(["schema:weather"])
