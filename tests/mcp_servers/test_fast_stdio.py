"""The thread-free stdio transport: a real subprocess server whose tools write to stdout must not corrupt the wire."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import anyio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from mcp_servers.gateway.fast_stdio import pipes_supported

SERVER = textwrap.dedent(
    """
    import asyncio, os, sys
    from mcp.server.mcpserver import MCPServer
    from mcp_servers.gateway.fast_stdio import run_stdio_fast

    server = MCPServer("noisy")

    @server.tool()
    async def noisy(n: int) -> str:
        print("stray print from a tool")           # would corrupt the protocol stream without the diversion
        os.write(1, b"stray write to fd 1\\n")
        return "x" * n

    asyncio.run(run_stdio_fast(server))
    """
)


async def test_stray_stdout_does_not_corrupt_the_wire(tmp_path: Path) -> None:
    script = tmp_path / "noisy_server.py"
    script.write_text(SERVER)
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=dict(os.environ))
    received: list[object] = []

    async def record(message: object) -> None:  # the client hands unparseable lines here as exceptions
        received.append(message)

    async with Client(params, mode="legacy", message_handler=record) as client:
        for n in (1, 70_000, 3):  # a reply larger than a pipe buffer exercises back-pressure
            result = await client.call_tool("noisy", {"n": n})
            assert not result.is_error and result.content[0].text == "x" * n

        async def call(i: int) -> None:
            result = await client.call_tool("noisy", {"n": i})
            assert result.content[0].text == "x" * i

        async with anyio.create_task_group() as tg:  # concurrent replies are batched, never interleaved
            for i in range(1, 40):
                tg.start_soon(call, i)
    assert [m for m in received if isinstance(m, Exception)] == []


def test_pipes_supported_detects_pipes_and_files(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        assert pipes_supported(r, w) is True
    finally:
        os.close(r)
        os.close(w)
    regular = tmp_path / "f"
    regular.write_text("x")
    fd = os.open(regular, os.O_RDONLY)
    try:
        assert pipes_supported(fd, fd) is False
    finally:
        os.close(fd)
