"""Bugs made by mutating the syntax tree of a correct module, as small text edits of its source.

`mutants(source, first_line)` lists every single-site mutant of the code at or after `first_line` (a HumanEval
canonical solution, below the prompt), in a deterministic order. Each mutant changes one place of the source and
nothing else (formatting and comments stay), and is checked by parsing: its syntax tree must be exactly the
mutated tree, or it is not listed. The operators:

- `comparison`: `<` and `<=` (and `>`, `>=`) swapped, an ordering reversed (`<` to `>`), `==`/`!=`, `in`/`not in`,
  `is`/`is not` negated;
- `off_by_one`: a `range(...)` argument, an index or a slice bound given `+ 1` or `- 1`;
- `operator`: `+`/`-`, `*`/`//`/`/`/`%`/`**` replaced, `and`/`or` swapped, a `not` dropped;
- `swap_args`: the first two positional arguments of a call, or the operands of `-`, `/`, `//`, `%`, `**`, swapped;
- `drop_branch`: an `else`/`elif` branch removed, or an `if` without `else` removed;
- `constant`: an integer constant changed by one, `True`/`False` flipped.

Which mutants the tests reject is a property of the tests, measured once (`build_table`, run as
`python -m collector.tasks._mutate`) and shipped as `data/humaneval_mutants.json`; see `collector.tasks.code_repair`.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["OPERATORS", "Mutant", "fix_edit", "mutant_by_id", "mutants", "source_hash"]

OPERATORS = ("comparison", "off_by_one", "operator", "swap_args", "drop_branch", "constant")

_CMP: dict[type[ast.cmpop], list[type[ast.cmpop]]] = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_BINOP: dict[type[ast.operator], list[type[ast.operator]]] = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Add, ast.FloorDiv],
    ast.Div: [ast.Mult, ast.FloorDiv],
    ast.FloorDiv: [ast.Div, ast.Mod],
    ast.Mod: [ast.FloorDiv],
    ast.Pow: [ast.Mult],
}
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
    ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    """One single-site mutant of a module.

    Attributes:
        id: stable within the module: `<walk index>.<variant>` of the mutated node.
        operator: one of OPERATORS.
        description: what changed, e.g. "`<` became `<=`".
        source: the whole mutated module.
        line: the first line (1-based) that differs from the original.
    """

    id: str
    operator: str
    description: str
    source: str
    line: int


@dataclass(frozen=True)
class _Site:
    """One possible mutation of a node: what `_apply` does (`action`, with `arg`), and how it is reported."""

    operator: str
    description: str
    action: str
    arg: Any = None


_Parents = dict[int, tuple[Any, str, int | None]]


def _one(x: Any, op: type[ast.operator]) -> ast.expr:
    return ast.BinOp(left=x, op=op(), right=ast.Constant(1))


def _symbol(op: Any) -> str:
    return _SYMBOL[type(op) if not isinstance(op, type) else op]


def _compare_sites(node: ast.Compare) -> Iterator[_Site]:
    for k, op in enumerate(node.ops):
        for new in _CMP.get(type(op), []):
            yield _Site("comparison", f"`{_symbol(op)}` became `{_symbol(new)}`", "cmp", (k, new))


def _call_sites(node: ast.Call) -> Iterator[_Site]:
    args = node.args
    if len(args) >= 2 and not any(isinstance(a, ast.Starred) for a in args[:2]) and (
            ast.dump(args[0]) != ast.dump(args[1])):
        yield _Site("swap_args", "the first two arguments of a call were swapped", "swap_call")
    if isinstance(node.func, ast.Name) and node.func.id == "range":
        for k, arg in enumerate(args):
            if not isinstance(arg, (ast.Constant, ast.Starred)):  # constants are the `constant` operator's
                for op, sign in ((ast.Add, "+"), (ast.Sub, "-")):
                    yield _Site("off_by_one", f"a `range` argument got `{sign} 1`", "range", (k, op))


def _subscript_sites(node: ast.Subscript) -> Iterator[_Site]:
    target = node.slice
    for name in ["lower", "upper"] if isinstance(target, ast.Slice) else [None]:
        value = getattr(target, name) if name else target
        if value is None or isinstance(value, (ast.Constant, ast.Tuple, ast.Slice)):
            continue
        for op, sign in ((ast.Add, "+"), (ast.Sub, "-")):
            what = "a slice bound" if name else "an index"
            yield _Site("off_by_one", f"{what} got `{sign} 1`", "index", (name, op))


def _sites(node: ast.AST) -> Iterator[_Site]:
    """Every mutation of one node, in a fixed order."""
    if isinstance(node, ast.Compare):
        yield from _compare_sites(node)
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        eq = "=" if isinstance(node, ast.AugAssign) else ""
        for new in _BINOP.get(type(node.op), []):
            yield _Site("operator", f"`{_symbol(node.op)}{eq}` became `{_symbol(new)}{eq}`", "op", new)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _NON_COMMUTATIVE) and (
                ast.dump(node.left) != ast.dump(node.right)):
            yield _Site("swap_args", f"the operands of `{_symbol(node.op)}` were swapped", "swap_binop")
    elif isinstance(node, ast.BoolOp):
        new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield _Site("operator", f"`{_symbol(node.op)}` became `{_symbol(new_op)}`", "op", new_op)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield _Site("operator", "a `not` was dropped", "drop_not")
    elif isinstance(node, ast.Call):
        yield from _call_sites(node)
    elif isinstance(node, ast.Subscript):
        yield from _subscript_sites(node)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield _Site("constant", f"`{node.value}` became `{not node.value}`", "flip_bool")
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        for delta in (1, -1):
            yield _Site("constant", f"`{node.value}` became `{node.value + delta}`", "bump", delta)
    elif isinstance(node, ast.If):
        if node.orelse:
            yield _Site("drop_branch", "an `else`/`elif` branch was removed", "drop_else")
        else:
            yield _Site("drop_branch", "an `if` block was removed", "drop_if")


def _apply(n: Any, site: _Site, parents: _Parents) -> tuple[Any, ...]:
    """Mutate node `n` of a copied tree in place; return what to splice: ("expr", node) to re-print the node,
    ("replace", old, new) for a node replaced by another, ("lines", first, last) to delete lines of the original,
    ("drop_else", node), or ("none",) when the mutation does not apply."""
    action, arg = site.action, site.arg
    if action == "cmp":
        n.ops[arg[0]] = arg[1]()
    elif action == "op":
        n.op = arg()
    elif action == "swap_binop":
        n.left, n.right = n.right, n.left
    elif action == "swap_call":
        n.args[0], n.args[1] = n.args[1], n.args[0]
    elif action == "range":
        n.args[arg[0]] = _one(n.args[arg[0]], arg[1])
    elif action == "index":
        if arg[0]:
            setattr(n.slice, arg[0], _one(getattr(n.slice, arg[0]), arg[1]))
        else:
            n.slice = _one(n.slice, arg[1])
    elif action == "flip_bool":
        n.value = not n.value
    elif action == "bump":
        n.value = n.value + arg
    elif action == "drop_not":
        return ("replace", n, n.operand)
    elif action == "drop_else":
        n.orelse = []
        return ("drop_else", n)
    elif action == "drop_if":
        parent, field_name, index = parents[id(n)]
        body = getattr(parent, field_name)
        if index is None or len(body) < 2:
            return ("none",)
        del body[index]
        return ("lines", n.lineno, n.end_lineno)
    return ("expr", n)


def _parents(tree: ast.AST) -> _Parents:
    out: _Parents = {}
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        out[id(child)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                out[id(value)] = (parent, name, None)
    return out


def _splice(lines: list[str], first: int, col: int, last: int, end_col: int, text: str) -> str:
    """Replace the source from (first, col) to (last, end_col) (1-based lines, UTF-8 byte columns) with `text`."""
    head = lines[first - 1].encode()[:col].decode()
    tail = lines[last - 1].encode()[end_col:].decode()
    return "".join(lines[: first - 1]) + head + text + tail + "".join(lines[last:])


def _render(original: Any, new: ast.AST, lines: list[str], want: str) -> str | None:
    """The source with `original`'s text replaced by `new` printed, bare or in parentheses, whichever parses to
    exactly the mutated tree `want` (an ast.dump); None when neither does."""
    assert original.end_lineno is not None and original.end_col_offset is not None
    printed = ast.unparse(new)
    for text in (printed, f"({printed})"):
        candidate = _splice(lines, original.lineno, original.col_offset, original.end_lineno,
                            original.end_col_offset, text)
        try:
            if ast.dump(ast.parse(candidate)) == want:
                return candidate
        except SyntaxError:
            continue
    return None


def _delete_lines(lines: list[str], first: int, last: int, want: str) -> str | None:
    candidate = "".join(lines[: first - 1] + lines[last:])
    try:
        return candidate if ast.dump(ast.parse(candidate)) == want else None
    except SyntaxError:
        return None


def _else_line(node: ast.If, lines: list[str]) -> int | None:
    """The line of the `else:` or `elif` that starts `node`'s orelse."""
    for number in range(int(node.body[-1].end_lineno or 0) + 1, node.orelse[0].lineno + 1):
        if lines[number - 1].lstrip().startswith(("else", "elif")):
            return number
    return None


