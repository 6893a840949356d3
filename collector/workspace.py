"""Workspace helpers of a tool session: set up files, snapshot them, run tests, all through the MCP tools."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collector.errors import ToolSessionError

if TYPE_CHECKING:
    from collector.tools import ToolResult

__all__ = ["EXEC_SERVER", "FILES_SERVER", "WorkspaceOps"]

FILES_SERVER = "files"
EXEC_SERVER = "exec"
_SNAPSHOT_MAX_FILES = 500


def _payload(result: ToolResult) -> Any:
    """The structured content of a result, or its text parsed as JSON when it is JSON."""
    if isinstance(result.structured, dict) and set(result.structured) == {"result"}:
        return result.structured["result"]
    if result.structured is not None:
        return result.structured
    try:
        return json.loads(result.text)
    except (json.JSONDecodeError, TypeError):
        return None


def _tree_files(nodes: list[dict[str, Any]], prefix: str = "") -> list[str]:
    out: list[str] = []
    for node in nodes:
        path = f"{prefix}{node.get('name', '')}"
        if node.get("type") == "file":
            out.append(path)
        elif node.get("type") == "directory" and node.get("children"):
            out.extend(_tree_files(node["children"], path + "/"))
    return out


class WorkspaceOps:
    """Mixed into `ToolSession`: workspace setup, snapshots and tests through the files and exec servers."""

    servers: list[str]

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:  # pragma: no cover
        raise NotImplementedError

    def _need(self, server: str, purpose: str) -> None:
        if server not in self.servers:
            raise ToolSessionError(f"{purpose} needs the {server!r} server in the session (attached: {self.servers})")

    async def _checked(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:
        result = await self.call_tool(server, tool, arguments)
        if result.is_error:
            raise ToolSessionError(f"{server}.{tool} failed: {result.text[:500]}")
        return result

    async def setup_workspace(self, files: dict[str, str]) -> None:
        """Create `files` (relative path -> text) in the session's workspace through the files server's write_file.

        Raises:
            ToolSessionError: no files server in the session, or a write failed.
        """
        if not files:
            return
        self._need(FILES_SERVER, "workspace setup")
        for path, content in files.items():
            await self._checked(FILES_SERVER, "write_file", {"path": path, "content": content})

    async def snapshot_files(self) -> dict[str, str]:
        """Every text file of the session's workspace (relative path -> content), read through the files tools.

        Raises:
            ToolSessionError: no files server in the session, or listing failed.
        """
        self._need(FILES_SERVER, "a workspace snapshot")
        tree = _payload(await self._checked(FILES_SERVER, "directory_tree", {"path": ".", "max_depth": 20}))
        nodes = tree.get("tree", []) if isinstance(tree, dict) else tree if isinstance(tree, list) else []
        paths = sorted(_tree_files(nodes))[:_SNAPSHOT_MAX_FILES]
        files: dict[str, str] = {}
        for path in paths:
            result = await self.call_tool(FILES_SERVER, "read_text_file", {"path": path})
            if not result.is_error:
                payload = _payload(result)
                content = payload.get("content") if isinstance(payload, dict) else None
                files[path] = content if isinstance(content, str) else result.text
        return files

    async def run_tests(self, code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
        """Run `test_code` against `code` in the sandbox through the exec server's run_tests.

        Returns:
            `{"passed", "total", "failures", "timed_out", "error"}` as the exec server reports it.

        Raises:
            ToolSessionError: no exec server in the session.
        """
        self._need(EXEC_SERVER, "running tests")
        args: dict[str, Any] = {"code": code, "test_code": test_code}
        if entry_point:
            args["entry_point"] = entry_point
        result = await self.call_tool(EXEC_SERVER, "run_tests", args)
        payload = _payload(result)
        if isinstance(payload, dict) and not result.is_error:
            return payload
        return {"passed": False, "total": 0, "failures": [], "timed_out": result.error_kind == "timeout",
                "error": result.text[:2000]}

    async def run_python(self, code: str, timeout_s: float) -> dict[str, Any]:
        """Run a Python program in the sandbox through the exec server's run_python (verifiers use it).

        Returns:
            `{"exit_code", "stdout", "stderr", "timed_out", ...}` as the exec server reports it, or
            `{"exit_code": None, "stdout": "", "error": text}` when the call failed.

        Raises:
            ToolSessionError: no exec server in the session.
        """
        self._need(EXEC_SERVER, "running a program")
        result = await self.call_tool(EXEC_SERVER, "run_python", {"code": code, "timeout_s": timeout_s})
        payload = _payload(result)
        if isinstance(payload, dict) and not result.is_error:
            return payload
        return {"exit_code": None, "stdout": "", "stderr": "", "error": result.text[:2000]}
