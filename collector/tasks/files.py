"""The files family: create, append, edit, move, delete and find tasks, judged by the final workspace or answer."""

from __future__ import annotations

import random
from collections.abc import Callable

from collector.tasks._split import content_id, seeded_rng, split_of
from collector.tasks._words import DIRS, STEMS, code_token, paragraph, sentence
from collector.tasks.model import Task, VerifierSpec

__all__ = ["ANSWER_FORM", "FAMILY", "KINDS", "SYSTEM_PROMPT", "TOOLS", "generate", "path_answer"]

FAMILY = "files"
SYSTEM_PROMPT = (
    "You are a careful assistant working in a file workspace through tools. Paths are relative to the workspace "
    "root. Change only what you are asked to change, then reply with a short confirmation or the answer asked for."
)


# The files tools a task of each kind offers: what a good solution uses, plus listing and reading to look around
# (tool schemas are most of a prompt's length; the server has 13 tools).
LOOK = ["list_directory", "read_text_file"]
TOOLS = {
    "create": [*LOOK, "write_file"],
    "append": [*LOOK, "write_file", "edit_file"],
    "edit": [*LOOK, "edit_file", "write_file"],
    "move": [*LOOK, "move_file"],
    "delete": [*LOOK, "search_files", "delete_path"],
    "find_content": [*LOOK, "grep"],
    "find_name": [*LOOK, "search_files"],
}


def _make(kind: str, user: str, setup: dict[str, str], verifier: VerifierSpec, steps: int, **meta: object) -> Task:
    task_id = content_id(FAMILY, kind, user, sorted(setup.items()))
    return Task(
        id=task_id,
        family=FAMILY,
        split=split_of(task_id),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=["files"],
        tools={"files": list(TOOLS[kind])},
        setup_files=setup,
        optimal_steps=steps,
        verifier=verifier,
        metadata={"kind": kind, **meta},
    )


def _path(rng: random.Random, ext: str = "txt", nested: bool = True) -> str:
    name = f"{rng.choice(STEMS)}-{rng.randrange(10, 100)}.{ext}"
    return f"{rng.choice(DIRS)}/{name}" if nested and rng.random() < 0.7 else name


