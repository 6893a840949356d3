"""Workspaces and path security: where file and exec tools may act, and how paths are checked."""

from mcp_servers.workspace.manager import WORKSPACE_HEADER, WorkspaceManager
from mcp_servers.workspace.paths import display_path, normalize_root, relative_parts, resolve_path

__all__ = ["WORKSPACE_HEADER", "WorkspaceManager", "display_path", "normalize_root", "relative_parts", "resolve_path"]
