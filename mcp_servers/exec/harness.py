"""The unit-test harness of `run_tests`: finds the tests in test code, runs each one, reports one line per test.

This file is stdlib-only on purpose: the server imports it to plan (count) the tests, and the sandbox runs the tests
with it (`_execute`), in the judge's process (`judge.py`) or, for the cases the judge cannot take, together with
the solution (`_run`, reported untrusted).

Counting rule (what `total` counts):

1. ``check(candidate)`` (HumanEval style, needs `entry_point`): every top-level statement of check's body that contains
   an ``assert`` is one test (an ``assert`` of a constant, such as HumanEval's ``assert True, "..."``, is not a test);
   the other statements run in order as set-up. A body without any assert counts as one test: the whole call.
2. otherwise, top-level ``test_*`` functions: each is one test, called without arguments.
3. otherwise, ``unittest.TestCase`` subclasses: each ``test*`` method is one test.
4. otherwise, top-level ``assert`` statements: each is one test; the other top-level statements are set-up.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["TestPlanError", "compile_tests", "plan_tests", "sandbox_plan"]


class TestPlanError(ValueError):
    """The test code has no tests, a syntax error, or needs an entry point it was not given."""

    __test__ = False  # not a pytest test class


def _has_assert(node: ast.AST) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False  # a definition is set-up; its asserts run only when something calls it
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert) and not isinstance(sub.test, ast.Constant):
            return True
    return False


def _label(node: ast.stmt, lines: list[str] | None) -> str:
    """The statement's source on one line (at most 200 characters); "" when `lines` is None (in the sandbox).

    `lines` is the source split once (`ast.get_source_segment` splits the whole source on every call: quadratic).
    """
    if lines is None or node.end_lineno is None or node.end_col_offset is None:
        return ""
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        text = lines[first].encode()[node.col_offset : node.end_col_offset].decode(errors="replace")
    else:
        head = lines[first].encode()[node.col_offset :].decode(errors="replace")
        tail = lines[last].encode()[: node.end_col_offset].decode(errors="replace")
        text = " ".join([head, *lines[first + 1 : last], tail])
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def plan_tests(test_code: str, entry_point: str | None = None) -> dict[str, Any]:
    """Find the tests in `test_code` by the counting rule in this module's docstring.

    Args:
        test_code: Python source of the tests.
        entry_point: Name of the solution's function passed to `check(candidate)`, when the tests use that style.

    Returns:
        {"kind": "check" | "functions" | "unittest" | "asserts", "tests": [{"name", "line"}, ...]}.

    Raises:
        TestPlanError: A syntax error, no tests found, or `check` without `entry_point`.
    """
    try:
        tree = ast.parse(test_code)
    except SyntaxError as exc:
        raise TestPlanError(f"test_code has a syntax error at line {exc.lineno}: {exc.msg}") from None
    plan = _plan(tree, test_code.replace("\r\n", "\n").replace("\r", "\n").split("\n"), entry_point)
    plan["names"], plan["imports"] = _free_names(tree)
    return plan


def _free_names(tree: ast.Module) -> tuple[list[str], list[str]]:
    """(names the tests read but never bind: those the solution may provide; top-level modules they import).

    The judge gives the tests the solution's functions and plain data under these names only.
    """
    loaded: set[str] = set()
    bound: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
                if isinstance(node, ast.Import):
                    imported.add(alias.name.split(".")[0])
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    return sorted(loaded - bound), sorted(imported)


def _statement_spans(body: list[ast.stmt], lines: list[str]) -> list[list[int]] | None:
    """The first and last line of each statement, when each begins its own line: its lines then compile alone
    (see `_unit_sources`). None when a statement does not (``a = 1; assert a``, a one-line ``def``)."""
    spans: list[list[int]] = []
    previous_end = 0
    for stmt in body:
        decorators = getattr(stmt, "decorator_list", [])
        start = decorators[0] if decorators else stmt
        first, last = start.lineno, stmt.end_lineno
        column = start.col_offset - (1 if decorators else 0)  # a decorator's "@" comes before its expression
        if last is None or first <= previous_end or first > len(lines):
            return None
        line = lines[first - 1]
        if len(line) - len(line.lstrip()) != column:
            return None
        previous_end = last
        spans.append([first, last])
    return spans


def _unit_sources(test_code: str, spans: list[list[int]], indented: bool) -> list[str]:
    """Each statement's own lines of `test_code` (`_statement_spans`), compilable alone: after ``if 1:`` when they
    are a function's body, whose lines keep their indentation (so multi-line strings stay exactly as written).

    The sandbox compiles these instead of parsing the tests into a syntax tree and compiling each statement's
    subtree (a third of the harness's time in a fresh process).
    """
    lines = test_code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = "if 1:\n" if indented else ""
    return [head + "\n".join(lines[first - 1 : last]) for first, last in spans]


def _code(unit: Any) -> Any:
    """A statement unit as a code object: compiled ahead, or compiled now from its source or syntax tree."""
    return unit if hasattr(unit, "co_code") else compile(unit, "<tests>", "exec")


def _check_body(tree: ast.Module) -> list[ast.stmt]:
    """The body of the test code's `check` function (the last one defined, as at run time)."""
    checks = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "check"]
    return checks[-1].body


