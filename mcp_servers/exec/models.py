"""Structured results of the exec tools (their fields become each tool's output schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ExecOutput", "TestFailure", "TestReport"]


class ExecOutput(BaseModel):
    """What run_python or run_shell produced."""

    exit_code: int | None = Field(description="Exit status; -N when killed by signal N; null when stopped by a limit.")
    stdout: str = Field(description="Standard output, cut at the output cap.")
    stderr: str = Field(description="Standard error, cut at the output cap.")
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = Field(False, description="The wall-clock limit stopped the run.")
    memory_exceeded: bool = Field(False, description="The memory limit was hit.")
    output_limit_exceeded: bool = Field(False, description="The run was stopped for printing past the output cap.")
    duration_s: float = 0.0


class TestFailure(BaseModel):
    """One failed test."""

    __test__ = False

    test: int = Field(description="Index of the test in the counting order (0-based).")
    name: str = Field(description="The test: an assert's source, a test function or a TestCase method.")
    line: int = Field(description="Line of the test in test_code.")
    error: str = Field(description="Why it failed, e.g. 'AssertionError' or 'ZeroDivisionError: division by zero'.")


class TestReport(BaseModel):
    """The outcome of run_tests: pass counts usable as a reward, and what failed."""

    __test__ = False

    passed: int = Field(description="Tests that passed.")
    total: int = Field(description="Tests found in test_code (see the counting rule in docs/exec.md).")
    failures: list[TestFailure] = Field(default_factory=list, description="The first failures (at most 20).")
    timed_out: bool = Field(False, description="The time limit stopped the run; unreported tests count as failed.")
    error: str | None = Field(None, description="Why the run could not complete, e.g. the solution raised on import.")
    duration_s: float = 0.0
    trusted: bool = Field(
        True,
        description="The tests were judged in a process the solution never ran in, so the solution could not forge "
        "the counts. False: they had to run in the solution's process (the tests pass it a callback or use its "
        "classes), where a solution could forge them; see `untrusted_reason`.",
    )
    untrusted_reason: str | None = Field(None, description="Why the report is not trusted (None when it is).")

    @property
    def ratio(self) -> float:
        """passed / total (0.0 when there are no tests)."""
        return self.passed / self.total if self.total else 0.0
