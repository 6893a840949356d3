"""Race-safe file operations inside a workspace: no-follow directory walks, exclusive creation, atomic replace."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp_servers.errors import ConflictError, NotFoundError, PathSecurityError, ToolInputError
from mcp_servers.workspace.paths import relative_parts

__all__ = [
    "Entry",
    "Kind",
    "delete",
    "kind_of",
    "list_dir",
    "lstat",
    "make_dirs",
    "move",
    "open_dir",
    "read_file",
    "walk",
    "write_file_atomic",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _swapped(name: str) -> PathSecurityError:
    return PathSecurityError(
        f"path component {name!r} is (or became) a symbolic link or non-directory during the call; refused"
    )


def _open_child_dir(fd: int, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
                    raise _swapped(name) from None
        raise


def open_dir(root: str, parts: Sequence[str], *, create: bool = False) -> int:
    """Open the directory `root/parts...` walking one component at a time without following symlinks.

    Args:
        root: The normalized workspace root.
        parts: Components below the root (as returned by `relative_parts`).
        create: Create missing directories on the way.

    Returns:
        An open directory file descriptor (the caller closes it).

    Raises:
        PathSecurityError: A component is a symlink (for example swapped in after the path was checked).
        OSError: A component is missing (and `create` is false) or is not a directory.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            child = _open_child_dir(fd, name)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _parent(root: str, resolved: Path | str, *, create: bool = False) -> Iterator[tuple[int, str]]:
    parts = relative_parts(root, resolved)
    if not parts:
        raise ToolInputError("this operation needs a path below the workspace root, not the root itself")
    fd = open_dir(root, parts[:-1], create=create)
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


def read_file(root: str, resolved: Path | str, *, max_bytes: int, offset: int = 0) -> tuple[bytes, int]:
    """Read up to `max_bytes` of a regular file, from byte `offset`, without following a swapped-in symlink.

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.
        max_bytes: The most bytes to return.
        offset: Byte offset to start at.

    Returns:
        The bytes read and the file's total size.

    Raises:
        ToolInputError: The path is not a regular file.
        PathSecurityError: A component is a symlink.
        OSError: The file does not exist.
    """
    with _parent(root, resolved) as (dfd, name):
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _swapped(name) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise ToolInputError(f"{name!r} is {kind}; only regular files can be read")
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            want = min(max_bytes, max(st.st_size - offset, 0))
            chunks: list[bytes] = []
            while want > 0:
                chunk = os.read(fd, want)
                if not chunk:
                    break
                chunks.append(chunk)
                want -= len(chunk)
            return b"".join(chunks), st.st_size
        finally:
            os.close(fd)


def write_file_atomic(
    root: str, resolved: Path | str, data: bytes, *, exclusive: bool = False, create_parents: bool = True
) -> bool:
    """Write a file by creating a temporary sibling exclusively and renaming it over the target.

    The rename replaces a symlink at the target rather than writing through it; parents are walked without
    following symlinks, so a directory swapped for a symlink after the check is refused.

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.
        data: The new content.
        exclusive: Fail with `ConflictError` if the target exists (no-replace link instead of rename).
        create_parents: Create missing parent directories.

    Returns:
        True if the file was created, False if an existing file was replaced.

    Raises:
        ConflictError: `exclusive` and the target exists.
        ToolInputError: The target is a directory.
        PathSecurityError: A component is a symlink.
    """
    with _parent(root, resolved, create=create_parents) as (dfd, name):
        mode = 0o644
        existed = False
        try:
            st = os.lstat(name, dir_fd=dfd)
            existed = True
            if stat.S_ISDIR(st.st_mode):
                raise ToolInputError(f"{name!r} is a directory; write_file writes files only")
            if stat.S_ISREG(st.st_mode):
                mode = stat.S_IMODE(st.st_mode)
        except FileNotFoundError:
            pass
        if exclusive and existed:
            raise ConflictError(f"{name!r} already exists")
        tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, _CREATE_FLAGS, mode, dir_fd=dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
            if exclusive:
                try:
                    os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                except FileExistsError:
                    raise ConflictError(f"{name!r} already exists") from None
                os.unlink(tmp, dir_fd=dfd)
            else:
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        return not existed


def make_dirs(root: str, resolved: Path | str) -> bool:
    """Create a directory and any missing parents (like `mkdir -p`), never following symlinks.

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.

    Returns:
        True if the directory was created, False if it already existed.
    """
    parts = relative_parts(root, resolved)
    if not parts:
        return False
    fd = open_dir(root, parts[:-1], create=True)
    try:
        try:
            os.mkdir(parts[-1], 0o777, dir_fd=fd)
            return True
        except FileExistsError:
            os.close(_open_child_dir(fd, parts[-1]))  # refuses a symlink or file of that name
            return False
    finally:
        os.close(fd)


Kind = Literal["file", "directory", "symlink", "other"]


@dataclass(frozen=True)
class Entry:
    """One directory entry: name, kind ("file", "directory", "symlink", "other"), size in bytes, mtime."""

    name: str
    kind: Kind
    size: int
    mtime: float


