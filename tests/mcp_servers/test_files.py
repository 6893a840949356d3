"""The files server through a real MCP client: in-process, and as a `mcpgym serve files` stdio subprocess."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from mcp_servers.registry import build_server
from mcp_servers.settings import FilesSettings, ServerSettings
from mcp_servers.workspace import WorkspaceManager

EXPECTED_TOOLS = {
    "read_text_file",
    "read_multiple_files",
    "read_binary_file",
    "write_file",
    "edit_file",
    "create_directory",
    "list_directory",
    "directory_tree",
    "move_file",
    "delete_path",
    "search_files",
    "grep",
    "get_file_info",
}


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\ndelta\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def main():\n    return 1\n")
    (root / "src" / "util.py").write_text("X = 1\nY = 2\n")
    return root


@pytest.fixture()
def server(ws: Path) -> Any:
    settings = ServerSettings(files=FilesSettings(max_read_bytes=64, max_binary_bytes=32, max_grep_results=5))
    return build_server("files", settings, WorkspaceManager(ws, per_session=False))


async def call(client: Client, name: str, **args: Any) -> Any:
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content
    return result.structured_content if result.structured_content is not None else result.content[0].text


async def error(client: Client, name: str, **args: Any) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} should have failed: {result.content}"
    text: str = result.content[0].text
    assert "Traceback" not in text
    return text


async def test_tools_listed_with_annotations_and_bounds(server: Any) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40
            assert tool.annotations is not None and tool.annotations.open_world_hint is False
        assert tools["read_text_file"].annotations.read_only_hint is True
        assert tools["delete_path"].annotations.destructive_hint is True
        assert tools["write_file"].annotations.read_only_hint is False
        assert tools["read_text_file"].input_schema["properties"]["path"]["maxLength"] == 4096
        assert tools["directory_tree"].input_schema["properties"]["max_depth"]["maximum"] == 20
        assert tools["list_directory"].output_schema is not None


async def test_read_text_file_ranges_and_truncation(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        assert await call(client, "read_text_file", path="notes.txt") == "alpha\nbeta\ngamma\ndelta\n"
        assert await call(client, "read_text_file", path="notes.txt", head=2) == "alpha\nbeta\n"
        assert await call(client, "read_text_file", path="notes.txt", tail=1) == "delta\n"
        assert await call(client, "read_text_file", path="notes.txt", offset=2, limit=2) == "beta\ngamma\n"
        (ws / "big.txt").write_text("x" * 200)
        text = await call(client, "read_text_file", path="big.txt")
        assert text.startswith("x" * 64) and "[... truncated: showing 64 of 200 bytes" in text
        assert "head and tail" in await error(client, "read_text_file", path="notes.txt", head=1, tail=1)
        assert "does not exist" in await error(client, "read_text_file", path="missing.txt")
        assert "directory" in await error(client, "read_text_file", path="src")
        assert "outside the workspace" in await error(client, "read_text_file", path="../etc/passwd")
        assert "head" in await error(client, "read_text_file", path="notes.txt", head=-1)


async def test_bad_arguments_name_the_argument_and_rule(server: Any) -> None:
    async with Client(server) as client:
        msg = await error(client, "read_text_file")
        assert msg == "Error executing tool read_text_file: invalid arguments: 'path': Field required"
        msg = await error(client, "read_text_file", path="a", head=-1, tail="x")
        assert "'head': Input should be greater than or equal to 0" in msg and "'tail'" in msg
        assert "pydantic.dev" not in msg and "\n" not in msg
        msg = await error(client, "edit_file", path="a", edits=[{"old_text": ""}])
        assert "'edits.0.old_text': String should have at least 1 character" in msg
        assert "'edits.0.new_text': Field required" in msg
        msg = await error(client, "directory_tree", max_depth=99)
        assert "'max_depth': Input should be less than or equal to 20" in msg


async def test_read_multiple_and_binary(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        out = await call(client, "read_multiple_files", paths=["notes.txt", "nope.txt", "src/util.py"])
        files = out["files"]
        assert files[0]["content"].startswith("alpha") and files[1]["error"] and "does not exist" in files[1]["error"]
        assert files[2]["content"] == "X = 1\nY = 2\n"
        (ws / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x01")
        out = await call(client, "read_binary_file", path="img.png")
        assert base64.b64decode(out["base64"]) == b"\x89PNG\r\n\x1a\n\x00\x01" and out["mime_type"] == "image/png"
        (ws / "large.bin").write_bytes(b"\x00" * 100)
        assert "at most 32" in await error(client, "read_binary_file", path="large.bin")


async def test_write_and_edit(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        out = await call(client, "write_file", path="new/dir/file.txt", content="one\ntwo\n")
        assert out == {"path": "new/dir/file.txt", "bytes_written": 8, "created": True}
        assert (ws / "new/dir/file.txt").read_text() == "one\ntwo\n"
        out = await call(
            client, "edit_file", path="new/dir/file.txt", edits=[{"old_text": "two", "new_text": "2"}], dry_run=True
        )
        assert "-two" in out["diff"] and "+2" in out["diff"] and out["applied"] is False
        assert (ws / "new/dir/file.txt").read_text() == "one\ntwo\n"
        out = await call(client, "edit_file", path="new/dir/file.txt", edits=[{"old_text": "two", "new_text": "2"}])
        assert out["applied"] is True and (ws / "new/dir/file.txt").read_text() == "one\n2\n"
        msg = await error(client, "edit_file", path="new/dir/file.txt", edits=[{"old_text": "zzz", "new_text": ""}])
        assert "edits[0].old_text" in msg and "not found" in msg
        (ws / "dup.txt").write_text("a\na\n")
        msg = await error(client, "edit_file", path="dup.txt", edits=[{"old_text": "a", "new_text": "b"}])
        assert "occurs 2 times" in msg
        assert "is a directory" in await error(client, "write_file", path="src", content="x")
        assert not [p for p in ws.rglob("*.tmp")]


async def test_directories_move_delete(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        assert (await call(client, "create_directory", path="a/b/c"))["created"] is True
        assert (await call(client, "create_directory", path="a/b/c"))["created"] is False
        listing = await call(client, "list_directory", path=".")
        assert [e["name"] for e in listing["entries"]] == ["a", "notes.txt", "src"]
        assert {e["name"]: e["type"] for e in listing["entries"]}["src"] == "directory"
        tree = await call(client, "directory_tree", path=".", max_depth=2, exclude=["util.py"])
        src = next(n for n in tree["tree"] if n["name"] == "src")
        assert [c["name"] for c in src["children"]] == ["app.py"]
        a = next(n for n in tree["tree"] if n["name"] == "a")
        assert a["children"][0]["name"] == "b" and a["children"][0]["children"] is None  # depth limit
        out = await call(client, "move_file", source="notes.txt", destination="a/notes.md")
        assert out == {"source": "notes.txt", "destination": "a/notes.md"} and (ws / "a/notes.md").exists()
        assert "already exists" in await error(client, "move_file", source="src/app.py", destination="src/util.py")
        assert "into itself" in await error(client, "move_file", source="a", destination="a/b/a")
        assert "recursive" in await error(client, "delete_path", path="a")
        assert (await call(client, "delete_path", path="a", recursive=True))["deleted"] == "directory"
        assert not (ws / "a").exists()
        assert "root itself" in await error(client, "delete_path", path=".")


async def test_search_grep_info(server: Any, ws: Path) -> None:
    async with Client(server) as client:
        out = await call(client, "search_files", pattern="*.py")
        assert out["matches"] == ["src/app.py", "src/util.py"]
        out = await call(client, "search_files", pattern="*.py", path="src", max_results=1)
        assert out["matches"] == ["src/app.py"] and out["truncated"] is True
        out = await call(client, "grep", pattern=r"^\w = \d", glob="*.py")
        assert [(m["path"], m["line"]) for m in out["matches"]] == [("src/util.py", 1), ("src/util.py", 2)]
        out = await call(client, "grep", pattern="ALPHA", ignore_case=True)
        assert out["matches"][0]["path"] == "notes.txt"
        (ws / "many.txt").write_text("hit\n" * 20)
        out = await call(client, "grep", pattern="hit", path="many.txt", max_results=50)
        assert len(out["matches"]) == 5 and out["truncated"] is True  # server cap max_grep_results=5
        assert "not a valid regular expression" in await error(client, "grep", pattern="(unclosed")
        info = await call(client, "get_file_info", path="src/app.py")
        assert info["type"] == "file" and info["size"] == len("def main():\n    return 1\n")
        assert info["permissions"].startswith("-r")


async def test_symlink_escapes_are_tool_errors(server: Any, ws: Path, tmp_path: Path) -> None:
    async with Client(server) as client:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("secret")
        os.symlink(outside, ws / "out")
        os.symlink(outside / "secret.txt", ws / "secret-link")
        for name, args in [
            ("read_text_file", {"path": "out/secret.txt"}),
            ("read_text_file", {"path": "secret-link"}),
            ("write_file", {"path": "out/new.txt", "content": "x"}),
            ("write_file", {"path": "secret-link", "content": "x"}),
            ("edit_file", {"path": "secret-link", "edits": [{"old_text": "secret", "new_text": "x"}]}),
            ("list_directory", {"path": "out"}),
            ("create_directory", {"path": "out/d"}),
            ("move_file", {"source": "src/app.py", "destination": "out/app.py"}),
            ("grep", {"pattern": "secret", "path": "out"}),
        ]:
            msg = await error(client, name, **args)
            assert "symbolic link" in msg or "outside the workspace" in msg, (name, msg)
        out = await call(client, "grep", pattern="secret")  # walks do not follow links out
        assert out["matches"] == []
        info = await call(client, "get_file_info", path="secret-link")
        assert info["type"] == "symlink" and info["symlink_target"] == "(outside the workspace)"
        assert (await call(client, "delete_path", path="out"))["deleted"] == "symlink"
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        assert (outside / "secret.txt").read_text() == "secret"


async def test_stdio_subprocess(ws: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcpgym.cli", "serve", "files", "--transport", "stdio", "--workspace", str(ws)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    async with Client(params, mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == EXPECTED_TOOLS
        result = await c.call_tool("write_file", {"path": "from-stdio.txt", "content": "hello"})
        assert not result.is_error
        result = await c.call_tool("read_text_file", {"path": "from-stdio.txt"})
        assert result.content[0].text == "hello"
        result = await c.call_tool("read_text_file", {"path": "/etc/passwd"})
        assert result.is_error and "outside the workspace" in result.content[0].text
    assert (ws / "from-stdio.txt").read_text() == "hello"
