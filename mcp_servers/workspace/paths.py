"""Path security: the one pure function every file tool calls first to map a caller's path into its workspace."""

from __future__ import annotations

import os
from pathlib import Path

from mcp_servers.errors import PathSecurityError, ToolInputError

__all__ = ["MAX_PATH_CHARS", "display_path", "normalize_root", "relative_parts", "resolve_path"]

MAX_PATH_CHARS = 4096


def normalize_root(root: Path | str) -> str:
    """The canonical form of a workspace root: absolute, symlinks resolved, no trailing slash.

    Args:
        root: The workspace root directory.

    Returns:
        The root as a string, as `resolve_path` expects it.
    """
    return os.path.realpath(os.path.abspath(os.fspath(root)))


def _inside(root: str, candidate: str) -> bool:
    if candidate == root:
        return True
    prefix = root if root.endswith("/") else root + "/"
    return candidate.startswith(prefix)


def resolve_path(root: str, user_path: str, *, arg: str = "path", follow_final: bool = True) -> Path:
    """Map a caller's path onto a real path inside `root`, or refuse it.

    Relative paths are taken from the root; absolute paths must lie inside it. `..` is resolved lexically and then
    every symbolic link is resolved: the result must still be inside the root, so sibling-prefix paths
    (`/w/project2` for root `/w/project`), traversal and symlinks that lead out (at any component, for paths that do
    not exist yet too) are refused. Names such as `..test`, `te..st` or `%2e%2e` are ordinary names.

    This only checks; to act on the result without a race, use the no-follow helpers in
    `mcp_servers.workspace.safeio`, which refuse a component that was swapped for a symlink after this check.

    Args:
        root: The workspace root, normalized with `normalize_root`.
        user_path: The path the caller gave; "" and "." mean the root itself.
        arg: The argument name, used in error messages.
        follow_final: Resolve a symlink in the last component too (reads, writes). False keeps the link itself
            (delete, move, stat act on the link, not on what it points to); its parents are still resolved.

    Returns:
        The resolved absolute path (symlinks inside the root resolved).

    Raises:
        PathSecurityError: The path is outside the root, escapes through a symlink, or contains a NUL byte.
        ToolInputError: The path is not a string or is too long.
    """
    if not isinstance(user_path, str):
        raise ToolInputError(f"{arg}: expected a string path, got {type(user_path).__name__}")
    if "\x00" in user_path:
        raise PathSecurityError(f"{arg} {user_path!r}: contains a NUL byte; file names cannot contain NUL")
    if len(user_path) > MAX_PATH_CHARS:
        raise ToolInputError(f"{arg}: path is {len(user_path)} characters long; at most {MAX_PATH_CHARS} are accepted")
    if user_path.startswith("/"):
        candidate = "/" + user_path.lstrip("/")  # "//w/project2" is "/w/project2", not a UNC-style root
    else:
        candidate = root + "/" + user_path if user_path else root
    candidate = os.path.normpath(candidate)
    if candidate.startswith("//"):
        candidate = "/" + candidate.lstrip("/")
    if not _inside(root, candidate):
        raise PathSecurityError(
            f"{arg} {user_path!r}: outside the workspace; use a path relative to the workspace root "
            "(or an absolute path inside it)"
        )
    if follow_final or candidate == root:
        real = os.path.realpath(candidate)
    else:
        parent, name = os.path.split(candidate)
        real = os.path.join(os.path.realpath(parent), name)
    if not _inside(root, real):
        raise PathSecurityError(
            f"{arg} {user_path!r}: leads outside the workspace through a symbolic link; only links that stay "
            "inside the workspace are followed"
        )
    return Path(real)


def relative_parts(root: str, resolved: Path | str) -> tuple[str, ...]:
    """The components of a resolved path below the root (empty for the root itself).

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.

    Returns:
        The path's components relative to the root.

    Raises:
        PathSecurityError: `resolved` is not inside the root.
    """
    text = os.fspath(resolved)
    if text == root:
        return ()
    if not _inside(root, text):
        raise PathSecurityError("path is outside the workspace")
    rest = text[len(root) :].lstrip("/")
    return tuple(part for part in rest.split("/") if part)


def display_path(root: str, resolved: Path | str) -> str:
    """The workspace-relative form of a resolved path, as shown to a model ("." for the root).

    Args:
        root: The normalized workspace root.
        resolved: A path inside the root.

    Returns:
        The relative path with "/" separators.
    """
    parts = relative_parts(root, resolved)
    return "/".join(parts) if parts else "."