def _plan(tree: ast.Module, lines: list[str] | None, entry_point: str | None) -> dict[str, Any]:
    """The plan of `plan_tests`; test names are left empty when `lines` is None (the sandbox does not need them).

    With `lines`, check and asserts plans also carry "spans" (`_statement_spans`, or None).
    """
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if "check" in funcs and entry_point:
        body = funcs["check"].body
        tests = [{"name": _label(s, lines), "line": s.lineno, "index": i} for i, s in enumerate(body) if _has_assert(s)]
        if not tests:
            tests = [{"name": f"check({entry_point})", "line": funcs["check"].lineno, "index": -1}]
        plan: dict[str, Any] = {"kind": "check", "tests": tests}
        if lines is not None:
            plan["spans"] = _statement_spans(body, lines)
        return plan
    names = [n for n in funcs if n.startswith("test")]
    if names:
        return {"kind": "functions", "tests": [{"name": n, "line": funcs[n].lineno} for n in names]}
    cases: list[dict[str, Any]] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any("TestCase" in ast.unparse(b) for b in node.bases):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    cases.append({"name": f"{node.name}.{item.name}", "line": item.lineno})
    if cases:
        return {"kind": "unittest", "tests": cases}
    tests = [
        {"name": _label(s, lines), "line": s.lineno, "index": i} for i, s in enumerate(tree.body) if _has_assert(s)
    ]
    if tests:
        plan = {"kind": "asserts", "tests": tests}
        if lines is not None:
            plan["spans"] = _statement_spans(tree.body, lines)
        return plan
    if "check" in funcs:
        raise TestPlanError("test_code defines check(candidate): pass entry_point, the name of the function to test")
    raise TestPlanError(
        "test_code contains no tests: write top-level assert statements, test_* functions, unittest.TestCase "
        "methods, or a check(candidate) function together with entry_point"
    )


def sandbox_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """The part of a plan (`plan_tests`) the sandbox needs, so that it need not parse the tests again: kind,
    statement indices (check, asserts) or names (functions, unittest), each statement's lines when known, and the
    names the solution may provide and the modules the tests import (`_free_names`)."""
    key = "name" if plan["kind"] in ("functions", "unittest") else "index"
    return {
        "kind": plan["kind"],
        "tests": [{key: t[key]} for t in plan["tests"]],
        "spans": plan.get("spans"),
        "names": plan.get("names", []),
        "imports": plan.get("imports", []),
    }


def compile_tests(test_code: str, plan: dict[str, Any]) -> bytes | None:
    """The test code compiled ahead, for a sandbox whose interpreter has the same bytecode format (see
    `Sandbox.code_magic`): `marshal` data of (module code or None, [each statement's code] or None).

    The sandbox then only loads code objects instead of compiling (RL scores many solutions against the same tests,
    so the server compiles them once). None when a statement does not compile alone (e.g. a ``return`` in
    check's body): the sandbox compiles it, and reports the error as that test's failure.
    """
    import marshal

    kind, spans = plan["kind"], plan.get("spans")
    try:
        module = None if kind == "asserts" else compile(test_code, "<tests>", "exec")
        units = None
        if kind in ("check", "asserts"):
            if spans is None:
                return None
            units = [compile(u, "<tests>", "exec") for u in _unit_sources(test_code, spans, kind == "check")]
    except (SyntaxError, ValueError):
        return None
    return marshal.dumps((module, units))


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]


def _emitters(nonce: str, out: int) -> tuple[Any, Any]:
    """(emit(record), passed(number)): write one result line to `out`, prefixed with the call's marker."""
    import json
    import os

    def emit(record: dict[str, Any]) -> None:
        os.write(out, (nonce + " " + json.dumps(record) + "\n").encode())

    def passed(number: int) -> None:  # the common record, without JSON encoding
        os.write(out, f'{nonce} {{"test": {number}, "ok": true}}\n'.encode())

    return emit, passed


def _units(test_code: str, plan: dict[str, Any]) -> tuple[Any, list[Any], ast.Module | None]:
    """(module code or None, each statement of check's body or of the module as a unit, syntax tree or None).

    The units are code (compiled by the server), source (`_unit_sources`) or one-statement syntax trees.
    """
    kind = plan["kind"]
    tree: ast.Module | None = None
    module: Any = None
    units: list[Any] = []
    if plan.get("compiled"):
        import marshal

        module, units = marshal.loads(plan["compiled"])
    elif kind in ("check", "asserts"):
        spans = plan.get("spans")
        if spans:
            units = _unit_sources(test_code, spans, indented=kind == "check")
        else:
            tree = ast.parse(test_code)
            nodes = _check_body(tree) if kind == "check" else tree.body
            units = [ast.Module(body=[s], type_ignores=[]) for s in nodes]
    return module, units or [], tree


