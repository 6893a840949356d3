"""A small safe evaluator for arithmetic answers: numbers, fractions, percents, + - * / ** and a few functions."""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

__all__ = ["MathParseError", "evaluate", "to_number"]

Number = Fraction | float

_MAX_EXPONENT = 64
_MAX_LEN = 200
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "π": math.pi}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs}


class MathParseError(ValueError):
    """The text is not an arithmetic expression this evaluator accepts."""


def _latex_to_python(text: str) -> str:
    s = text.strip().strip("$").strip()
    s = re.sub(r"\\left|\\right|\\!|\\,|\\;", "", s)
    for _ in range(3):  # nested \frac{..}{..}
        s = re.sub(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
    s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("×", "*").replace("÷", "/")
    s = s.replace("\\pi", "pi").replace("\\%", "%").replace("−", "-").replace("^", "**")
    s = s.replace("{", "(").replace("}", ")")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators: 1,234 -> 1234
    s = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", s)  # 25% -> (25/100)
    return s


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        value = node.value
        return Fraction(value) if isinstance(value, int) else Fraction(str(value))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _eval(node.operand)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise MathParseError("division by zero")
            return left / right
        if isinstance(node.op, ast.Pow):
            if abs(float(right)) > _MAX_EXPONENT or abs(float(left)) > 10**12:
                raise MathParseError(f"power too large (exponent at most {_MAX_EXPONENT})")
            if isinstance(left, Fraction) and isinstance(right, Fraction) and right.denominator == 1:
                if left == 0 and right < 0:
                    raise MathParseError("division by zero")
                exact: Fraction = left ** int(right)
                return exact
            try:
                result: float | complex = float(left) ** float(right)
            except (OverflowError, ZeroDivisionError) as exc:
                raise MathParseError(str(exc)) from None
            if isinstance(result, complex):
                raise MathParseError("complex result")
            return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        arg = _eval(node.args[0])
        if node.func.id == "abs":
            return Fraction(abs(arg)) if isinstance(arg, Fraction) else abs(arg)
        if arg < 0:
            raise MathParseError("sqrt of a negative number")
        root = math.sqrt(float(arg))
        return Fraction(round(root)) if round(root) ** 2 == arg else root
    raise MathParseError(f"unsupported syntax: {type(node).__name__}")


def evaluate(text: str) -> Number:
    """Evaluate an arithmetic expression safely (no names, attributes or calls beyond sqrt/abs).

    Accepts integers, decimals, fractions (`12/5`), percents (`40%`), `+ - * / ^ **`, parentheses, `pi`, `sqrt(x)`,
    LaTeX `\\frac{a}{b}` and `\\sqrt{x}`.

    Args:
        text: the expression.

    Returns:
        An exact Fraction where possible, else a float.

    Raises:
        MathParseError: the text is not such an expression.
    """
    if len(text) > _MAX_LEN:
        raise MathParseError(f"expression longer than {_MAX_LEN} characters")
    source = _latex_to_python(text)
    if not source:
        raise MathParseError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise MathParseError(f"not an arithmetic expression: {text!r}") from None
    return _eval(tree)


def to_number(value: object) -> Number:
    """Turn a spec's expected value (int, float or expression string) into a number.

    Raises:
        MathParseError: the value is neither a number nor an expression.
    """
    if isinstance(value, bool):
        raise MathParseError("a boolean is not a number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MathParseError("not a finite number")
        return Fraction(str(value))
    if isinstance(value, str):
        return evaluate(value)
    raise MathParseError(f"expected a number or an expression string, got {type(value).__name__}")
