"""The code-repair family: a HumanEval module with one injected bug, a visible test file, and the hidden full tests.

The workspace holds `<name>.py` (the problem's prompt and canonical solution with one mutation, see
`collector.tasks._mutate`) and `test_<name>.py` (the first half of the problem's asserts, at most 5, runnable as
`python test_<name>.py`). The agent reads, runs the tests with the exec server, edits with the files server and
answers when done. The verifier runs the problem's full HumanEval tests, through the exec server's `run_tests`,
on `<name>.py` as the workspace holds it at the end: editing the visible tests changes nothing.

Only mutants that both the visible and the full tests reject are used (measured once, `_mutant_table`); each
problem gives up to `PER_PROBLEM` tasks with different kinds of bug. A task's split is its problem's split in the
`code` family (`code/humaneval-<n>`), so no problem is in the train split of one coding family and the test split
of another.
"""

from __future__ import annotations

import ast
from typing import Any, Literal

from collector.tasks._mutant_table import apply_edit, load_table, module_source, visible_check
from collector.tasks._mutate import OPERATORS, fix_edit, source_hash
from collector.tasks._split import split_of
from collector.tasks.code import load_problems
from collector.tasks.model import Task, VerifierSpec

__all__ = ["FAMILY", "PER_PROBLEM", "SYSTEM_PROMPT", "TOOLS", "generate", "problem_split", "test_file"]

FAMILY = "code-repair"
PER_PROBLEM = 3
SYSTEM_PROMPT = (
    "You are an expert Python programmer working in a repository through tools: read and edit files, and run "
    "commands in a sandbox whose working directory is the repository. Fix bugs in the code, not in the tests. "
    "When the tests pass, reply with a short summary of the fix."
)


def problem_split(task_id: str) -> Literal["train", "test"]:
    """The split of a HumanEval problem ("HumanEval/17"): the `code` family's split of `code/humaneval-17`."""
    return split_of(f"code/humaneval-{task_id.split('/')[-1]}")


def _imports(source: str, names_used: str, entry_point: str) -> list[str]:
    defined = [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    used = {n.id for n in ast.walk(ast.parse(names_used)) if isinstance(n, ast.Name)}
    return [entry_point] + [n for n in defined if n in used and n != entry_point]


def test_file(problem: dict[str, Any], check: str) -> str:
    """A test file for a problem's module: `check` (a `def check(candidate)` source) run on the entry point, as a
    `test_*` function and as a script."""
    entry = problem["entry_point"]
    names = ", ".join(_imports(module_source(problem), check, entry))
    return (
        f'"""Tests of {entry}. Run them with: python test_{entry}.py"""\n\nfrom {entry} import {names}\n\n\n'
        f"{check}\n\ndef test_{entry}():\n    check({entry})\n\n\n"
        f'if __name__ == "__main__":\n    test_{entry}()\n    print("all tests passed")\n'
    )


# Reading, listing and editing files, and running the visible tests (`python test_x.py`) in the sandbox: the tools a
# repair needs, of the 13 files and 3 exec tools (tool schemas are most of a prompt's length).
TOOLS = {"files": ["read_text_file", "list_directory", "edit_file"], "exec": ["run_shell"]}


def _pick(mutants: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to n mutants of different operators (in OPERATORS order, then the table's order)."""
    out: list[dict[str, Any]] = []
    for op in OPERATORS:
        out.extend([m for m in mutants if m["operator"] == op][:1])
    out.extend(m for m in mutants if m not in out)
    return out[:n]


def _task(problem: dict[str, Any], mutant: dict[str, Any], visible: tuple[str, int]) -> Task | None:
    entry = problem["entry_point"]
    original = module_source(problem)
    source = apply_edit(original, mutant["edit"])
    if source_hash(source) != mutant["hash"]:
        return None  # the table does not match this HumanEval data: leave the mutant out
    number = problem["task_id"].split("/")[-1]
    module, tests = f"{entry}.py", f"test_{entry}.py"
    tests_text, shown = visible
    old_text, new_text = fix_edit(source, original)
    user = (
        f"The tests in `{tests}` fail: `{module}` has a bug. Find it and fix `{module}` so that `{entry}` does "
        f"what its docstring says (do not change the tests). Run the tests with `python {tests}`."
    )
    task_id = f"{FAMILY}/humaneval-{number}/{mutant['id']}"
    return Task(
        id=task_id,
        family=FAMILY,
        split=problem_split(problem["task_id"]),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=["files", "exec"],
        tools={server: list(names) for server, names in TOOLS.items()},
        setup_files={module: source, tests: tests_text},
        optimal_steps=4,  # read the module and run the tests, edit, run the tests again
        verifier=VerifierSpec(type="unit_tests", test_code=problem["test"], entry_point=entry, solution_path=module),
        metadata={
            "kind": mutant["operator"],
            "source_id": problem["task_id"],
            "entry_point": entry,
            "module": module,
            "tests": tests,
            "visible_tests": shown,
            "mutant": {k: mutant[k] for k in ("id", "operator", "description", "line")},
            "fix": {"old_text": old_text, "new_text": new_text},
        },
    )


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """The code-repair tasks: up to PER_PROBLEM per HumanEval problem that has rejected mutants, in file order.

    Args:
        seed: unused (the set is fixed; the registry shuffles); accepted for a uniform family interface.
        n: keep only the first n tasks.

    Returns:
        Tasks with servers ["files", "exec"], the buggy module and the visible tests as setup files, and a
        unit_tests verifier of the full tests on the workspace's module.
    """
    table = load_table()
    tasks: list[Task] = []
    for problem in load_problems():
        entry = table.get(problem["task_id"])
        if not entry or not entry["mutants"]:
            continue
        check, shown = visible_check(problem["test"])
        visible = (test_file(problem, check), shown)
        for mutant in _pick(entry["mutants"], PER_PROBLEM):
            task = _task(problem, mutant, visible)
            if task is not None:
                tasks.append(task)
        if n is not None and len(tasks) >= n:
            return tasks[:n]
    return tasks
