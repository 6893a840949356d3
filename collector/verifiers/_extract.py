"""Answer parsing: the declared answer of a reply, normalizing text, finding numbers, math expressions and code blocks.

The built-in task families ask for a final line `Answer: <value>`; `answer_value` reads that line (or, in a reply
without one, the value after the last "the answer is", or else the whole reply). The checks that follow read only
that value, and an answer value that names more than one candidate (two numbers, two solutions, a list of names) is
refused rather than searched for the right one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from collector.verifiers._safe_math import MathParseError, Number, evaluate

__all__ = [
    "Ambiguous",
    "FoundNumber",
    "answer_value",
    "extract_code",
    "find_math_answer",
    "find_numbers",
    "list_items",
    "normalize",
    "pick_number",
    "remove_asides",
    "stated_numbers",
]

# -12, 3.5, 1,234.5, .5, 1e3 (the digits inside a word such as "H2O" are skipped by find_numbers)
_NUMBER_TOKEN = re.compile(r"[-+−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


class Ambiguous(ValueError):
    """The answer value names more than one candidate; `candidates` lists them (as written)."""

    def __init__(self, what: str, candidates: list[str]) -> None:
        super().__init__(f"the answer names more than one {what}: {', '.join(candidates[:5])}")
        self.candidates = candidates


# "Answer: Paris", "**Answer:** Paris", "Final answer: 12/5" at the start of a line
_ANSWER_LINE = re.compile(r"^[ \t>#*_-]*(?:final\s+)?answer[*_]*\s*[:：][*_]*[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_ANSWER_IS = re.compile(r"\b(?:final\s+)?answer\s+is\s*:?[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)


def answer_value(text: str) -> str:
    """The value a reply declares as its answer.

    In order: the rest of the last line that starts with `Answer:` (or `Final answer:`; markdown emphasis allowed;
    when that line is empty, the next non-empty line), else what follows the last "the answer is" on its line,
    else the whole reply.

    Args:
        text: the final reply.

    Returns:
        The answer value, stripped.
    """
    lines = list(_ANSWER_LINE.finditer(text))
    if lines:
        last = lines[-1]
        value = last.group(1).strip()
        if not value:
            rest = [line.strip() for line in text[last.end() :].splitlines() if line.strip()]
            value = rest[0] if rest else ""
        return value
    phrases = list(_ANSWER_IS.finditer(text))
    if phrases and phrases[-1].group(1).strip():
        return phrases[-1].group(1).strip()
    return text.strip()


def remove_asides(text: str) -> str:
    """The text without its parenthesized asides: "19.1 °C (feels like 17 °C)" -> "19.1 °C"."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\s*\([^()]*\)", "", text)
    return text.strip()


_LIST_SEPARATORS = re.compile(r"\s*(?:[,;|/\n]|\s(?:or|and|vs\.?|versus)\s)\s*(?:or\s+|and\s+)?", re.IGNORECASE)
_SHORT_ITEM_WORDS = 3


def list_items(text: str) -> list[str] | None:
    """The items of an answer that is a list of short alternatives ("London, Berlin or Paris"), else None.

    An answer is such a list when separators (comma, semicolon, slash, bar, line break, "or", "and", "vs") split it
    into two or more non-empty items of at most three words each; a sentence with a clause after a comma ("Paris,
    the capital of France") is not one.
    """
    items = [i.strip(" -*•\t.") for i in _LIST_SEPARATORS.split(text.strip())]
    items = [i for i in items if i]
    if len(items) >= 2 and all(len(i.split()) <= _SHORT_ITEM_WORDS for i in items):
        return items
    return None


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


_JOINED = re.compile(r"\s*(?:-|–|—|to|or|and|/|,)\s*$", re.IGNORECASE)


def _with_unit(text: str, unit: str) -> list[FoundNumber]:
    """The numbers of `text` that carry `unit`, and the bare numbers joined to one of them ("19 or 20 °C")."""
    numbers = find_numbers(text)
    carrying = [n for n in numbers if _unit_matches(n.after, unit)]
    chosen = []
    for i, number in enumerate(numbers):
        following = numbers[i + 1] if i + 1 < len(numbers) else None
        joined = (
            following is not None
            and following in carrying
            and _JOINED.fullmatch(text[number.end : following.start] or " ")
        )
        if number in carrying or joined:
            chosen.append(number)
    return chosen if carrying else []