def _execute(
    test_code: str, plan: dict[str, Any], ns: dict[str, Any], candidate: Any, emit: Any, passed: Any, judge: Any
) -> bool:
    """Run the test code's set-up, then each planned test, in `ns`, reporting each test through `emit`/`passed`.

    Args:
        candidate: What check(candidate) receives (check kind).
        judge: The judge (`judge._Judge`) when the solution runs in another process, else None: its `settle()`
            after each test gives the reason a test failed whatever the test caught (or raises to fall back), and
            its `dead` says why the tests not yet run fail.

    Returns:
        False when the set-up failed (reported as "fatal").
    """
    kind = plan["kind"]
    module, units, tree = _units(test_code, plan)
    planned = {t.get("index"): i for i, t in enumerate(plan["tests"])}

    def settle(number: int, error: str | None) -> None:
        reason = judge.settle() if judge is not None else None
        error = reason or error
        if error is None:
            passed(number)
        else:
            emit({"test": number, "ok": False, "error": error})

    def dead() -> str | None:
        return f"not run: {judge.dead}" if judge is not None and judge.dead else None

    try:
        if kind == "asserts":
            for index, unit in enumerate(units):
                if index not in planned:  # set-up, in order, before any test
                    exec(_code(unit), ns)  # noqa: S102 - intended
        else:
            exec(module or compile(test_code if tree is None else tree, "<tests>", "exec"), ns)  # noqa: S102
        trouble = judge.settle() if judge is not None else None
    except BaseException as exc:  # noqa: BLE001
        trouble = (judge.settle() if judge is not None else None) or _describe(exc)
    if trouble:
        emit({"fatal": f"the test code raised {trouble}"})
        return False
    if kind in ("check", "asserts"):
        if kind == "check":
            scope = dict(ns)
            check = ns["check"]
            scope[check.__code__.co_varnames[0] if check.__code__.co_argcount else "candidate"] = candidate
        else:
            scope = ns
        if -1 in planned:  # a check() without asserts: one test, the whole call
            error = None
            try:
                ns["check"](candidate)
            except BaseException as exc:  # noqa: BLE001
                error = _describe(exc)
            settle(0, error)
            return True
        broken: str | None = None
        for index, unit in enumerate(units):
            number = planned.get(index)
            if number is None and kind == "asserts":
                continue  # set-up already ran
            gone = dead()
            if (broken or gone) is not None and number is not None:
                emit({"test": number, "ok": False, "error": broken or gone})
                continue
            error = None
            try:
                exec(_code(unit), scope)  # noqa: S102 - intended
            except BaseException as exc:  # noqa: BLE001
                error = _describe(exc)
            if number is not None:
                settle(number, error)
            else:
                reason = judge.settle() if judge is not None else None
                if reason or error:
                    broken = f"set-up failed: {reason or error}"
    elif kind == "functions":
        for number, test in enumerate(plan["tests"]):
            error = dead()
            if error is None:
                try:
                    ns[test["name"]]()
                except BaseException as exc:  # noqa: BLE001
                    error = _describe(exc)
            settle(number, error)
    else:
        import unittest  # only here: the other kinds never pay its import

        for number, test in enumerate(plan["tests"]):
            error = dead()
            if error is None:
                cls_name, method = test["name"].split(".", 1)
                result = unittest.TestResult()
                ns[cls_name](method).run(result)
                problems = result.failures + result.errors
                if problems:
                    error = problems[0][1].strip().splitlines()[-1][:500]
            settle(number, error)
    return True


def _run(
    solution: str, test_code: str, entry_point: str | None, nonce: str, out: int, plan: dict[str, Any] | None
) -> None:
    """Run the solution and the tests in this one process (the judge's fallback, reported untrusted: the solution
    can reach everything here), one result line per test to `out`."""
    emit, passed = _emitters(nonce, out)
    if plan is None:
        plan = _plan(ast.parse(test_code), None, entry_point)
    ns: dict[str, Any] = {"__name__": "__solution__", "__builtins__": __builtins__}
    try:
        exec(compile(solution, "<solution>", "exec"), ns)  # noqa: S102 - intended
    except BaseException as exc:  # noqa: BLE001 - the solution's failure is the result
        emit({"fatal": f"the solution raised {_describe(exc)}"})
        return
    candidate = None
    if plan["kind"] == "check":
        if entry_point is None or entry_point not in ns:
            emit({"fatal": f"the solution defines no {entry_point!r} (the entry_point)"})
            return
        candidate = ns[entry_point]
    if _execute(test_code, plan, ns, candidate, emit, passed, None):
        emit({"done": True})
