"""Baseline servers for bench_mcp.py: a minimal Python MCPServer tool, and the files server on the SDK's own stdio.

Usage: python _mcp_bench_servers.py minimal-stdio|minimal-http PORT|files-sdk-stdio WORKSPACE
"""

from __future__ import annotations

import sys
from pathlib import Path


def minimal() -> object:
    """The smallest useful MCPServer: one tool that reads a text file."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("minimal", log_level="WARNING")

    @server.tool()
    async def read_text_file(path: str) -> str:
        """Read a text file."""
        return Path(path).read_text(encoding="utf-8")

    return server


def main() -> None:
    mode = sys.argv[1]
    if mode == "minimal-stdio":
        minimal().run("stdio")  # type: ignore[attr-defined]
    elif mode == "minimal-http":
        import uvicorn

        app = minimal().streamable_http_app()  # type: ignore[attr-defined]
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    elif mode == "files-sdk-stdio":
        import anyio

        from mcp_servers.files.server import build_files_server
        from mcp_servers.settings import ServerSettings
        from mcp_servers.workspace import WorkspaceManager

        server = build_files_server(WorkspaceManager(Path(sys.argv[2]), per_session=False), ServerSettings())
        anyio.run(server.run_stdio_async)
    else:
        raise SystemExit(f"unknown mode {mode!r}; use minimal-stdio, minimal-http PORT or files-sdk-stdio DIR")


if __name__ == "__main__":
    main()
