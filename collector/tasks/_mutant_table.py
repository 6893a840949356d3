"""HumanEval mutants that the tests reject, measured once and shipped as `data/humaneval_mutants.json`.

Running every mutant of the 164 problems (about 2,600) through the sandbox each time tasks are generated would
take minutes, so the table is built once, offline, and the task families only read it:

    python -m collector.tasks._mutant_table            # rebuilds collector/tasks/data/humaneval_mutants.json

The build runs each mutant of a canonical solution (`collector.tasks._mutate`) in a forked child with a CPU and
memory limit (the code is this project's own: HumanEval's reference solutions and their mutants, never a model's)
against two checks: the visible tests (the first half of the problem's asserts, at most 5: what the code-repair
workspace shows) and the full tests. A mutant is kept when both reject it with an error or a failed assertion
within 2 seconds (a mutant that only hangs would make an episode wait for the exec timeout). For each problem at
most 12 are kept, taken round-robin over the operators so that every kind of bug appears. A mutant is stored as a
line edit of the original module plus a hash of the result, so loading rebuilds it without any syntax-tree work;
`tests/collector/test_code_repair.py` re-runs a sample through the real sandbox.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import signal
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from collector.errors import ConfigError
from collector.tasks._mutate import OPERATORS, Mutant, mutants, source_hash

__all__ = ["MAX_PER_PROBLEM", "apply_edit", "build_table", "check_source", "load_table", "module_source",
           "visible_check"]

MAX_PER_PROBLEM = 12
VISIBLE_MAX = 5
_TABLE = "humaneval_mutants.json"
_DEADLINE_S = 2


def module_source(problem: dict[str, Any]) -> str:
    """The correct module of a HumanEval problem: its prompt and canonical solution."""
    return str(problem["prompt"]) + str(problem["canonical_solution"])


def _check_def(test_code: str) -> ast.FunctionDef:
    tree = ast.parse(test_code)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise ConfigError("a HumanEval test without check(candidate)")
    return checks[-1]


def _is_test(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(stmt))


def check_source(test_code: str, visible: int | None = None) -> str:
    """`def check(candidate):` of a HumanEval test, with only its first `visible` tests (a top-level statement of
    the body with an assert) and the set-up before them; None keeps every test. Formatting is kept line by line."""
    check = _check_def(test_code)
    lines = test_code.splitlines(keepends=True)
    body = check.body
    if visible is not None:
        tests = [i for i, s in enumerate(body) if _is_test(s)]
        if len(tests) > visible:
            body = body[: tests[visible - 1] + 1] if visible else []
    head = "".join(lines[check.lineno - 1 : body[0].lineno - 1])
    return head + "".join(lines[body[0].lineno - 1 : body[-1].end_lineno]).rstrip() + "\n"


def visible_check(test_code: str) -> tuple[str, int]:
    """The visible tests of a problem: (check source, number of tests shown): the first half, 1 to 5."""
    total = sum(1 for s in _check_def(test_code).body if _is_test(s))
    shown = max(1, min(VISIBLE_MAX, (total + 1) // 2))
    return check_source(test_code, shown), shown


def _run_child(source: str, checks: list[str], entry_point: str) -> list[str]:
    """Run each check on the module's entry point in a forked child: "pass", "fail" or "hang" per check."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: limits, then the checks; never returns
        os.close(read)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
            resource.setrlimit(resource.RLIMIT_CPU, (_DEADLINE_S * len(checks) + 2,) * 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child exits right after

            class Hang(BaseException):
                pass

            def alarm(*_: Any) -> None:
                raise Hang

            signal.signal(signal.SIGALRM, alarm)
            out = []
            for check in checks:
                ns: dict[str, Any] = {"__name__": "__main__"}
                try:
                    signal.alarm(_DEADLINE_S)
                    exec(compile(source, "<module>", "exec"), ns)  # noqa: S102 - this project's own code
                    exec(compile(check, "<check>", "exec"), ns)  # noqa: S102
                    ns["check"](ns[entry_point])
                    out.append("pass")
                except Hang:
                    out.append("hang")
                except BaseException:  # noqa: BLE001 - any failure rejects
                    out.append("fail")
                finally:
                    signal.alarm(0)
            os.write(write, ",".join(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    got = data.decode().split(",") if data else []
    return got if len(got) == len(checks) else ["hang"] * len(checks)


def _diverse(kept: list[Mutant], limit: int) -> list[Mutant]:
    by_op = {op: [m for m in kept if m.operator == op] for op in OPERATORS}
    out: list[Mutant] = []
    while len(out) < min(limit, len(kept)):
        for op in OPERATORS:
            if by_op[op] and len(out) < limit:
                out.append(by_op[op].pop(0))
    return sorted(out, key=lambda m: [int(x) for x in m.id.split(".")])


def _edit(original: str, mutant: str) -> dict[str, Any]:
    a, b = original.splitlines(keepends=True), mutant.splitlines(keepends=True)
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    return {"at": start, "drop": end_a - start, "insert": "".join(b[start:end_b])}


def apply_edit(original: str, edit: dict[str, Any]) -> str:
    """The mutant's source from the original and its stored line edit."""
    lines = original.splitlines(keepends=True)
    lines[edit["at"] : edit["at"] + edit["drop"]] = edit["insert"].splitlines(keepends=True)
    return "".join(lines)


def build_table(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Measure which mutants of each problem the visible and the full tests reject (see the module docstring).

    Returns:
        {"problems": {task_id: {"visible_tests": n, "candidates": n, "mutants": [{"id", "operator",
        "description", "line", "edit", "hash"}]}}}.
    """
    table: dict[str, Any] = {}
    for problem in problems:
        source = module_source(problem)
        entry = problem["entry_point"]
        visible, shown = visible_check(problem["test"])
        full = check_source(problem["test"])
        if _run_child(source, [visible, full], entry) != ["pass", "pass"]:
            print(f"{problem['task_id']}: the canonical solution fails its own tests; skipped", file=sys.stderr)
            continue
        candidates = mutants(source, problem["prompt"].count("\n") + 1)
        kept = [m for m in candidates if _run_child(m.source, [visible, full], entry) == ["fail", "fail"]]
        chosen = _diverse(kept, MAX_PER_PROBLEM)
        table[problem["task_id"]] = {
            "visible_tests": shown,
            "candidates": len(candidates),
            "rejected": len(kept),
            "mutants": [
                {"id": m.id, "operator": m.operator, "description": m.description, "line": m.line,
                 "edit": _edit(source, m.source), "hash": source_hash(m.source)}
                for m in chosen
            ],
        }
        print(f"{problem['task_id']}: {len(candidates)} mutants, {len(kept)} rejected, kept {len(chosen)}",
              file=sys.stderr)
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}", "problems": table}


@lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The shipped table (see `build_table`).

    Raises:
        ConfigError: the data file is missing or unreadable.
    """
    try:
        text = resources.files("collector.tasks").joinpath("data", _TABLE).read_text(encoding="utf-8")
        problems: dict[str, Any] = json.loads(text)["problems"]
        return problems
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        raise ConfigError(f"the mutant table collector/tasks/data/{_TABLE} is missing or invalid: {exc}") from None


def _main() -> None:
    from collector.tasks.code import load_problems

    table = build_table(list(load_problems()))
    out = Path(__file__).parent / "data" / _TABLE
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(table, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    kept = sum(len(p["mutants"]) for p in table["problems"].values())
    print(f"wrote {out}: {len(table['problems'])} problems, {kept} mutants", file=sys.stderr)


if __name__ == "__main__":
    _main()
