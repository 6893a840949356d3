"""Structured results of the files tools (their fields become each tool's output schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "BinaryFile",
    "DeleteResult",
    "DirEntry",
    "DirectoryResult",
    "EditResult",
    "EditSpec",
    "FileInfo",
    "FileText",
    "GrepMatch",
    "GrepResult",
    "Listing",
    "MoveResult",
    "MultiRead",
    "SearchResult",
    "Tree",
    "TreeNode",
    "WriteResult",
]

Kind = Literal["file", "directory", "symlink", "other"]


class EditSpec(BaseModel):
    """One replacement for edit_file."""

    old_text: str = Field(min_length=1, max_length=100_000, description="Exact text to find; must occur exactly once.")
    new_text: str = Field(max_length=100_000, description="Text to put in its place (may be empty to delete).")


class FileText(BaseModel):
    """One file's text (or why it could not be read), for read_multiple_files."""

    path: str
    content: str | None = None
    truncated: bool = False
    error: str | None = None


class MultiRead(BaseModel):
    """The files read by read_multiple_files, in the order asked."""

    files: list[FileText]


class BinaryFile(BaseModel):
    """A file's bytes, base64-encoded."""

    path: str
    mime_type: str
    size: int
    base64: str


class WriteResult(BaseModel):
    """What write_file did."""

    path: str
    bytes_written: int
    created: bool


class EditResult(BaseModel):
    """The unified diff of edit_file, and whether it was written."""

    path: str
    diff: str
    applied: bool
    edits: int


class DirectoryResult(BaseModel):
    """What create_directory did."""

    path: str
    created: bool


class DirEntry(BaseModel):
    """One entry of a directory listing."""

    name: str
    type: Kind
    size: int


class Listing(BaseModel):
    """A directory's entries, sorted by name."""

    path: str
    entries: list[DirEntry]


class TreeNode(BaseModel):
    """A node of directory_tree; `children` is set for directories within the depth limit."""

    name: str
    type: Kind
    children: list[TreeNode] | None = None


class Tree(BaseModel):
    """A directory tree, depth- and size-limited."""

    path: str
    tree: list[TreeNode]
    truncated: bool = False


class MoveResult(BaseModel):
    """What move_file did."""

    source: str
    destination: str


class DeleteResult(BaseModel):
    """What delete_path removed."""

    path: str
    deleted: Kind


class SearchResult(BaseModel):
    """Paths whose names match a glob, relative to the workspace root."""

    pattern: str
    matches: list[str]
    truncated: bool = False


class GrepMatch(BaseModel):
    """One line matching grep's pattern."""

    path: str
    line: int
    text: str


class GrepResult(BaseModel):
    """The matching lines, in path then line order."""

    pattern: str
    matches: list[GrepMatch]
    files_searched: int
    truncated: bool = False


class FileInfo(BaseModel):
    """Metadata of a file, directory or symlink."""

    path: str
    type: Kind
    size: int
    modified: str
    accessed: str
    permissions: str
    symlink_target: str | None = None