def stated_numbers(text: str, unit: str | None = None) -> list[FoundNumber]:
    """The numbers an answer value states as its result.

    Parenthesized asides are left out ("19.1 °C (feels like 17 °C)" states 19.1). When `unit` is given, the numbers
    that carry it are the candidates, with a bare number joined to one of them as an alternative or a range ("19 or
    20 °C", "19-20 °C"); an aside is read for them only when the rest carries the unit nowhere ("21.3 °C (70.3 °F)"
    states 70.3 °F). Without a unit, or when no number carries it, every number outside the asides is a candidate.

    Args:
        text: the answer value (see `answer_value`).
        unit: the unit the question asked for ("°C", "km/h", "%").

    Returns:
        The candidate numbers, in order.
    """
    plain = remove_asides(text)
    if unit:
        found = _with_unit(plain, unit) or _with_unit(text, unit)
        if found:
            return found
    return find_numbers(plain)


def pick_number(text: str, unit: str | None = None) -> FoundNumber | None:
    """The one number an answer value states (see `stated_numbers`), or None when it states none.

    Raises:
        Ambiguous: it states several different numbers.
    """
    candidates = stated_numbers(text, unit)
    if not candidates:
        return None
    values = list(dict.fromkeys(n.value for n in candidates))
    if len(values) > 1:
        raise Ambiguous("number", [f"{v:g}" for v in values])
    return candidates[0]


_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_MATH_TOKEN = re.compile(
    r"\\d?frac\{[^{}]*\}\{[^{}]*\}|[-+−]?\(?\d[\d,]*(?:\.\d+)?(?:\s*[/*^]\s*\(?\d[\d,]*(?:\.\d+)?\)?)*\s*%?"
)


def _evaluates(text: str) -> Number | None:
    text = text.strip().rstrip(".").strip()
    if not text:
        return None
    try:
        return evaluate(text)
    except (MathParseError, RecursionError):
        return None


def _one_value(what: str, found: list[tuple[str, Number]]) -> tuple[str, Number] | None:
    values: dict[Number, str] = {}
    for text, value in found:
        values.setdefault(value, text)
    if len(values) > 1:
        raise Ambiguous(what, list(values.values()))
    return found[0] if found else None


def find_math_answer(text: str) -> tuple[str, Number] | None:
    """The value a reply gives to a math question, as (the text that was evaluated, its value).

    Reads the answer value (see `answer_value`): every `\\boxed{...}` of the reply when there is one, else the whole
    value as an expression (`12/5`, `2.4`, `40%`, `\\frac{12}{5}`), else what follows its last `=`, else the one
    number-like expression it contains. Equal values written twice ("12/5 = 2.4") are one candidate.

    Returns:
        (text, value), or None when no value is found.

    Raises:
        Ambiguous: the reply gives several different values ("3, not 12/5", two different boxed values).
    """
    boxed = [(b, v) for b in _BOXED.findall(text) if (v := _evaluates(b)) is not None]
    if boxed:
        return _one_value("value", boxed)
    value = answer_value(text)
    whole = _evaluates(value)
    if whole is not None:
        return value.strip().rstrip(".").strip(), whole
    if "=" in value:
        tail = value.rsplit("=", 1)[1].strip().rstrip(".").strip()
        got = _evaluates(tail)
        if got is not None:
            return tail, got
    tokens = [t.strip().rstrip(",").strip() for t in _MATH_TOKEN.findall(value) if t.strip().rstrip(",").strip()]
    return _one_value("value", [(t, v) for t in tokens if (v := _evaluates(t)) is not None])


def extract_code(text: str, *, language: str = "python", entry_point: str | None = None) -> str:
    """The code of an answer: the fenced block tagged `language` (or untagged) that defines `entry_point` when one
    is given (so a usage example after the solution is not taken for it), else the last such block, else the whole
    text when it has no fence at all.

    Raises:
        Ambiguous: several blocks define `entry_point` differently (two candidate solutions).
    """
    blocks = _FENCE.findall(text)
    if not blocks:
        return text.strip() + "\n" if text.strip() else ""
    tagged: list[str] = [body for tag, body in blocks if tag.lower() in (language, "py", "")] or [
        body for _, body in blocks
    ]
    if entry_point:
        defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
        defining = list(dict.fromkeys(b.strip() + "\n" for b in tagged if defines.search(b)))
        if len(defining) > 1:
            raise Ambiguous(f"definition of {entry_point}", [f"block {i}" for i in range(1, len(defining) + 1)])
        tagged = defining or tagged
    chosen: str = tagged[-1]
    return chosen if chosen.endswith("\n") else chosen + "\n"
