"""The weather family: lookups, unit conversions, forecasts and comparisons that need parallel calls."""

from __future__ import annotations

# Expected answers are computed when the tasks are generated, from the offline provider's pure library
# (`mcp_servers.weather.offline`), and stored in each task; verifying never imports the servers. This is the one place
# where the collector reads server-side data: the numbers a task expects are the provider's numbers for the same
# (city, date, units), so generated tasks and the served tools agree as long as the weather server runs the offline
# backend with the same `MCPGYM_WEATHER__FIXED_DATE` (default 2025-06-15).
import random
from collections import Counter
from collections.abc import Callable
from datetime import date
from functools import lru_cache
from typing import Any

from collector.errors import ConfigError
from collector.tasks._split import content_id, seeded_rng, split_of
from collector.tasks.model import Task, VerifierSpec

__all__ = ["FAMILY", "KINDS", "SYSTEM_PROMPT", "TOOLS", "answer_form", "answer_names", "generate", "weather_date"]

FAMILY = "weather"
SYSTEM_PROMPT = (
    "You are a weather assistant. Use the weather tools to look up current conditions and forecasts; when you need "
    "several independent lookups, make the calls in parallel in one turn. Answer briefly, with units."
)
DEFAULT_SIZE = 240
_MIN_GAP = {"temperature": 1.0, "wind_speed": 2.0, "relative_humidity_pct": 5}


def answer_form(value: str) -> str:
    """The sentence that declares a task's answer form: a final line `Answer: <value>` (what the verifier reads)."""
    return f"End your reply with one line `Answer: {value}`."


def weather_date() -> date:
    """The date the weather server treats as today (`MCPGYM_WEATHER__FIXED_DATE`, default 2025-06-15).

    Raises:
        ConfigError: the weather settings use the live backend or the real "today", so answers are not fixed.
    """
    from pydantic import ValidationError

    from mcp_servers.settings import ServerSettings

    try:
        settings = ServerSettings().weather
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid weather server setting {where!r} in the environment: {first['msg']}") from None
    if settings.backend != "offline" or not isinstance(settings.fixed_date, date):
        raise ConfigError(
            "weather tasks need the offline weather backend with a fixed date (MCPGYM_WEATHER__BACKEND=offline, "
            f"MCPGYM_WEATHER__FIXED_DATE=YYYY-MM-DD); got backend={settings.backend!r}, "
            f"fixed_date={settings.fixed_date!r}"
        )
    return settings.fixed_date


@lru_cache(maxsize=1)
def _places() -> tuple[tuple[str, Any], ...]:
    """(the name to ask about, City) for every built-in city whose name resolves back to it."""
    from mcp_servers.weather import offline

    counts = Counter(c.name for c in offline.CITIES)
    out = []
    for city in offline.CITIES:
        display = city.name if counts[city.name] == 1 else f"{city.name}, {city.admin1 or city.country}"
        if offline.resolve_city(display) == city:
            out.append((display, city))
    return tuple(out)


class _Gen:
    """Per-generation state: the provider, the date, and the rng."""

    def __init__(self, rng: random.Random, day: date) -> None:
        from mcp_servers.weather import offline

        self.rng = rng
        self.day = day
        self.offline = offline

    def places(self, k: int) -> list[tuple[str, Any]]:
        return self.rng.sample(_places(), k)

    def now(self, city: Any, units: str = "metric") -> Any:
        return self.offline.current(city, self.day, units)


# The weather tool a task of each kind needs (the only one offered: tool schemas are most of a prompt's length).
TOOLS = {"lookup": "get_current_weather", "imperial": "get_current_weather", "compare": "get_current_weather",
         "difference": "get_current_weather", "forecast": "get_forecast"}


def _make(kind: str, user: str, spec: VerifierSpec, steps: int, day: date, **meta: Any) -> Task:
    task_id = content_id(FAMILY, kind, user, day.isoformat())
    return Task(
        id=task_id,
        family=FAMILY,
        split=split_of(task_id),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=["weather"],
        tools={"weather": [TOOLS[kind]]},
        optimal_steps=steps,
        verifier=spec,
        metadata={"kind": kind, "date": day.isoformat(), **meta},
    )


def _lookup(g: _Gen) -> Task | None:
    ((name, city),) = g.places(1)
    field, label, unit, tol = g.rng.choice(
        (
            ("temperature", "temperature", "°C", 0.15),
            ("relative_humidity_pct", "relative humidity", "%", 0.5),
            ("wind_speed", "wind speed", "km/h", 0.15),
        )
    )
    value = getattr(g.now(city), field)
    user = f"What is the {label} in {name} right now? {answer_form(f'<number> {unit}')}"
    spec = VerifierSpec(type="numeric", expected=value, tolerance=tol, unit=unit)
    return _make("lookup", user, spec, 1, g.day, cities=[name], field=field, units="metric", answer=value)


