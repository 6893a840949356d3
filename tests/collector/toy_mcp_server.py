"""A small real MCP server for the collector tests: arithmetic, echo, slow and dying tools, and file tools.

Run: `python toy_mcp_server.py stdio --workspace DIR` or `python toy_mcp_server.py http --port P --workspace DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("toy")
ROOT = Path(".")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def fail(message: str) -> str:
    """Always fail with the message."""
    raise ValueError(message)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def die() -> str:
    """Exit the server process at once (simulates a crash)."""
    os._exit(3)


@server.tool()
def write_file(path: str, content: str) -> str:
    """Write a text file in the workspace."""
    target = ROOT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return f"wrote {len(content)} characters to {path}"


@server.tool()
def read_text_file(path: str) -> str:
    """Read a text file of the workspace."""
    return (ROOT / path).read_text()


@server.tool()
def directory_tree(path: str = ".", max_depth: int = 3) -> dict:
    """The workspace's files as a tree."""

    def walk(p: Path) -> list[dict]:
        out = []
        for child in sorted(p.iterdir()):
            if child.is_dir():
                out.append({"name": child.name, "type": "directory", "children": walk(child)})
            else:
                out.append({"name": child.name, "type": "file"})
        return out

    return {"path": path, "tree": walk(ROOT / path)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workspace", default=".")
    opts = parser.parse_args()
    ROOT = Path(opts.workspace)
    ROOT.mkdir(parents=True, exist_ok=True)
    if opts.transport == "stdio":
        server.run("stdio")
    else:
        server.settings.log_level = "WARNING"
        server.run("streamable-http", host="127.0.0.1", port=opts.port)
