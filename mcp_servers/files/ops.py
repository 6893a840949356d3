"""The files tools' logic as plain functions of a workspace root and the arguments (no MCP here)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import difflib
import fnmatch
import mimetypes
import os
import re
import stat
from collections.abc import Iterator, Sequence

from mcp_servers.errors import ConflictError, McpGymServerError, NotFoundError, ToolInputError
from mcp_servers.files.models import (
    BinaryFile,
    DeleteResult,
    DirectoryResult,
    DirEntry,
    EditResult,
    EditSpec,
    FileInfo,
    FileText,
    GrepMatch,
    GrepResult,
    Listing,
    MoveResult,
    MultiRead,
    SearchResult,
    Tree,
    TreeNode,
    WriteResult,
)
from mcp_servers.settings import FilesSettings
from mcp_servers.workspace import safeio
from mcp_servers.workspace.paths import display_path, resolve_path

__all__ = [
    "about",
    "create_directory",
    "delete",
    "directory_tree",
    "edit",
    "file_info",
    "grep",
    "list_directory",
    "move",
    "read_binary",
    "read_multiple",
    "read_text",
    "search",
    "write",
]

MAX_TREE_NODES = 2000
MAX_LINE_CHARS = 400


@contextlib.contextmanager
def about(arg: str, value: str) -> Iterator[None]:
    """Name the argument in any error raised inside: OS errors become `ToolInputError("path 'x': does not exist")`.

    Args:
        arg: The argument name.
        value: The argument's value as the caller gave it.
    """
    label = f"{arg} {value!r}"
    try:
        yield
    except McpGymServerError as exc:
        text = str(exc)
        if text.startswith(arg):
            raise
        raise type(exc)(f"{label}: {text}") from None
    except FileNotFoundError:
        raise NotFoundError(f"{label}: does not exist") from None
    except FileExistsError:
        raise ConflictError(f"{label}: already exists") from None
    except OSError as exc:
        from mcp_servers.errors import describe_os_error

        raise ToolInputError(describe_os_error(exc, label)) from None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _marker(shown: int, size: int, hint: str) -> str:
    return f"\n[... truncated: showing {shown} of {size} bytes; {hint} ...]"


def read_text(
    root: str,
    path: str,
    cfg: FilesSettings,
    *,
    head: int | None = None,
    tail: int | None = None,
    offset: int | None = None,
    limit: int | None = None,
) -> str:
    """Read a text file, or a line range of it, capped at `cfg.max_read_bytes` with a visible truncation marker.

    Args:
        root: The workspace root.
        path: The caller's path.
        cfg: Files settings (the byte cap).
        head: Only the first N lines.
        tail: Only the last N lines.
        offset: First line to return (1-based), with `limit`.
        limit: How many lines to return from `offset`.

    Returns:
        The text.

    Raises:
        ToolInputError: Conflicting options, or the path is not a readable file.
    """
    if head is not None and tail is not None:
        raise ToolInputError("head and tail: pass at most one of them")
    if (head is not None or tail is not None) and (offset is not None or limit is not None):
        raise ToolInputError("head/tail cannot be combined with offset/limit; use one way of choosing lines")
    cap = cfg.max_read_bytes
    with about("path", path):
        resolved = resolve_path(root, path)
        if tail is not None:
            size = safeio.lstat(root, resolved).st_size
            start = max(0, size - cap)
            data, size = safeio.read_file(root, resolved, max_bytes=cap, offset=start)
            lines = _decode(data).splitlines(keepends=True)
            if start:
                lines = lines[1:]  # the first line may be cut
            text = "".join(lines[-tail:]) if tail else ""
            return text if not start or len(lines) > tail else text + _marker(len(data), size, "tail read the end")
        data, size = safeio.read_file(root, resolved, max_bytes=cap)
    truncated = size > len(data)
    text = _decode(data)
    if head is not None:
        lines = text.splitlines(keepends=True)
        out = "".join(lines[:head])
        return out + _marker(len(data), size, "head read the start") if truncated and len(lines) <= head else out
    if offset is not None or limit is not None:
        lines = text.splitlines(keepends=True)
        first = max((offset or 1) - 1, 0)
        chosen = lines[first:] if limit is None else lines[first : first + limit]
        out = "".join(chosen)
        if truncated and (limit is None or first + limit > len(lines)):
            out += _marker(len(data), size, "lines beyond the cap are not shown")
        return out
    if truncated:
        return text + _marker(len(data), size, "use offset/limit or tail to read the rest")
    return text


def read_multiple(root: str, paths: Sequence[str], cfg: FilesSettings) -> MultiRead:
    """Read several text files; a file that fails gets an `error` instead of failing the whole call.

    Args:
        root: The workspace root.
        paths: The caller's paths.
        cfg: Files settings.

    Returns:
        One entry per path, in order.
    """
    out: list[FileText] = []
    for p in paths:
        try:
            with about("path", p):
                data, size = safeio.read_file(root, resolve_path(root, p), max_bytes=cfg.max_read_bytes)
            text = _decode(data)
            truncated = size > len(data)
            if truncated:
                text += _marker(len(data), size, "use read_text_file with offset/limit for the rest")
            out.append(FileText(path=p, content=text, truncated=truncated))
        except McpGymServerError as exc:
            out.append(FileText(path=p, error=str(exc)))
    return MultiRead(files=out)


def read_binary(root: str, path: str, cfg: FilesSettings) -> BinaryFile:
    """Read a file's bytes as base64 (refused above `cfg.max_binary_bytes`).

    Args:
        root: The workspace root.
        path: The caller's path.
        cfg: Files settings.

    Returns:
        The encoded file.
    """
    with about("path", path):
        resolved = resolve_path(root, path)
        data, size = safeio.read_file(root, resolved, max_bytes=cfg.max_binary_bytes + 1)
        if size > cfg.max_binary_bytes:
            raise ToolInputError(f"file is {size} bytes; read_binary_file returns at most {cfg.max_binary_bytes}")
    mime = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
    return BinaryFile(
        path=display_path(root, resolved), mime_type=mime, size=size, base64=base64.b64encode(data).decode("ascii")
    )


def write(root: str, path: str, content: str) -> WriteResult:
    """Create or replace a file atomically (missing parent directories are created).

    Args:
        root: The workspace root.
        path: The caller's path.
        content: The full new text.

    Returns:
        What was written.
    """
    data = content.encode("utf-8")
    with about("path", path):
        resolved = resolve_path(root, path)
        created = safeio.write_file_atomic(root, resolved, data)
    return WriteResult(path=display_path(root, resolved), bytes_written=len(data), created=created)


def _apply_edits(text: str, edits: Sequence[EditSpec]) -> str:
    for i, e in enumerate(edits):
        count = text.count(e.old_text)
        if count == 0:
            hint = ""
            stripped = e.old_text.strip()
            if stripped and stripped in text:
                hint = " (it does occur with different leading/trailing whitespace; copy the text exactly)"
            raise NotFoundError(f"edits[{i}].old_text: not found in the file{hint}; read the file and copy it exactly")
        if count > 1:
            raise ConflictError(
                f"edits[{i}].old_text: occurs {count} times; include more surrounding lines so it matches exactly once"
            )
        text = text.replace(e.old_text, e.new_text, 1)
    return text


def edit(root: str, path: str, edits: Sequence[EditSpec], dry_run: bool, cfg: FilesSettings) -> EditResult:
    """Apply exact-text replacements in order and return the unified diff; written atomically unless `dry_run`.

    Args:
        root: The workspace root.
        path: The caller's path.
        edits: The replacements.
        dry_run: Only compute the diff.
        cfg: Files settings (files above the read cap are refused).

    Returns:
        The diff and whether it was applied.
    """
    if not edits:
        raise ToolInputError("edits: give at least one {old_text, new_text} pair")
    with about("path", path):
        resolved = resolve_path(root, path)
        data, size = safeio.read_file(root, resolved, max_bytes=cfg.max_read_bytes)
        if size > len(data):
            raise ToolInputError(f"file is {size} bytes; edit_file edits files up to {cfg.max_read_bytes} bytes")
        old = data.decode("utf-8", errors="strict") if _is_utf8(data) else None
        if old is None:
            raise ToolInputError("file is not UTF-8 text; edit_file edits text files only")
    new = _apply_edits(old, edits)
    shown = display_path(root, resolved)
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{shown}", tofile=f"b/{shown}"
        )
    )
    if not dry_run and new != old:
        with about("path", path):
            safeio.write_file_atomic(root, resolved, new.encode("utf-8"), create_parents=False)
    return EditResult(path=shown, diff=diff, applied=not dry_run and new != old, edits=len(edits))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def create_directory(root: str, path: str) -> DirectoryResult:
    """Create a directory with any missing parents; an existing directory is not an error.

    Args:
        root: The workspace root.
        path: The caller's path.

    Returns:
        Whether it was created.
    """
    with about("path", path):
        resolved = resolve_path(root, path)
        created = safeio.make_dirs(root, resolved)
    return DirectoryResult(path=display_path(root, resolved), created=created)


def list_directory(root: str, path: str) -> Listing:
    """List a directory.

    Args:
        root: The workspace root.
        path: The caller's path.

    Returns:
        Its entries.
    """
    with about("path", path):
        resolved = resolve_path(root, path)
        entries = safeio.list_dir(root, resolved)
    return Listing(
        path=display_path(root, resolved), entries=[DirEntry(name=e.name, type=e.kind, size=e.size) for e in entries]
    )


def _excluded(rel: str, name: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(rel, pat) for pat in exclude)


def directory_tree(root: str, path: str, max_depth: int, exclude: Sequence[str]) -> Tree:
    """A nested view of a directory, `max_depth` levels deep, skipping names or paths matching `exclude` globs.

    Args:
        root: The workspace root.
        path: The caller's path.
        max_depth: Levels to descend (1 = the directory's own entries).
        exclude: Glob patterns on names or relative paths.

    Returns:
        The tree (truncated after `MAX_TREE_NODES` nodes).
    """
    top: list[TreeNode] = []
    nodes: dict[str, TreeNode] = {}
    count = 0
    truncated = False
    with about("path", path):
        resolved = resolve_path(root, path)
        for rel, entry, _fd in safeio.walk(root, resolved, max_depth=max_depth):
            parent = rel.rpartition("/")[0]
            if _excluded(rel, entry.name, exclude) or (parent and parent not in nodes):
                continue
            if count >= MAX_TREE_NODES:
                truncated = True
                break
            count += 1
            depth = rel.count("/") + 1
            node = TreeNode(
                name=entry.name,
                type=entry.kind,
                children=[] if entry.kind == "directory" and depth < max_depth else None,
            )
            nodes[rel] = node
            siblings = nodes[parent].children if parent else top
            if siblings is not None:
                siblings.append(node)
    return Tree(path=display_path(root, resolved), tree=top, truncated=truncated)


def move(root: str, source: str, destination: str) -> MoveResult:
    """Move or rename a file or directory; the destination must not exist.

    Args:
        root: The workspace root.
        source: The caller's source path.
        destination: The caller's destination path.

    Returns:
        The workspace-relative source and destination.
    """
    with about("source", source):
        src = resolve_path(root, source, arg="source", follow_final=False)
    with about("destination", destination):
        dst = resolve_path(root, destination, arg="destination", follow_final=False)
    with about("source", source):
        safeio.move(root, src, dst)
    return MoveResult(source=display_path(root, src), destination=display_path(root, dst))


def delete(root: str, path: str, recursive: bool) -> DeleteResult:
    """Delete a file, a symlink (not its target) or a directory (`recursive` for a non-empty one).

    Args:
        root: The workspace root.
        path: The caller's path.
        recursive: Delete a directory with its contents.

    Returns:
        What was deleted.
    """
    with about("path", path):
        resolved = resolve_path(root, path, follow_final=False)
        if os.fspath(resolved) == root:
            raise ToolInputError("the workspace root itself cannot be deleted; delete the entries inside it")
        kind = safeio.delete(root, resolved, recursive=recursive)
    return DeleteResult(path=display_path(root, resolved), deleted=kind)


def search(root: str, path: str, pattern: str, max_results: int) -> SearchResult:
    """Find files and directories whose name (or relative path, for patterns with "/") matches a glob.

    Args:
        root: The workspace root.
        path: The directory to search under.
        pattern: A glob such as "*.py" or "src/**/test_*.py".
        max_results: The most paths to return.

    Returns:
        The matching paths, relative to the workspace root.
    """
    matches: list[str] = []
    truncated = False
    with about("path", path):
        resolved = resolve_path(root, path)
        base = display_path(root, resolved)
        prefix = "" if base == "." else base + "/"
        for rel, entry, _fd in safeio.walk(root, resolved):
            target = rel if "/" in pattern else entry.name
            if fnmatch.fnmatchcase(target, pattern):
                if len(matches) >= max_results:
                    truncated = True
                    break
                matches.append(prefix + rel)
    return SearchResult(pattern=pattern, matches=matches, truncated=truncated)


def grep(
    root: str, pattern: str, path: str, glob: str | None, max_results: int, ignore_case: bool, cfg: FilesSettings
) -> GrepResult:
    """Search file contents with a regular expression (binary files and symlinks skipped).

    Args:
        root: The workspace root.
        pattern: A Python regular expression.
        path: A directory to search under, or one file.
        glob: Only files whose name matches this glob (e.g. "*.py").
        max_results: The most matching lines to return.
        ignore_case: Case-insensitive matching.
        cfg: Files settings (per-file read cap).

    Returns:
        The matching lines.
    """
    try:
        rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ToolInputError(f"pattern {pattern!r}: not a valid regular expression ({exc})") from None
    matches: list[GrepMatch] = []
    searched = 0
    truncated = False
    with about("path", path):
        resolved = resolve_path(root, path)
        base = display_path(root, resolved)
        if stat.S_ISREG(safeio.lstat(root, resolved).st_mode):
            data, _ = safeio.read_file(root, resolved, max_bytes=cfg.max_read_bytes)
            truncated = _grep_bytes(data, base, rx, matches, max_results)
            return GrepResult(pattern=pattern, matches=matches, files_searched=1, truncated=truncated)
        prefix = "" if base == "." else base + "/"
        for rel, entry, fd in safeio.walk(root, resolved):
            if entry.kind != "file" or (glob and not fnmatch.fnmatchcase(entry.name, glob)):
                continue
            try:
                ffd = safeio.open_in_dir(fd, entry.name)
            except (OSError, McpGymServerError):
                continue
            try:
                data = os.read(ffd, cfg.max_read_bytes)
            finally:
                os.close(ffd)
            searched += 1
            if _grep_bytes(data, prefix + rel, rx, matches, max_results):
                truncated = True
                break
    return GrepResult(pattern=pattern, matches=matches, files_searched=searched, truncated=truncated)


def _grep_bytes(data: bytes, shown: str, rx: re.Pattern[str], out: list[GrepMatch], limit: int) -> bool:
    if b"\x00" in data[:8192]:
        return False
    for number, line in enumerate(_decode(data).splitlines(), start=1):
        if rx.search(line):
            if len(out) >= limit:
                return True
            text = line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "..."
            out.append(GrepMatch(path=shown, line=number, text=text))
    return False


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")


def file_info(root: str, path: str) -> FileInfo:
    """Metadata of a path (a symlink is described itself, with its target).

    Args:
        root: The workspace root.
        path: The caller's path.

    Returns:
        Type, size, times and permissions.
    """
    with about("path", path):
        resolved = resolve_path(root, path, follow_final=False)
        st = safeio.lstat(root, resolved)
    kind = safeio.kind_of(st.st_mode)
    target = None
    if kind == "symlink":
        with contextlib.suppress(OSError):
            link = os.readlink(resolved)
            real = os.path.realpath(resolved)
            target = link if real == root or real.startswith(root.rstrip("/") + "/") else "(outside the workspace)"
    return FileInfo(
        path=display_path(root, resolved),
        type=kind,
        size=st.st_size,
        modified=_iso(st.st_mtime),
        accessed=_iso(st.st_atime),
        permissions=stat.filemode(st.st_mode),
        symlink_target=target,
    )
