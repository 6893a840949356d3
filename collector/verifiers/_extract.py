"""Answer parsing: normalizing text, finding numbers, math expressions and code blocks in a free-text answer."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from collector.verifiers._safe_math import MathParseError, Number, evaluate

__all__ = ["FoundNumber", "extract_code", "find_math_answer", "find_numbers", "normalize", "pick_number"]

# -12, 3.5, 1,234.5, .5, 1e3 (the digits inside a word such as "H2O" are skipped by find_numbers)
_NUMBER_TOKEN = re.compile(r"[-+−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class FoundNumber:
    """A number found in text, with what follows it (to match units)."""

    value: float
    start: int
    end: int
    after: str


def normalize(text: str, *, case_sensitive: bool = False) -> str:
    """Normalize an answer for comparison: Unicode NFKC, collapsed whitespace, no surrounding quotes or final
    punctuation, lower case unless `case_sensitive`."""
    s = unicodedata.normalize("NFKC", text).strip()
    s = re.sub(r"\s+", " ", s)
    s = s.strip(" \"'`*_")
    s = s.rstrip(" .!?;:")
    s = s.strip(" \"'`*_")
    return s if case_sensitive else s.casefold()


def find_numbers(text: str) -> list[FoundNumber]:
    """Every number in `text` in order of appearance, with the few characters that follow each one."""
    found: list[FoundNumber] = []
    for match in _NUMBER_TOKEN.finditer(text):
        start, end = match.span()
        if start > 0 and (text[start - 1].isalpha() or text[start - 1] == "_"):
            continue  # part of a word such as "H2O" or "x1"
        raw = match.group().replace(",", "").replace("−", "-")
        # a leading sign is only a sign when it is not glued to a previous number ("3-4" is a range)
        if raw[0] in "+-" and start > 0 and text[start - 1].isdigit():
            raw = raw[1:]
            start += 1
        try:
            value = float(raw)
        except ValueError:
            continue
        found.append(FoundNumber(value=value, start=start, end=end, after=text[end : end + 12]))
    return found


def _unit_matches(after: str, unit: str) -> bool:
    tail = unicodedata.normalize("NFKC", after).lstrip().casefold()
    u = unicodedata.normalize("NFKC", unit).strip().casefold()
    if not u:
        return False
    if tail.startswith(u):
        rest = tail[len(u) :]
        return not rest[:1].isalpha()
    if u.startswith("°") and tail.startswith(u[1:]):  # "21 C" for "°C"
        rest = tail[len(u) - 1 :]
        return not rest[:1].isalpha()
    return u.startswith("°") and tail.startswith("degrees " + u[1:])


def pick_number(text: str, unit: str | None = None) -> FoundNumber | None:
    """The number an answer states: the last one followed by `unit` when a unit is given and present, else the last
    number in the text (answers tend to end with their result)."""
    numbers = find_numbers(text)
    if not numbers:
        return None
    if unit:
        with_unit = [n for n in numbers if _unit_matches(n.after, unit)]
        if with_unit:
            return with_unit[-1]
    return numbers[-1]


_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_MATH_TOKEN = re.compile(
    r"\\d?frac\{[^{}]*\}\{[^{}]*\}|[-+−]?\(?\d[\d,]*(?:\.\d+)?(?:\s*[/*^]\s*\(?\d[\d,]*(?:\.\d+)?\)?)*\s*%?"
)


def find_math_answer(text: str) -> tuple[str, Number] | None:
    """The value an answer gives to a math question, as (the text that was evaluated, its value).

    Tries in order: the whole answer, the last `\\boxed{...}`, what follows the last `=` or "answer is", and the
    last number-like expression (`12/5`, `2.4`, `40%`, `\\frac{12}{5}`).
    """
    candidates: list[str] = [text]
    boxed = _BOXED.findall(text)
    if boxed:
        candidates.append(boxed[-1])
    tail = re.split(r"=|answer is|answer:|result is", text, flags=re.IGNORECASE)
    if len(tail) > 1:
        candidates.append(tail[-1].strip().rstrip(".").strip())
    tokens = [t.strip() for t in _MATH_TOKEN.findall(text) if t.strip()]
    if tokens:
        candidates.append(tokens[-1])
    for cand in candidates:
        cand = cand.strip().rstrip(".").strip()
        if not cand:
            continue
        try:
            return cand, evaluate(cand)
        except (MathParseError, RecursionError):
            continue
    return None


def extract_code(text: str, *, language: str = "python", entry_point: str | None = None) -> str:
    """The code of an answer: the last fenced block tagged `language` (or untagged) that defines `entry_point` when
    one is given (so a usage example after the solution is not taken for it), else the last such block, else the
    whole text when it has no fence at all."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text.strip() + "\n" if text.strip() else ""
    tagged: list[str] = [body for tag, body in blocks if tag.lower() in (language, "py", "")] or [
        body for _, body in blocks
    ]
    if entry_point:
        defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
        defining = [b for b in tagged if defines.search(b)]
        tagged = defining or tagged
    chosen: str = tagged[-1]
    return chosen if chosen.endswith("\n") else chosen + "\n"