def mutants(source: str, first_line: int = 1) -> list[Mutant]:
    """Every single-site mutant of the code of `source` that starts at or after `first_line`.

    Args:
        source: a module's source (it must parse).
        first_line: mutate only nodes that start on this line or later (1-based), e.g. below a prompt.

    Returns:
        The mutants in a deterministic order (syntax-tree walk order, then variant), each checked to parse to
        exactly its mutated tree; a mutation whose text cannot be made so is left out.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    nodes = list(ast.walk(tree))
    out: list[Mutant] = []
    for index, node in enumerate(nodes):
        if getattr(node, "lineno", 0) < first_line or _in_docstring(node, tree):
            continue
        for variant, site in enumerate(_sites(node)):
            mutant = _make(tree, lines, index, site)
            if mutant is not None and mutant != source:
                line = next(i for i, (a, b) in enumerate(zip(lines + [""], mutant.splitlines(True) + [""]), 1)
                            if a != b)
                out.append(Mutant(f"{index}.{variant}", site.operator, site.description, mutant, line))
    return out


def _in_docstring(node: ast.AST, tree: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _make(tree: ast.AST, lines: list[str], index: int, site: _Site) -> str | None:
    work = copy.deepcopy(tree)
    target = list(ast.walk(work))[index]
    original = list(ast.walk(tree))[index]
    plan = _apply(target, site, _parents(work))
    if plan[0] == "none":
        return None
    if plan[0] == "replace":  # the node itself is replaced by another (a dropped `not`)
        _, old, new = plan
        parent, name, i = _parents(work)[id(old)]
        if i is None:
            setattr(parent, name, new)
        else:
            getattr(parent, name)[i] = new
        return _render(original, new, lines, ast.dump(work))
    if plan[0] == "expr":
        return _render(original, target, lines, ast.dump(work))
    if plan[0] == "lines":
        return _delete_lines(lines, plan[1], plan[2], ast.dump(work))
    if plan[0] == "drop_else":
        assert isinstance(original, ast.If)
        first = _else_line(original, lines)
        if first is None:
            return None
        return _delete_lines(lines, first, int(original.orelse[-1].end_lineno or 0), ast.dump(work))
    return None


def mutant_by_id(source: str, mutant_id: str, first_line: int = 1) -> Mutant | None:
    """The mutant of `source` with this id (see `mutants`), or None."""
    return next((m for m in mutants(source, first_line) if m.id == mutant_id), None)


def source_hash(text: str) -> str:
    """A short SHA-256 of a source text (to check that a recorded mutant is rebuilt identically)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fix_edit(mutant_source: str, original_source: str) -> tuple[str, str]:
    """The smallest whole-line edit that turns the mutant back into the original, as (old_text, new_text) for
    the files server's `edit_file`: old_text is taken from the mutant, with context lines added until it occurs
    exactly once there.

    Raises:
        ValueError: the two sources are equal.
    """
    old_lines = mutant_source.splitlines(keepends=True)
    new_lines = original_source.splitlines(keepends=True)
    blocks = [op for op in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes()
              if op[0] != "equal"]
    if not blocks:
        raise ValueError("the mutant equals the original")
    a1, a2, b1, b2 = blocks[0][1], blocks[-1][2], blocks[0][3], blocks[-1][4]
    while True:
        old = "".join(old_lines[a1:a2])
        if old.strip() and mutant_source.count(old) == 1:
            return old, "".join(new_lines[b1:b2])
        if a1 > 0:
            a1, b1 = a1 - 1, b1 - 1
        elif a2 < len(old_lines):
            a2, b2 = a2 + 1, b2 + 1
        else:
            return mutant_source, original_source
