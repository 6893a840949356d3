"""Path security: every refusal case, each checked to leave everything outside the root unread and unchanged."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mcp_servers.errors import ConflictError, PathSecurityError, ToolInputError
from mcp_servers.workspace import safeio
from mcp_servers.workspace.paths import display_path, normalize_root, relative_parts, resolve_path

SECRET = "outside secret\n"


@pytest.fixture()
def layout(tmp_path: Path) -> dict[str, Path]:
    """/w/project (the root) with siblings project2, project_backup, project.bak, and an outside dir with a secret."""
    base = tmp_path / "w"
    root = base / "project"
    root.mkdir(parents=True)
    (root / "inside.txt").write_text("inside\n")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("deep\n")
    for sibling in ("project2", "project_backup", "project.bak"):
        (base / sibling).mkdir()
        (base / sibling / "secret.txt").write_text(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    return {"base": base, "root": root, "outside": outside}


def _snapshot(*dirs: Path) -> dict[str, tuple[bytes, float]]:
    """Content and atime-independent state of every file under dirs (to prove nothing changed)."""
    state: dict[str, tuple[bytes, float]] = {}
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file() and not p.is_symlink():
                state[str(p)] = (p.read_bytes(), p.stat().st_mtime)
            elif p.is_dir():
                state[str(p)] = (b"<dir>" + ",".join(sorted(os.listdir(p))).encode(), 0.0)
    return state


def _outside_dirs(layout: dict[str, Path]) -> list[Path]:
    base = layout["base"]
    return [layout["outside"], base / "project2", base / "project_backup", base / "project.bak"]


@pytest.mark.parametrize(
    "user_path",
    [
        "../outside/secret.txt",
        "../../outside/secret.txt",
        "sub/../../project2/secret.txt",
        "sub/../../../outside",
        "..",
        "./../project2",
    ],
)
def test_traversal_refused(layout: dict[str, Path], user_path: str) -> None:
    root = normalize_root(layout["root"])
    before = _snapshot(*_outside_dirs(layout))
    with pytest.raises(PathSecurityError, match="outside the workspace"):
        resolve_path(root, user_path)
    with pytest.raises(PathSecurityError):
        safeio.write_file_atomic(root, resolve_path(root, user_path), b"pwned")
    assert _snapshot(*_outside_dirs(layout)) == before


@pytest.mark.parametrize("sibling", ["project2", "project_backup", "project.bak"])
def test_sibling_prefix_refused(layout: dict[str, Path], sibling: str) -> None:
    root = normalize_root(layout["root"])
    before = _snapshot(*_outside_dirs(layout))
    for user_path in (f"{root}{sibling[len('project') :]}/secret.txt", f"/{root}{sibling[len('project') :]}"):
        with pytest.raises(PathSecurityError, match="outside the workspace"):
            resolve_path(root, user_path)
    assert _snapshot(*_outside_dirs(layout)) == before


def test_double_slash_sibling_refused(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    with pytest.raises(PathSecurityError):
        resolve_path(root, "/" + root + "2")  # "//.../project2"
    with pytest.raises(PathSecurityError):
        resolve_path(root, "//" + root.lstrip("/") + "2/secret.txt")


def test_absolute_outside_refused_and_inside_accepted(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    with pytest.raises(PathSecurityError):
        resolve_path(root, str(layout["outside"] / "secret.txt"))
    with pytest.raises(PathSecurityError):
        resolve_path(root, "/etc/passwd")
    assert resolve_path(root, root + "/inside.txt") == Path(root) / "inside.txt"
    assert resolve_path(root, root) == Path(root)


def test_nul_byte_refused(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    with pytest.raises(PathSecurityError, match="NUL"):
        resolve_path(root, "inside.txt\x00.png")


def test_non_string_and_too_long_refused(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    with pytest.raises(ToolInputError, match="expected a string"):
        resolve_path(root, 42)  # type: ignore[arg-type]
    with pytest.raises(ToolInputError, match="at most"):
        resolve_path(root, "a" * 5000)


@pytest.mark.parametrize("name", ["..test", "te..st", "%2e%2e", "...", "..hidden/x.txt", "~", "a b", "%2e%2e%2fetc"])
def test_odd_but_ordinary_names_work(layout: dict[str, Path], name: str) -> None:
    root = normalize_root(layout["root"])
    resolved = resolve_path(root, name)
    assert str(resolved).startswith(root + "/")
    safeio.write_file_atomic(root, resolved, b"ok")
    assert (Path(root) / name).read_bytes() == b"ok"
    data, size = safeio.read_file(root, resolved, max_bytes=100)
    assert data == b"ok" and size == 2


def test_symlink_file_escape_refused_for_read_and_write(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    os.symlink(layout["outside"] / "secret.txt", Path(root) / "link.txt")
    os.symlink(layout["outside"] / "new.txt", Path(root) / "dangling.txt")  # target does not exist yet
    before = _snapshot(layout["outside"])
    for user_path in ("link.txt", "dangling.txt"):
        with pytest.raises(PathSecurityError, match="symbolic link"):
            resolve_path(root, user_path)
    assert _snapshot(layout["outside"]) == before
    assert not (layout["outside"] / "new.txt").exists()


def test_symlinked_parent_escape_refused(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    os.symlink(layout["outside"], Path(root) / "linkdir")
    before = _snapshot(layout["outside"])
    for user_path in ("linkdir/secret.txt", "linkdir/new.txt", "linkdir", "linkdir/a/b/c.txt"):
        with pytest.raises(PathSecurityError, match="symbolic link"):
            resolve_path(root, user_path)
    # the link itself may be named when not following it (delete removes the link, not the target)
    link = resolve_path(root, "linkdir", follow_final=False)
    assert safeio.delete(root, link) == "symlink"
    assert _snapshot(layout["outside"]) == before


def test_symlink_inside_root_is_followed(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    os.symlink(Path(root) / "sub", Path(root) / "alias")
    resolved = resolve_path(root, "alias/deep.txt")
    assert resolved == Path(root) / "sub" / "deep.txt"
    assert safeio.read_file(root, resolved, max_bytes=10)[0] == b"deep\n"


def test_root_given_through_symlink(layout: dict[str, Path], tmp_path: Path) -> None:
    os.symlink(layout["root"], tmp_path / "rootlink")
    root = normalize_root(tmp_path / "rootlink")
    assert root == str(layout["root"].resolve())
    assert resolve_path(root, "inside.txt").read_text() == "inside\n"


def test_swapped_directory_between_check_and_write_does_not_escape(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    resolved = resolve_path(root, "sub/target.txt")  # checked while sub is a real directory
    to_read = resolve_path(root, "sub/secret.txt")
    os.rename(Path(root) / "sub", Path(root) / "sub.real")
    os.symlink(layout["outside"], Path(root) / "sub")  # swapped in after the check
    before = _snapshot(layout["outside"])
    with pytest.raises(PathSecurityError, match="symbolic link"):
        safeio.write_file_atomic(root, resolved, b"pwned")
    with pytest.raises(PathSecurityError, match="symbolic link"):
        safeio.read_file(root, to_read, max_bytes=100)
    with pytest.raises(PathSecurityError):
        safeio.make_dirs(root, Path(root) / "sub" / "made")
    assert _snapshot(layout["outside"]) == before
    assert not (layout["outside"] / "target.txt").exists()


def test_swapped_file_between_check_and_read_is_refused(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    resolved = resolve_path(root, "inside.txt")
    os.unlink(resolved)
    os.symlink(layout["outside"] / "secret.txt", resolved)
    with pytest.raises(PathSecurityError, match="symbolic link"):
        safeio.read_file(root, resolved, max_bytes=100)


def test_symlink_at_write_target_is_replaced_not_followed(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    resolved = resolve_path(root, "plain.txt")
    os.symlink(layout["outside"] / "secret.txt", resolved)  # swapped in after the check
    before = _snapshot(layout["outside"])
    safeio.write_file_atomic(root, resolved, b"mine")
    assert not os.path.islink(resolved) and Path(resolved).read_bytes() == b"mine"
    assert _snapshot(layout["outside"]) == before


def test_racing_swap_never_escapes(layout: dict[str, Path]) -> None:
    """A thread keeps swapping a real directory for a symlink to outside while check-then-write calls go on."""
    root = normalize_root(layout["root"])
    race = Path(root) / "race"
    aside = Path(root) / "race.aside"
    race.mkdir()
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(race, aside)
            os.symlink(layout["outside"], race)
            os.unlink(race)
            os.rename(aside, race)
            time.sleep(0.0005)  # let writes through in the real-directory phase too

    before = _snapshot(layout["outside"])
    flipper = threading.Thread(target=flip)
    flipper.start()
    written = refused = 0
    try:
        for i in range(2000):
            if written >= 50 and refused >= 1:
                break
            try:
                safeio.write_file_atomic(root, resolve_path(root, f"race/f{i}.txt"), b"x", create_parents=False)
                written += 1
            except (PathSecurityError, OSError):
                refused += 1
    finally:
        stop.set()
        flipper.join()
    assert _snapshot(layout["outside"]) == before
    assert written > 0  # the race was real: some check-then-write calls landed, on the real directory
    assert all(p.read_bytes() == b"x" for p in race.iterdir())


def test_exclusive_create(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    resolved = resolve_path(root, "once.txt")
    assert safeio.write_file_atomic(root, resolved, b"1", exclusive=True) is True
    with pytest.raises(ConflictError):
        safeio.write_file_atomic(root, resolved, b"2", exclusive=True)
    assert Path(resolved).read_bytes() == b"1"
    assert [p.name for p in Path(root).iterdir() if p.name.endswith(".tmp")] == []


def test_relative_parts_and_display(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    assert relative_parts(root, root) == ()
    assert relative_parts(root, Path(root) / "a" / "b") == ("a", "b")
    assert display_path(root, root) == "."
    assert display_path(root, Path(root) / "a" / "b") == "a/b"
    with pytest.raises(PathSecurityError):
        relative_parts(root, root + "2/x")


def test_fifo_is_not_read(layout: dict[str, Path]) -> None:
    root = normalize_root(layout["root"])
    os.mkfifo(Path(root) / "pipe")
    with pytest.raises(ToolInputError, match="not a regular file"):
        safeio.read_file(root, resolve_path(root, "pipe"), max_bytes=10)


def test_move_never_replaces_a_destination_even_without_the_check(layout: dict[str, Path]) -> None:
    """The rename itself refuses an existing destination (renameat2 NOREPLACE), so a file created between the
    check and the rename by someone else is not overwritten; move reports it as a conflict."""
    root = layout["root"]
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            safeio.rename_noreplace(fd, "a.txt", fd, "b.txt")  # no check before: the syscall itself refuses
        safeio.rename_noreplace(fd, "a.txt", fd, "c.txt")
    finally:
        os.close(fd)
    assert (root / "b.txt").read_text() == "b" and (root / "c.txt").read_text() == "a" and not (root / "a.txt").exists()
    (root / "d").mkdir()
    with pytest.raises(ConflictError, match="already exists"):
        safeio.move(str(root), root / "c.txt", root / "d")
    assert (root / "c.txt").read_text() == "a" and (root / "d").is_dir()