def kind_of(mode: int) -> Kind:
    """The entry kind of a stat mode."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _entries(fd: int) -> list[Entry]:
    out: list[Entry] = []
    with os.scandir(fd) as it:
        for de in it:
            try:
                st = de.stat(follow_symlinks=False)
            except OSError:
                continue
            out.append(Entry(de.name, kind_of(st.st_mode), st.st_size, st.st_mtime))
    out.sort(key=lambda e: e.name)
    return out


def list_dir(root: str, resolved: Path | str) -> list[Entry]:
    """List a directory's entries (sorted by name); symlinks are listed as such, not followed.

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.

    Returns:
        The entries.
    """
    fd = open_dir(root, relative_parts(root, resolved))
    try:
        return _entries(fd)
    finally:
        os.close(fd)


def walk(root: str, resolved: Path | str, *, max_depth: int | None = None) -> Iterator[tuple[str, Entry, int]]:
    """Walk a directory tree depth-first without following symlinks.

    Args:
        root: The normalized workspace root.
        resolved: The directory to walk (from `resolve_path`).
        max_depth: How many levels to descend (1 = the directory's own entries); None for no limit.

    Yields:
        (path relative to the walked directory, entry, file descriptor of the entry's directory). The descriptor is
        valid only until the next item; use it with `dir_fd=` to open the entry race-free.
    """
    top = open_dir(root, relative_parts(root, resolved))

    def _walk(fd: int, prefix: str, depth: int) -> Iterator[tuple[str, Entry, int]]:
        for entry in _entries(fd):
            rel = f"{prefix}{entry.name}"
            yield rel, entry, fd
            if entry.kind == "directory" and (max_depth is None or depth < max_depth):
                try:
                    child = _open_child_dir(fd, entry.name)
                except (OSError, PathSecurityError):
                    continue
                try:
                    yield from _walk(child, rel + "/", depth + 1)
                finally:
                    os.close(child)

    try:
        yield from _walk(top, "", 1)
    finally:
        os.close(top)


def open_in_dir(dir_fd: int, name: str) -> int:
    """Open a regular file for reading relative to a directory descriptor, refusing symlinks and non-files.

    Args:
        dir_fd: An open directory descriptor (e.g. from `walk`).
        name: The entry name.

    Returns:
        An open file descriptor (the caller closes it).
    """
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolInputError(f"{name!r} is not a regular file")
    return fd


def lstat(root: str, resolved: Path | str) -> os.stat_result:
    """Stat a path without following a final symlink (the root itself may be given).

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path`.

    Returns:
        The stat result.
    """
    parts = relative_parts(root, resolved)
    if not parts:
        return os.stat(root)
    fd = open_dir(root, parts[:-1])
    try:
        return os.lstat(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def move(root: str, source: Path | str, destination: Path | str) -> None:
    """Move or rename a file or directory inside the workspace; the destination must not exist.

    Args:
        root: The normalized workspace root.
        source: The resolved source path.
        destination: The resolved destination path.

    Raises:
        NotFoundError: The source does not exist.
        ConflictError: The destination exists.
        ToolInputError: Moving a directory into itself.
    """
    src_parts = relative_parts(root, source)
    dst_parts = relative_parts(root, destination)
    if not src_parts or not dst_parts:
        raise ToolInputError("the workspace root itself cannot be moved or replaced")
    if dst_parts[: len(src_parts)] == src_parts:
        raise ToolInputError("destination is inside the source; a directory cannot be moved into itself")
    with _parent(root, source) as (sfd, sname), _parent(root, destination, create=True) as (dfd, dname):
        try:
            os.lstat(sname, dir_fd=sfd)
        except FileNotFoundError:
            raise NotFoundError("source does not exist") from None
        try:
            rename_noreplace(sfd, sname, dfd, dname)
        except FileExistsError:
            raise ConflictError("destination already exists; delete it first or choose another name") from None


_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)  # glibc >= 2.28
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """Rename `src` to `dst` (names relative to directory fds), failing if `dst` exists, atomically.

    Uses `renameat2(RENAME_NOREPLACE)`, so a destination created by someone else between a check and the rename is
    never replaced. Where the C library or the file system lacks it, falls back to a check then `rename`.

    Raises:
        FileExistsError: `dst` exists.
        OSError: The rename failed otherwise.
    """
    if _renameat2 is not None:
        ret = _renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), _RENAME_NOREPLACE)
        if ret == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: a file system without the flag
            raise OSError(err, os.strerror(err), dst)
    try:
        os.lstat(dst, dir_fd=dst_dir)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    except FileNotFoundError:
        pass
    os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)


def delete(root: str, resolved: Path | str, *, recursive: bool = False) -> Kind:
    """Delete a file, a symlink (the link, not its target) or a directory.

    Args:
        root: The normalized workspace root.
        resolved: A path returned by `resolve_path` (never the root itself).
        recursive: Delete a non-empty directory with its contents.

    Returns:
        The kind of what was deleted ("file", "directory", "symlink", "other").

    Raises:
        ToolInputError: The path is the root, or a non-empty directory without `recursive`.
        NotFoundError: The path does not exist.
    """
    with _parent(root, resolved) as (dfd, name):
        try:
            st = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            raise NotFoundError("does not exist") from None
        kind = kind_of(st.st_mode)
        if kind == "directory":
            if recursive:
                shutil.rmtree(name, dir_fd=dfd)
            else:
                try:
                    os.rmdir(name, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise ToolInputError(
                            "recursive: the directory is not empty; pass recursive=true to delete it with its contents"
                        ) from None
                    raise
        else:
            os.unlink(name, dir_fd=dfd)
        return kind
