"""The files MCP server: read, write, edit, list and search files confined to the caller's workspace."""

import os
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.errors import tool_errors
from mcp_servers.files import ops
from mcp_servers.files.models import (
    BinaryFile,
    DeleteResult,
    DirectoryResult,
    EditResult,
    EditSpec,
    FileInfo,
    GrepResult,
    Listing,
    MoveResult,
    MultiRead,
    SearchResult,
    Tree,
    WriteResult,
)
from mcp_servers.settings import ServerSettings
from mcp_servers.workspace import WorkspaceManager

__all__ = ["build_files_server"]

INSTRUCTIONS = (
    "File tools confined to a workspace directory. Paths are relative to the workspace root (absolute paths must lie "
    "inside it). Read before you edit; prefer edit_file for small changes and write_file for new files."
)

Path_ = Annotated[str, Field(max_length=4096, description="Path relative to the workspace root, e.g. 'src/app.py'.")]
DirPath = Annotated[
    str, Field(max_length=4096, description="Directory relative to the workspace root; '.' is the root.")
]

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _ann(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
    )


def build_files_server(workspaces: WorkspaceManager, settings: ServerSettings) -> MCPServer:
    """Build the files server.

    Args:
        workspaces: Gives each call its workspace root (shared on stdio, per session over HTTP).
        settings: Server settings (`settings.files` holds the size caps).

    Returns:
        The configured server.
    """
    cfg = settings.files
    server: MCPServer = MCPServer("mcpgym-files", instructions=INSTRUCTIONS, log_level="WARNING")

    def root(ctx: Context) -> str:
        return os.fspath(workspaces.current(ctx))

    @server.tool(annotations=READ, structured_output=False)
    @tool_errors
    async def read_text_file(
        path: Path_,
        ctx: Context,
        head: Annotated[int | None, Field(ge=0, le=1_000_000, description="Return only the first N lines.")] = None,
        tail: Annotated[int | None, Field(ge=0, le=1_000_000, description="Return only the last N lines.")] = None,
        offset: Annotated[
            int | None, Field(ge=1, description="First line to return (1-based); pair with limit.")
        ] = None,
        limit: Annotated[int | None, Field(ge=1, le=1_000_000, description="Number of lines from offset.")] = None,
    ) -> str:
        """Read a UTF-8 text file from the workspace. Use this to look at a file's contents before answering or
        editing. Large files are cut at the server's size cap with a visible '[... truncated ...]' marker; use
        head, tail or offset/limit to read a part."""
        return ops.read_text(root(ctx), path, cfg, head=head, tail=tail, offset=offset, limit=limit)

    @server.tool(annotations=READ)
    @tool_errors
    async def read_multiple_files(
        paths: Annotated[list[Path_], Field(min_length=1, max_length=50, description="1-50 paths to read.")],
        ctx: Context,
    ) -> MultiRead:
        """Read several text files in one call (cheaper than several read_text_file calls). A file that cannot be
        read gets an 'error' entry; the others are still returned."""
        return ops.read_multiple(root(ctx), paths, cfg)

    @server.tool(annotations=READ)
    @tool_errors
    async def read_binary_file(path: Path_, ctx: Context) -> BinaryFile:
        """Read a binary file (image, archive, ...) as base64 with its MIME type. Use read_text_file for text."""
        return ops.read_binary(root(ctx), path, cfg)

    @server.tool(annotations=_ann(destructive=True, idempotent=True))
    @tool_errors
    async def write_file(
        path: Path_,
        content: Annotated[str, Field(max_length=16_000_000, description="The complete new file content.")],
        ctx: Context,
    ) -> WriteResult:
        """Create a file or replace its whole content (atomically; missing parent directories are created). Use
        edit_file to change part of an existing file."""
        return ops.write(root(ctx), path, content)

    @server.tool(annotations=_ann(destructive=True, idempotent=False))
    @tool_errors
    async def edit_file(
        path: Path_,
        edits: Annotated[
            list[EditSpec],
            Field(
                min_length=1,
                max_length=100,
                description="Replacements applied in order; each old_text must occur exactly once.",
            ),
        ],
        ctx: Context,
        dry_run: Annotated[bool, Field(description="Only show the diff; do not write.")] = False,
    ) -> EditResult:
        """Change part of a text file by replacing exact text, and get a unified diff of the change. Copy old_text
        exactly from the file (read it first); include enough lines that it matches only once."""
        return ops.edit(root(ctx), path, edits, dry_run, cfg)

    @server.tool(annotations=_ann(destructive=False, idempotent=True))
    @tool_errors
    async def create_directory(path: DirPath, ctx: Context) -> DirectoryResult:
        """Create a directory, with any missing parents. Succeeds if it already exists."""
        return ops.create_directory(root(ctx), path)

    @server.tool(annotations=READ)
    @tool_errors
    async def list_directory(ctx: Context, path: DirPath = ".") -> Listing:
        """List the files and directories directly inside a directory, with their types and sizes. Use
        directory_tree for several levels at once."""
        return ops.list_directory(root(ctx), path)

    @server.tool(annotations=READ)
    @tool_errors
    async def directory_tree(
        ctx: Context,
        path: DirPath = ".",
        max_depth: Annotated[int, Field(ge=1, le=20, description="Levels to show (1 = direct entries).")] = 3,
        exclude: Annotated[
            list[str],
            Field(max_length=50, description="Glob patterns of names or paths to skip, e.g. ['.git', '*.pyc']."),
        ] = [],  # noqa: B006
    ) -> Tree:
        """Show a directory's structure as a nested tree, several levels deep, to get an overview of a project."""
        return ops.directory_tree(root(ctx), path, max_depth, exclude)

    @server.tool(annotations=_ann(destructive=False, idempotent=False))
    @tool_errors
    async def move_file(
        source: Annotated[str, Field(max_length=4096, description="Existing file or directory to move.")],
        destination: Annotated[str, Field(max_length=4096, description="New path; must not exist yet.")],
        ctx: Context,
    ) -> MoveResult:
        """Move or rename a file or directory inside the workspace. Fails if the destination already exists."""
        return ops.move(root(ctx), source, destination)

    @server.tool(annotations=_ann(destructive=True, idempotent=True))
    @tool_errors
    async def delete_path(
        path: Path_,
        ctx: Context,
        recursive: Annotated[bool, Field(description="Also delete a non-empty directory with its contents.")] = False,
    ) -> DeleteResult:
        """Delete a file, a symbolic link (not its target) or a directory. A non-empty directory needs
        recursive=true. This cannot be undone."""
        return ops.delete(root(ctx), path, recursive)

    @server.tool(annotations=READ)
    @tool_errors
    async def search_files(
        pattern: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="Glob on file names, e.g. '*.py'; with '/', on relative paths.",
            ),
        ],
        ctx: Context,
        path: DirPath = ".",
        max_results: Annotated[int, Field(ge=1, le=10_000, description="Most paths to return.")] = 200,
    ) -> SearchResult:
        """Find files or directories by name (glob) anywhere below a directory. Use grep to search inside files."""
        return ops.search(root(ctx), path, pattern, max_results)

    @server.tool(annotations=READ)
    @tool_errors
    async def grep(
        pattern: Annotated[str, Field(min_length=1, max_length=1000, description="Python regular expression.")],
        ctx: Context,
        path: DirPath = ".",
        glob: Annotated[
            str | None, Field(max_length=500, description="Only files whose name matches, e.g. '*.py'.")
        ] = None,
        max_results: Annotated[
            int,
            Field(
                ge=1,
                le=10_000,
                description="Most matching lines to return (the server caps it at its max_grep_results).",
            ),
        ] = 100,
        ignore_case: Annotated[bool, Field(description="Match case-insensitively.")] = False,
    ) -> GrepResult:
        """Search the contents of text files for a regular expression and get matching lines with line numbers.
        Use this to find where something is defined or mentioned."""
        limit = min(max_results, cfg.max_grep_results)
        return ops.grep(root(ctx), pattern, path, glob, limit, ignore_case, cfg)

    @server.tool(annotations=READ)
    @tool_errors
    async def get_file_info(path: Path_, ctx: Context) -> FileInfo:
        """Get a path's metadata: type, size, modification time, permissions, and a symlink's target."""
        return ops.file_info(root(ctx), path)

    return server