def _imperial(g: _Gen) -> Task | None:
    ((name, city),) = g.places(1)
    field, label, unit = g.rng.choice((("temperature", "temperature", "°F"), ("wind_speed", "wind speed", "mph")))
    value = getattr(g.now(city, "imperial"), field)
    phrase = "in degrees Fahrenheit" if unit == "°F" else "in miles per hour"
    user = f"I use imperial units. What is the current {label} in {name}, {phrase}? {answer_form(f'<number> {unit}')}"
    spec = VerifierSpec(type="numeric", expected=value, tolerance=0.35, unit=unit)
    return _make("imperial", user, spec, 1, g.day, cities=[name], field=field, units="imperial", answer=value)


def _forecast(g: _Gen) -> Task | None:
    ((name, city),) = g.places(1)
    offset = g.rng.choice((1, 2, 3))
    which = g.rng.choice(("temperature_max", "temperature_min"))
    rows = g.offline.forecast(city, g.day, offset + 1, "metric").days
    value = getattr(rows[offset], which)
    when = {1: "tomorrow", 2: "the day after tomorrow", 3: "in three days"}[offset]
    word = "highest" if which == "temperature_max" else "lowest"
    user = f"What will the {word} temperature in {name} be {when}? {answer_form('<number> °C')}"
    spec = VerifierSpec(type="numeric", expected=value, tolerance=0.15, unit="°C")
    meta = {"cities": [name], "field": which, "days": offset + 1, "day_index": offset, "answer": value}
    return _make("forecast", user, spec, 1, g.day, **meta)


def _names(place: tuple[str, Any], chosen: list[tuple[str, Any]]) -> list[str]:
    """How an answer may name a place: as asked, its label, and its bare name unless another city shares it."""
    display, city = place
    shared = sum(1 for _, c in chosen if c.name == city.name) > 1
    return list(dict.fromkeys([display, city.label, *([] if shared else [city.name])]))


def answer_names(winner: str, cities: list[str]) -> list[str]:
    """The accepted names of the winning city of a compare task (as asked, its label, its bare name).

    Args:
        winner: the winner's name as the question wrote it.
        cities: every city of the question, as written.

    Raises:
        ConfigError: a name no longer resolves to a built-in city.
    """
    from mcp_servers.weather import offline

    chosen = []
    for name in cities:
        try:
            chosen.append((name, offline.resolve_city(name)))
        except Exception as exc:  # noqa: BLE001 - the provider's NotFoundError, reported as a config problem
            raise ConfigError(
                f"weather task names the city {name!r}, which the offline provider does not know: {exc}"
            ) from None
    place = next(p for p in chosen if p[0] == winner)
    return _names(place, chosen)


def _compare(g: _Gen) -> Task | None:
    k = g.rng.choice((2, 2, 3))
    chosen = g.places(k)
    field, question = g.rng.choice(
        (
            ("temperature", "Which is warmer right now"),
            ("temperature", "Which is colder right now"),
            ("wind_speed", "Where is it windier right now"),
            ("relative_humidity_pct", "Which is more humid right now"),
        )
    )
    values = [getattr(g.now(city), field) for _, city in chosen]
    pick_max = "colder" not in question
    ranked = sorted(values, reverse=pick_max)
    if abs(ranked[0] - ranked[1]) < _MIN_GAP[field]:
        return None  # too close to call: skip
    winner = chosen[values.index(ranked[0])]
    names = [n for n, _ in chosen]
    listed = " or ".join(names) if k == 2 else f"{', '.join(names[:-1])} or {names[-1]}"
    user = f"{question}: {listed}? {answer_form('<city>')} Name one city, as written here."
    spec = VerifierSpec(type="exact", expected=_names(winner, chosen))
    meta = {"cities": names, "field": field, "pick": "max" if pick_max else "min", "answer": winner[0]}
    return _make("compare", user, spec, k, g.day, **meta)


def _difference(g: _Gen) -> Task | None:
    (a, ca), (b, cb) = g.places(2)
    ta, tb = g.now(ca).temperature, g.now(cb).temperature
    diff = round(ta - tb, 1)
    user = (
        f"How many degrees Celsius warmer is it in {a} than in {b} right now? "
        f"Give the difference as a number (negative if it is colder). {answer_form('<number>')}"
    )
    spec = VerifierSpec(type="numeric", expected=diff, tolerance=0.15)
    return _make("difference", user, spec, 2, g.day, cities=[a, b], field="temperature", answer=diff)


KINDS: dict[str, Callable[[_Gen], Task | None]] = {
    "lookup": _lookup,
    "imperial": _imperial,
    "forecast": _forecast,
    "compare": _compare,
    "difference": _difference,
}


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """Weather tasks, cycling through the kinds (lookup, imperial, forecast, compare, difference).

    Args:
        seed: the generation seed; the same seed gives the same tasks.
        n: how many (default 240).

    Returns:
        Tasks for the weather server with numeric (tolerance, unit) or exact (city name) verifiers; each question
        asks for a final `Answer:` line.

    Raises:
        ConfigError: the weather settings do not fix the answers (see `weather_date`).
    """
    count = DEFAULT_SIZE if n is None else n
    g = _Gen(seeded_rng(seed, FAMILY), weather_date())
    kinds = list(KINDS.values())
    tasks: dict[str, Task] = {}
    attempts = 0
    while len(tasks) < count and attempts < count * 5:
        task = kinds[attempts % len(kinds)](g)
        attempts += 1
        if task is not None:
            tasks.setdefault(task.id, task)
    return list(tasks.values())