def _distractors(rng: random.Random, k: int, avoid: set[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    while len(files) < k:
        path = _path(rng, rng.choice(("txt", "md", "log")))
        if path not in avoid and path not in files:
            files[path] = paragraph(rng, rng.randint(2, 4))
    return files


def path_answer(path: str) -> VerifierSpec:
    """The answer is exactly `path` (optionally `./`-prefixed; case-sensitive), read from the reply's `Answer:`
    line: a list of paths, or the path inside a sentence, does not pass."""
    return VerifierSpec(type="exact", expected=[path, f"./{path}"], case_sensitive=True)


ANSWER_FORM = "End your reply with one line `Answer: <path>` giving that one path, relative to the workspace root."


def _create(rng: random.Random) -> Task:
    path = _path(rng)
    content = paragraph(rng, rng.randint(1, 3))
    user = f"Create the file `{path}` with exactly this content:\n```\n{content}```"
    spec = VerifierSpec(type="file_state", files={path: content})
    return _make("create", user, {}, spec, 1, path=path, content=content)


def _append(rng: random.Random) -> Task:
    path = _path(rng, "md")
    before = "".join(f"- {sentence(rng)}\n" for _ in range(rng.randint(2, 4)))
    line = f"- {sentence(rng)}"
    user = f"Add the line `{line}` at the end of `{path}`, keeping the existing lines as they are."
    setup = {path: before, **_distractors(rng, 2, {path})}
    spec = VerifierSpec(type="file_state", files={path: before + line + "\n"})
    return _make("append", user, setup, spec, 2, path=path, line=line)


def _edit(rng: random.Random) -> Task:
    path = f"config/{rng.choice(('app', 'server', 'worker', 'service'))}.cfg"
    key = rng.choice(("port", "timeout", "workers", "retries", "max_connections"))
    old, new = rng.randrange(2, 9000), rng.randrange(2, 9000)
    while new == old:
        new = rng.randrange(2, 9000)
    other = {"name": rng.choice(STEMS), "debug": rng.choice(("true", "false")), "region": rng.choice(DIRS)}
    lines = [f"{k} = {v}" for k, v in other.items()]
    lines.insert(rng.randrange(len(lines) + 1), f"{key} = {old}")
    before = "\n".join(lines) + "\n"
    after = before.replace(f"{key} = {old}\n", f"{key} = {new}\n")
    user = f"In `{path}`, change the value of `{key}` from {old} to {new}. Leave every other line unchanged."
    spec = VerifierSpec(type="file_state", files={path: after})
    return _make("edit", user, {path: before}, spec, 2, path=path, key=key, old=str(old), new=str(new))


def _move(rng: random.Random) -> Task:
    source = _path(rng, rng.choice(("txt", "md")), nested=False)
    content = paragraph(rng, 2)
    target_dir = rng.choice(DIRS)
    if rng.random() < 0.5:
        destination = f"{target_dir}/{source}"
        user = f"Move `{source}` into the folder `{target_dir}/`, keeping its name."
    else:
        destination = f"{target_dir}/{rng.choice(STEMS)}-final.{source.rsplit('.', 1)[1]}"
        user = f"Move `{source}` to `{destination}`."
    setup = {source: content, f"{target_dir}/index.md": f"# {target_dir}\n"}
    spec = VerifierSpec(type="file_state", files={source: None, destination: content})
    return _make("move", user, setup, spec, 1, source=source, destination=destination)


def _delete(rng: random.Random) -> Task:
    folder = rng.choice(DIRS)
    doomed = sorted({f"{folder}/{rng.choice(STEMS)}-{rng.randrange(10, 100)}.tmp" for _ in range(rng.randint(2, 3))})
    keep = _distractors(rng, 2, set(doomed))
    setup = {**{p: "scratch\n" for p in doomed}, **keep}
    user = f"Delete every `.tmp` file in the `{folder}/` folder. Do not touch any other file."
    expected: dict[str, str | None] = {p: None for p in doomed}
    expected.update(keep)
    spec = VerifierSpec(type="file_state", files=expected)
    return _make("delete", user, setup, spec, 1 + len(doomed), folder=folder, paths=doomed)


def _find_content(rng: random.Random) -> Task:
    token = code_token(rng, rng.choice(("INV", "ORD", "TKT", "REF")))
    files = _distractors(rng, rng.randint(3, 5), set())
    target = rng.choice(sorted(files))
    lines = files[target].splitlines()
    lines.insert(rng.randrange(len(lines) + 1), f"See {token} for the details.")
    files[target] = "\n".join(lines) + "\n"
    user = f"Which file in the workspace mentions `{token}`? {ANSWER_FORM}"
    spec = path_answer(target)
    return _make("find_content", user, files, spec, 1, token=token, answer=target)


def _find_name(rng: random.Random) -> Task:
    files = _distractors(rng, rng.randint(3, 5), set())
    ext = rng.choice(("csv", "json", "yaml"))
    target = _path(rng, ext)
    files[target] = "id,value\n1,2\n" if ext == "csv" else ("{}\n" if ext == "json" else "a: 1\n")
    user = f"There is exactly one `.{ext}` file in the workspace. What is its path? {ANSWER_FORM}"
    spec = path_answer(target)
    return _make("find_name", user, files, spec, 1, pattern=f"*.{ext}", answer=target)


KINDS: dict[str, Callable[[random.Random], Task]] = {
    "create": _create,
    "append": _append,
    "edit": _edit,
    "move": _move,
    "delete": _delete,
    "find_content": _find_content,
    "find_name": _find_name,
}
DEFAULT_SIZE = 210


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """Files tasks, cycling through the kinds (create, append, edit, move, delete, find_content, find_name).

    Args:
        seed: the generation seed; the same seed gives the same tasks.
        n: how many (default 210); duplicates by id are dropped.

    Returns:
        Tasks with `setup_files` and a file_state verifier, or, for find tasks, an exact verifier of the path on
        the reply's `Answer:` line.
    """
    count = DEFAULT_SIZE if n is None else n
    rng = seeded_rng(seed, FAMILY)
    kinds = list(KINDS.values())
    tasks: dict[str, Task] = {}
    attempts = 0
    while len(tasks) < count and attempts < count * 5:
        task = kinds[attempts % len(kinds)](rng)
        attempts += 1
        tasks.setdefault(task.id, task)
    return list(tasks.values())
