"""User task suites: JSONL files with one Task per line, validated with errors that name the line and field."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from collector.errors import ConfigError, VerifierError
from collector.tasks._split import split_of
from collector.tasks.model import Task

__all__ = ["dump_jsonl_tasks", "load_jsonl_tasks"]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(line)"
        parts.append(f"field '{where}': {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def load_jsonl_tasks(path: str | Path) -> list[Task]:
    """Read a JSONL task file: one Task object per line (blank lines are skipped).

    A line without a "split" key is put in a split by its id (see `split_of`); a line with one keeps it.

    Args:
        path: the file.

    Returns:
        The tasks in file order.

    Raises:
        ConfigError: the file cannot be read, a line is not JSON, a line is not a valid Task (the message names
            the line number and the field), a verifier spec is invalid, or two lines share an id.
    """
    from collector.verifiers import validate_spec

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read task file {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"task file {str(p)!r} is not UTF-8 text") from None
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a JSON object (a task), got {type(raw).__name__}")
        try:
            task = Task.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{where}: invalid task: {_describe(exc)}") from None
        try:
            validate_spec(task.verifier)
        except VerifierError as exc:
            raise ConfigError(f"{where}: field 'verifier': {exc}") from None
        if not task.messages or not any(m.get("role") == "user" for m in task.messages):
            raise ConfigError(f"{where}: field 'messages': needs at least one message with role 'user'")
        if task.id in seen:
            raise ConfigError(f"{where}: duplicate task id {task.id!r} (first on line {seen[task.id]})")
        seen[task.id] = lineno
        if "split" not in raw:
            task = task.model_copy(update={"split": split_of(task.id)})
        tasks.append(task)
    return tasks


def dump_jsonl_tasks(tasks: list[Task], path: str | Path) -> None:
    """Write tasks as JSONL (the format `load_jsonl_tasks` reads)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        fh.writelines(task.model_dump_json(exclude_defaults=False) + "\n" for task in tasks)
