"""Experts of the agentic coding families: code-repair (read, run the tests, fix, run them again) and test-writing
(read, write a test file, run it).

They know what the task's metadata holds (the injected bug and its fix; HumanEval's tests), which decides their
actions; every action they show is one a model could take from what it has seen: the fix is an edit of lines the
expert read in the file, made after the tests it ran failed, and the tests it writes call the function it read.
"""

from __future__ import annotations

from typing import Any

from collector.errors import PolicyError
from collector.policies._expert_kit import Call, Episode, ToolOutput, answer, tool_turn

__all__ = ["code_repair", "test_writing"]


def _run(output: ToolOutput) -> dict[str, Any]:
    """The JSON result of a run_shell call ({} when it was an error or not JSON)."""
    return output.data if isinstance(output.data, dict) and not output.is_error else {}


def _file_text(output: ToolOutput) -> str | None:
    if output.is_error:
        return None
    data = output.data
    if isinstance(data, dict) and isinstance(data.get("content"), str):
        return str(data["content"])
    return output.text


def _last_error_line(run: dict[str, Any]) -> str:
    lines = [line for line in str(run.get("stderr") or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {run.get('exit_code')}"


def _summary(old: str, new: str, line: int) -> str:
    old_lines, new_lines = old.strip("\n").splitlines(), new.strip("\n").splitlines()
    changed = [(a.strip(), b.strip()) for a, b in zip(old_lines, new_lines, strict=False) if a != b]
    if len(old_lines) == len(new_lines) and len(changed) == 1:
        return f"line {line} read `{changed[0][0]}`; it should be `{changed[0][1]}`"
    return f"a branch was missing around line {line}; I restored it"


def code_repair(ep: Episode) -> dict[str, Any]:
    """Code-repair tasks: read the module and run the visible tests (one turn), fix the bug with edit_file, run
    the tests again, then say what was fixed."""
    meta = ep.task.metadata
    module, tests, fix = meta.get("module"), meta.get("tests"), meta.get("fix") or {}
    if not module or not tests or not fix.get("old_text"):
        raise PolicyError(f"code-repair task {ep.task.id!r} carries no module, tests or fix for the expert")
    command = f"python {tests}"
    if ep.step == 0:
        return tool_turn(ep, [Call("read_text_file", {"path": module}), Call("run_shell", {"command": command})])
    if ep.step == 1:
        text, run = _file_text(ep.last[0]), _run(ep.last[1])
        if text is None or not run:
            return answer(f"I could not read `{module}` or run its tests: {ep.last[0].text[:200]}")
        if run.get("exit_code") == 0:
            return answer(f"`{command}` already passes; I found nothing to fix in `{module}`.")
        if text.count(fix["old_text"]) != 1:
            return answer(f"`{module}` is not what I expected; I left it unchanged.")
        edit = {"path": module, "edits": [{"old_text": fix["old_text"], "new_text": fix["new_text"]}]}
        return tool_turn(ep, [Call("edit_file", edit)])
    if ep.step == 2:
        if ep.last[0].is_error:
            return answer(f"Editing `{module}` failed: {ep.last[0].text[:200]}")
        return tool_turn(ep, [Call("run_shell", {"command": command})])
    run = _run(ep.last[0])
    failure = _last_error_line(_run(ep.turns[0][1]))
    what = _summary(fix["old_text"], fix["new_text"], int((meta.get("mutant") or {}).get("line") or 0))
    if run.get("exit_code") != 0:
        return answer(f"I changed `{module}` ({what}), but `{command}` still fails: {_last_error_line(run)}")
    return answer(f"Fixed `{module}`: the tests failed with `{failure}`; {what}. `{command}` passes now.")


def test_writing(ep: Episode) -> dict[str, Any]:
    """Test-writing tasks: read the module, write the test file (tests whose expected values are the function's
    outputs), run it, then say what it covers."""
    meta = ep.task.metadata
    module, tests, content = meta.get("module"), meta.get("tests"), meta.get("expert_tests")
    if not module or not tests or not content:
        raise PolicyError(f"test-writing task {ep.task.id!r} carries no module, test path or tests for the expert")
    command = f"python {tests}"
    if ep.step == 0:
        return tool_turn(ep, [Call("read_text_file", {"path": module})])
    if ep.step == 1:
        if _file_text(ep.last[0]) is None:
            return answer(f"I could not read `{module}`: {ep.last[0].text[:200]}")
        return tool_turn(ep, [Call("write_file", {"path": tests, "content": content})])
    if ep.step == 2:
        if ep.last[0].is_error:
            return answer(f"Writing `{tests}` failed: {ep.last[0].text[:200]}")
        return tool_turn(ep, [Call("run_shell", {"command": command})])
    run = _run(ep.last[0])
    if run.get("exit_code") != 0:
        return answer(f"I wrote `{tests}`, but it fails on the current code: {_last_error_line(run)}")
    asserts = content.count("assert ")
    return answer(f"Wrote `{tests}` ({asserts} assertions on `{meta.get('entry_point')}`); `{command}` passes.")
