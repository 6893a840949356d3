"""The test-writing family: a correct HumanEval function in the workspace; the agent writes its test file.

The workspace holds `<name>.py` (the problem's prompt and canonical solution: the function and its docstring). The
agent writes `test_<name>.py`. The verdict is a mutation score (`mutation_score` verifier,
`collector.verifiers._mutation`): the tests must pass on the correct module and fail on held-out mutants of it
(up to `MUTANTS` per problem, of different kinds, from the mutants that HumanEval's own tests reject, see
`_mutant_table`); passed when they pass on the correct module and reject at least `MIN_KILL` of the mutants.
A task's split is its problem's split in the `code` family, as for code-repair.
"""

from __future__ import annotations

import ast
from typing import Any

from collector.tasks._mutant_table import apply_edit, check_source, load_table, module_source
from collector.tasks._mutate import OPERATORS, source_hash
from collector.tasks.code import load_problems
from collector.tasks.code_repair import problem_split, test_file
from collector.tasks.model import Task, VerifierSpec

__all__ = ["FAMILY", "MIN_KILL", "MUTANTS", "SYSTEM_PROMPT", "TOOLS", "generate"]

FAMILY = "test-writing"
MUTANTS = 8
MIN_MUTANTS = 3  # problems with fewer rejected mutants make no task (one lucky assert would pass)
MIN_KILL = 0.6
SYSTEM_PROMPT = (
    "You are an expert Python programmer working in a repository through tools: read and write files, and run "
    "commands in a sandbox whose working directory is the repository. When the tests you wrote pass, reply with "
    "a short summary of what they check."
)
# Reading and listing files, writing (and fixing) the test file, and running it (`python test_x.py`) in the sandbox:
# the tools the task needs, of the 13 files and 3 exec tools (tool schemas are most of a prompt's length).
TOOLS = {"files": ["read_text_file", "list_directory", "write_file", "edit_file"], "exec": ["run_shell"]}


def _held_out(mutants: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    by_op = {op: [m for m in mutants if m["operator"] == op] for op in OPERATORS}
    out: list[dict[str, Any]] = []
    while len(out) < min(n, len(mutants)):
        for op in OPERATORS:
            if by_op[op] and len(out) < n:
                out.append(by_op[op].pop(0))
    return out


def _task(problem: dict[str, Any], mutants: list[str]) -> Task:
    entry = problem["entry_point"]
    source = module_source(problem)
    module, tests = f"{entry}.py", f"test_{entry}.py"
    names = [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    user = (
        f"`{module}` defines `{entry}`; its docstring says what it must do. Write tests for it in `{tests}`: "
        f"`test_*` functions with plain asserts, importing it with `from {entry} import {entry}`. The tests must "
        f"pass on the current code and catch bugs: they are scored by how many slightly wrong versions of "
        f"`{entry}` they reject. Call the tests under `if __name__ == \"__main__\":` and run them with "
        f"`python {tests}`."
    )
    number = problem["task_id"].split("/")[-1]
    expected = {"module": entry, "tests_path": tests, "source": source, "names": names, "mutants": mutants,
                "min_kill": MIN_KILL}
    return Task(
        id=f"{FAMILY}/humaneval-{number}",
        family=FAMILY,
        split=problem_split(problem["task_id"]),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=["files", "exec"],
        tools={server: list(names) for server, names in TOOLS.items()},
        setup_files={module: source},
        optimal_steps=3,  # read the module, write the tests, run them
        verifier=VerifierSpec(type="mutation_score", expected=expected, entry_point=entry),
        metadata={
            "kind": "humaneval",
            "source_id": problem["task_id"],
            "entry_point": entry,
            "module": module,
            "tests": tests,
            "expert_tests": test_file(problem, check_source(problem["test"])),
        },
    )


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """One test-writing task per HumanEval problem with at least MIN_MUTANTS rejected mutants, in file order.

    Args:
        seed: unused (the set is fixed; the registry shuffles); accepted for a uniform family interface.
        n: keep only the first n tasks.

    Returns:
        Tasks with servers ["files", "exec"], the correct module as a setup file and a mutation_score verifier.
    """
    table = load_table()
    tasks: list[Task] = []
    for problem in load_problems():
        entry = table.get(problem["task_id"])
        if not entry:
            continue
        original = module_source(problem)
        sources = [apply_edit(original, m["edit"]) for m in _held_out(entry["mutants"], MUTANTS)]
        checked = [s for s, m in zip(sources, _held_out(entry["mutants"], MUTANTS), strict=True)
                   if source_hash(s) == m["hash"]]
        if len(checked) < MIN_MUTANTS:
            continue
        tasks.append(_task(problem, checked))
        if n is not None and len(tasks) >= n:
            break
    return tasks
