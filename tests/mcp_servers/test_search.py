"""The search MCP server (local backend) through a real MCP client: in process, over stdio and via mcpgym serve."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_servers.search.index import build_index, get_document
from mcp_servers.search.server import build_search_server
from mcp_servers.settings import SearchSettings, ServerSettings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ServerSettings:
    root = tmp_path_factory.mktemp("search-server")
    notes = root / "notes"
    notes.mkdir()
    (notes / "recipe.md").write_text("# Grandmother's borscht\n\nBeetroot, cabbage, dill and a spoon of smetana.\n")
    built = ServerSettings(data_dir=root / "data", search=SearchSettings(corpus=[notes]))
    build_index(built)
    return built


async def _ok(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_tools_have_descriptions_bounds_and_annotations(settings: ServerSettings) -> None:
    async with Client(build_search_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"search", "fetch_document"}
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80
        assert not tool.description.startswith(" ") and "\n        " not in tool.description
        assert tool.annotations is not None
        assert (tool.annotations.read_only_hint, tool.annotations.idempotent_hint) == (True, True)
        assert tool.annotations.open_world_hint is False
        assert tool.output_schema is not None
    k = tools["search"].input_schema["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, 50, 10)
    max_chars = tools["fetch_document"].input_schema["properties"]["max_chars"]
    assert (max_chars["minimum"], max_chars["maximum"]) == (100, 20_000)


async def test_search_then_fetch(settings: ServerSettings) -> None:
    async with Client(build_search_server(settings)) as client:
        found = await _ok(client, "search", {"query": "Who painted the Mona Lisa?", "k": 3})
        doc = await _ok(client, "fetch_document", {"doc_id": found["hits"][0]["id"]})
        mine = await _ok(client, "search", {"query": "borscht beetroot", "k": 1})
    assert found["backend"] == "local"
    assert found["hits"][0]["id"] == "wiki/Mona_Lisa"
    assert set(found["hits"][0]) == {"id", "title", "snippet", "score", "source", "url"}
    assert "Leonardo" in doc["text"]
    assert doc["truncated"] is False and doc["next_offset"] is None
    assert mine["hits"][0]["id"] == "notes/recipe" and mine["hits"][0]["source"] == "notes"


async def test_paging_through_hits(settings: ServerSettings) -> None:
    async with Client(build_search_server(settings)) as client:
        first = await _ok(client, "search", {"query": "volcano", "k": 2})
        second = await _ok(client, "search", {"query": "volcano", "k": 2, "offset": first["next_offset"]})
    assert first["next_offset"] == 2 and second["offset"] == 2
    assert not {h["id"] for h in first["hits"]} & {h["id"] for h in second["hits"]}


async def test_long_documents_are_read_in_windows(settings: ServerSettings) -> None:
    full = get_document(settings, "wiki/World_War_II").text
    assert len(full) > 300
    parts: list[str] = []
    offset: int | None = 0
    async with Client(build_search_server(settings)) as client:
        while offset is not None:
            window = await _ok(client, "fetch_document", {"doc_id": "wiki/World_War_II", "offset": offset,
                                                         "max_chars": 100})  # fmt: skip
            assert window["total_chars"] == len(full)
            assert window["truncated"] is (window["next_offset"] is not None)
            parts.append(window["text"])
            offset = window["next_offset"]
    assert "".join(parts) == full and len(parts) > 2


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("search", {"query": "?!*"}, "query must contain at least one letter or digit"),
        ("search", {"query": "x", "k": 51}, "k"),
        ("search", {"query": "x", "offset": -1}, "offset"),
        ("fetch_document", {"doc_id": "wiki/Albert_Einsten"}, "similar ids: wiki/Albert_Einstein"),
        ("fetch_document", {"doc_id": "wiki/Paris", "offset": 10**6}, "offset 1000000 is past the end"),
        ("fetch_document", {"doc_id": "wiki/Paris", "max_chars": 5}, "max_chars"),
    ],
)
async def test_bad_input_is_a_clear_tool_error(
    settings: ServerSettings, tool: str, args: dict[str, Any], message: str
) -> None:
    async with Client(build_search_server(settings)) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert message in text and "Traceback" not in text


async def test_the_index_is_built_on_first_use(tmp_path: Path) -> None:
    fresh = ServerSettings(data_dir=tmp_path / "fresh")
    async with Client(build_search_server(fresh)) as client:
        found = await _ok(client, "search", {"query": "Eiffel Tower", "k": 1})
    assert found["hits"][0]["id"] == "wiki/Eiffel_Tower"
    assert (tmp_path / "fresh" / "search.db").is_file()


def _env(settings: ServerSettings) -> dict[str, str]:
    return {
        "MCPGYM_DATA_DIR": str(settings.data_dir),
        "MCPGYM_SEARCH__CORPUS": f'["{settings.search.corpus[0]}"]',
    }


async def test_stdio_subprocess(settings: ServerSettings) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_servers.search"], env=_env(settings),
                                   cwd=str(settings.data_dir))  # fmt: skip
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": "smetana dill", "k": 1})
        missing = await client.call_tool("fetch_document", {"doc_id": "notes/nothing"})
    assert names == {"search", "fetch_document"}
    assert found.structured_content is not None and found.structured_content["hits"][0]["id"] == "notes/recipe"
    assert missing.is_error and "'notes/nothing' is not in the index" in missing.content[0].text  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("mcpgym", path=os.path.dirname(sys.executable)) is None, reason="no mcpgym script")
async def test_mcpgym_serve_search_over_stdio(settings: ServerSettings) -> None:
    try:
        import mcp_servers.gateway.serve  # noqa: F401
    except ImportError:
        pytest.skip("the serve command's gateway module is not in this build")
    params = StdioServerParameters(command=os.path.join(os.path.dirname(sys.executable), "mcpgym"),
                                   args=["serve", "search", "--transport", "stdio"], env=_env(settings),
                                   cwd=str(settings.data_dir))  # fmt: skip
    async with Client(params) as client:
        doc = await client.call_tool("fetch_document", {"doc_id": "notes/recipe", "max_chars": 100})
    assert doc.structured_content is not None
    assert doc.structured_content["title"] == "Grandmother's borscht"


async def test_streamable_http_through_the_gateway(settings: ServerSettings) -> None:
    try:
        from mcp_servers.gateway.process import GatewayProcess
    except ImportError:
        pytest.skip("the HTTP gateway is not in this build")
    env = {**os.environ, **_env(settings)}
    with GatewayProcess(["search"], workspace=settings.data_dir / "ws", env=env) as gateway:
        async with Client(gateway.url("search")) as client:
            found = await client.call_tool("search", {"query": "Great Wall of China", "k": 2})
    assert found.structured_content is not None
    assert found.structured_content["hits"][0]["id"] == "wiki/Great_Wall_of_China"
