"""The tool-selection family: choose the one tool that serves a request among close distractors, or none at all.

Every task offers the tools of several servers: `weather` (current conditions, forecasts, geocoding), `almanac`
(past weather, air quality, sun times, unit conversion, day counts: names and descriptions close to the weather
tools), `search` (an encyclopedia); the sequential tasks that read a file offer `files` and `weather` instead (the
13 files tools and the almanac's together would make an SFT row longer than 5,120 tokens). Kinds:

- `select`: exactly one offered tool serves the request (the current temperature, a forecast high, a past day's
  high, the air quality index, a sunrise time);
- `no_tool`: none serves it. Either the message itself holds the answer (`from_context`: count a list, pick the
  first name alphabetically, read a time from a note, add two numbers), or nothing offered can do it
  (`unsupported`: a 30-day forecast, tomorrow's air quality, a UV index, an alarm); the right episode makes no call
  and, for `unsupported`, answers in the declared form "Sorry, I can't ...";
- `sequential`: two calls where the second needs the first's result (read a file that names a city, then look the
  city up; read a temperature, then convert it with the unit converter);
- `parallel`: two independent calls to different servers, made in one turn;
- `recover`: the request names a city as the user spelled it; the tool answers with an error that suggests the
  right name, and the agent calls again with it.

Verifier: `tool_use`: the calls made must be exactly the expected ones (name and arguments; a recovery's first,
failing call is optional), and the answer must have the declared form (one value; an answer that names several
candidates does not match). Expected values are computed when the tasks are generated, from the offline weather
provider and the almanac's pure library, as the weather family does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from collector.tasks._split import content_id, seeded_rng, split_of
from collector.tasks.model import Task, VerifierSpec
from collector.tasks.weather import _places, answer_form, weather_date

__all__ = ["FAMILY", "KINDS", "NO_TOOL_SHARE", "SORRY", "SYSTEM_PROMPT", "generate"]

FAMILY = "tool-selection"
DEFAULT_SIZE = 240
SERVERS = ["weather", "almanac", "search"]
FILE_SERVERS = ["files", "weather"]  # with the 13 files tools, the almanac would take a row over 5,120 tokens
SORRY = "Sorry, I can't"
SYSTEM_PROMPT = (
    "You are an assistant with tools from several services. Call a tool only when the request needs one, and only "
    "the tool that serves it; make independent calls in parallel in one turn. When a tool returns an error, read it "
    "and correct the call. If the message itself holds the answer, answer without calling any tool. If none of your "
    f'tools can do what is asked, call none: reply with one sentence that starts with "{SORRY}". Give exactly one '
    "answer, in the form the user asks for."
)
# the kinds in one cycle of generation: 2 of 8 tasks are no-tool tasks
_CYCLE = ("select", "no_tool", "select", "sequential", "select", "no_tool", "parallel", "recover")
NO_TOOL_SHARE = _CYCLE.count("no_tool") / len(_CYCLE)
_SORRY_PATTERN = r"\A\s*Sorry,?\s+I\s+(?:can[’']?t|cannot)\b"

# the lookups a request can need: (tool, what the answer reads from its result, the request's words, answer unit)
_LOOKUPS: dict[str, tuple[str, str, str, str]] = {
    "temperature": ("get_current_weather", "temperature", "the temperature in {city} right now", "°C"),
    "wind": ("get_current_weather", "wind_speed", "the wind speed in {city} right now", "km/h"),
    "humidity": ("get_current_weather", "relative_humidity_pct", "the relative humidity in {city} right now", "%"),
    "aqi": ("get_air_quality", "aqi", "the air quality index (AQI) in {city} right now", ""),
    "sunrise": ("get_sun_times", "sunrise", "the local time of sunrise in {city} today", "time"),
    "sunset": ("get_sun_times", "sunset", "the local time of sunset in {city} today", "time"),
}
_UNIT_WORDS = {
    "°C": ("°C", "C", "degrees", "degrees C", "degrees Celsius"),
    "km/h": ("km/h", "kph", "kilometers per hour"),
    "%": ("%", "percent"),
}
_FORM = {"°C": "<number> °C", "km/h": "<number> km/h", "%": "<number> %", "": "<number>", "time": "<HH:MM>"}


def _forms(value: Any, unit: str) -> list[str]:
    """Every accepted way to state `value` in the declared form: the number as the tool states it (or with one
    trailing zero), with or without its unit; a time as HH:MM (or H:MM)."""
    if unit == "time":
        hour, minute = str(value).split(":")
        return list(dict.fromkeys([str(value), f"{int(hour)}:{minute}"]))
    text = f"{abs(value):.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(abs(value))
    numbers = [text, f"{text}.0" if "." not in text else f"{text}0"]
    if value < 0:
        numbers = [sign + n for n in numbers for sign in ("-", "\u2212")]
    words = _UNIT_WORDS.get(unit, ())
    suffixes = [""] + [sep + w for w in words for sep in (("", " ") if len(w) <= 4 else (" ",))]
    return list(dict.fromkeys(n + s for n in numbers for s in suffixes))


def _answer_spec(*parts: tuple[Any, str]) -> VerifierSpec:
    """`exact` over the declared form: the value (or the values, separated by a semicolon) and nothing else, so an
    answer that names two candidates does not match; as with every `exact` check, the answer value may follow an
    `Answer:` label."""
    combos = [""]
    for i, (value, unit) in enumerate(parts):
        joins = [""] if i == 0 else ["; ", ";"]
        combos = [c + j + f for c in combos for j in joins for f in _forms(value, unit)]
    return VerifierSpec(type="exact", expected=combos)


def _city_names(display: str, city: Any) -> list[str]:
    """How a call may name a city: as asked, its bare name, its label, qualified by region or country."""
    names = [display, city.name, city.label, f"{city.name}, {city.country}"]
    if city.admin1:
        names.append(f"{city.name}, {city.admin1}")
    return list(dict.fromkeys(names))


class _Gen:
    """Per-generation state: the rng, today, the weather provider and the almanac library."""

    def __init__(self, rng: random.Random, day: date) -> None:
        from mcp_servers.almanac import data
        from mcp_servers.weather import offline

        self.rng = rng
        self.day = day
        self.offline = offline
        self.almanac = data

    def places(self, k: int) -> list[tuple[str, Any]]:
        return self.rng.sample(_places(), k)

    def value(self, lookup: str, city: Any) -> Any:
        """What the lookup's tool reports for the city today."""
        tool, field, _, _ = _LOOKUPS[lookup]
        if tool == "get_current_weather":
            return getattr(self.offline.current(city, self.day, "metric"), field)
        if tool == "get_air_quality":
            return self.almanac.air_quality(city.label, self.day).aqi
        return getattr(self.almanac.sun_times(city.label, None, self.day), field)

    def call(self, lookup: str, display: str, city: Any, location: str | None = None) -> dict[str, Any]:
        """The expected call of a lookup, with the ways to name the city, and the plan the expert follows."""
        tool = _LOOKUPS[lookup][0]
        expected: dict[str, Any] = {"name": tool, "arguments": {}, "accept": {"location": _city_names(display, city)}}
        if tool == "get_current_weather":
            expected["defaults"] = {"units": "metric"}
        if tool == "get_sun_times":
            expected["defaults"] = {"date": self.day.isoformat()}
        return {**expected, "plan": {"tool": tool, "arguments": {"location": location or display}}}


def _strip_plan(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k != "plan"}


def _make(
    g: _Gen,
    kind: str,
    user: str,
    calls: list[dict[str, Any]],
    answer_spec: VerifierSpec,
    *,
    servers: list[str] | None = None,
    ordered: bool = False,
    setup: dict[str, str] | None = None,
    steps: int | None = None,
    **meta: Any,
) -> Task:
    task_id = content_id(FAMILY, kind, user, g.day.isoformat())
    spec = VerifierSpec(type="tool_use", calls=[_strip_plan(c) for c in calls], ordered=ordered, answer=answer_spec)
    return Task(
        id=task_id,
        family=FAMILY,
        split=split_of(task_id),
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        servers=list(servers or SERVERS),
        setup_files=dict(setup or {}),
        optimal_steps=len(calls) if steps is None else steps,
        verifier=spec,
        metadata={"kind": kind, "date": g.day.isoformat(), "plan": [c["plan"] for c in calls if "plan" in c], **meta},
    )


def _lookup_task(g: _Gen) -> Task:
    lookup = g.rng.choice(("temperature", "wind", "humidity", "aqi", "sunrise", "sunset"))
    ((display, city),) = g.places(1)
    _, field, words, unit = _LOOKUPS[lookup]
    value = g.value(lookup, city)
    user = f"What is {words.format(city=display)}? {answer_form(_FORM[unit])}"
    call = g.call(lookup, display, city)
    return _make(
        g,
        "select",
        user,
        [call],
        _answer_spec((value, unit)),
        target=call["name"],
        fields=[field],
        units=[unit],
        answer=value,
    )


def _forecast_task(g: _Gen) -> Task:
    ((display, city),) = g.places(1)
    offset = g.rng.choice((1, 2, 3))
    which = g.rng.choice(("temperature_max", "temperature_min"))
    value = getattr(g.offline.forecast(city, g.day, offset + 1, "metric").days[offset], which)
    when = {1: "tomorrow", 2: "the day after tomorrow", 3: "in three days"}[offset]
    word = "highest" if which == "temperature_max" else "lowest"
    user = f"What will the {word} temperature in {display} be {when}? {answer_form(_FORM['°C'])}"
    call = {
        "name": "get_forecast",
        "arguments": {},
        "accept": {"location": _city_names(display, city)},
        "defaults": {"units": "metric"},
        "free": ["days"],
        "plan": {"tool": "get_forecast", "arguments": {"location": display, "days": offset + 1}},
    }
    return _make(
        g,
        "select",
        user,
        [call],
        _answer_spec((value, "°C")),
        target="get_forecast",
        fields=[f"days.{offset}.{which}"],
        units=["°C"],
        answer=value,
    )


def _history_task(g: _Gen) -> Task:
    ((display, city),) = g.places(1)
    past = g.day - timedelta(days=g.rng.randint(2, 60))
    which = g.rng.choice(("temperature_max", "temperature_min"))
    value = getattr(g.almanac.past_weather(city.label, past.isoformat(), g.day), which)
    word = "highest" if which == "temperature_max" else "lowest"
    user = f"What was the {word} temperature in {display} on {past.isoformat()}? {answer_form(_FORM['°C'])}"
    call = {
        "name": "get_weather_history",
        "arguments": {"date": past.isoformat()},
        "accept": {"location": _city_names(display, city)},
        "defaults": {"units": "metric"},
        "plan": {"tool": "get_weather_history", "arguments": {"location": display, "date": past.isoformat()}},
    }
    return _make(
        g,
        "select",
        user,
        [call],
        _answer_spec((value, "°C")),
        target="get_weather_history",
        fields=[which],
        units=["°C"],
        answer=value,
    )


def _select(g: _Gen) -> Task:
    return g.rng.choice((_lookup_task, _lookup_task, _forecast_task, _history_task))(g)


# no tool ----------------------------------------------------------------------------------------------------------

_NAMES = ("Ana", "Bo", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun")


def _from_context(g: _Gen) -> tuple[str, str, str]:
    """(sub-kind, request, the one accepted answer) for a request the message itself answers."""
    sub = g.rng.choice(("count", "first", "note", "sum"))
    if sub == "count":
        names = [n for n, _ in g.places(g.rng.randint(3, 7))]
        user = f"Here is my travel list: {'; '.join(names)}. How many cities are on it? "
        user += answer_form("<number>")
        return sub, user, str(len(names))
    if sub == "first":
        names = [n for n, _ in g.places(g.rng.randint(3, 5))]
        user = f"Which of these cities comes first in alphabetical order: {'; '.join(names)}? " + answer_form("<city>")
        return sub, user, min(names, key=str.casefold)
    if sub == "note":
        ((display, _),) = g.places(1)
        hhmm = f"{g.rng.randint(7, 18):02d}:{g.rng.choice(('00', '15', '30', '45'))}"
        who = g.rng.choice(_NAMES)
        note = f"Call with {who} about the {display} office at {hhmm}, then lunch."
        return sub, f'My note says: "{note}" At what time is the call? {answer_form("<HH:MM>")}', hhmm
    a, b = g.rng.randint(12, 480), g.rng.randint(12, 480)
    return sub, f"What is {a} plus {b}? {answer_form('<number>')}", str(a + b)


def _unsupported(g: _Gen) -> tuple[str, str, str]:
    """(sub-kind, request, why no offered tool serves it)."""
    ((display, _),) = g.places(1)
    sub = g.rng.choice(
        ("far_forecast", "aqi_forecast", "aqi_history", "old_history", "uv", "pollen", "alarm", "booking")
    )
    if sub == "far_forecast":
        days = g.rng.randint(20, 40)
        return (
            sub,
            f"What will the temperature be in {display} in {days} days?",
            "the forecast covers the next 16 days only",
        )
    if sub == "aqi_forecast":
        return (
            sub,
            f"What will the air quality index be in {display} tomorrow?",
            "the air quality tool reports the present only",
        )
    if sub == "aqi_history":
        past = g.day - timedelta(days=g.rng.randint(2, 30))
        return (
            sub,
            f"What was the air quality index in {display} on {past.isoformat()}?",
            "the air quality tool has no history",
        )
    if sub == "old_history":
        past = g.day - timedelta(days=g.rng.randint(400, 900))
        return (
            sub,
            f"What was the highest temperature in {display} on {past.isoformat()}?",
            "the weather history goes back one year only",
        )
    if sub == "uv":
        return sub, f"What is the UV index in {display} right now?", "none of my tools reports the UV index"
    if sub == "pollen":
        return sub, f"How high is the pollen count in {display} today?", "none of my tools reports pollen"
    if sub == "alarm":
        return sub, f"Set an alarm on my phone for sunrise in {display} tomorrow.", "none of my tools can set alarms"
    return sub, f"Book me a table for two at a restaurant in {display} tonight.", "none of my tools can make bookings"


def _no_tool(g: _Gen) -> Task:
    if g.rng.random() < 0.5:
        sub, user, expected = _from_context(g)
        spec = VerifierSpec(type="exact", expected=expected)
        return _make(g, "no_tool", user, [], spec, steps=0, sub="from_context", case=sub, answer=expected)
    sub, user, reason = _unsupported(g)
    spec = VerifierSpec(type="regex", pattern=_SORRY_PATTERN)
    return _make(g, "no_tool", user, [], spec, steps=0, sub="unsupported", case=sub, reason=reason)


# coordination and recovery ----------------------------------------------------------------------------------------

_FILE_LOOKUPS = ("temperature", "wind", "humidity")


def _sequential(g: _Gen) -> Task:
    if g.rng.random() < 0.6:
        lookup = g.rng.choice(_FILE_LOOKUPS)
        ((display, city),) = g.places(1)
        path = g.rng.choice(("trip.txt", "plans/trip.txt", "notes/travel.txt"))
        other = g.places(1)[0][0]
        text = f"Trip plan\nFrom: {other}\nDestination: {display}\nNotes: pack light\n"
        _, field, words, unit = _LOOKUPS[lookup]
        user = (
            f"My trip plan is in the file {path}. What is {words.format(city='my destination')}? "
            f"{answer_form(_FORM[unit])}"
        )
        read = {
            "name": "read_text_file",
            "arguments": {"path": path},
            "free": ["head", "tail", "offset", "limit"],
            "plan": {"tool": "read_text_file", "arguments": {"path": path}},
        }
        call = g.call(lookup, display, city)
        call["plan"]["arguments"]["location"] = {"from_file": "Destination"}
        value = g.value(lookup, city)
        return _make(
            g,
            "sequential",
            user,
            [read, call],
            _answer_spec((value, unit)),
            servers=FILE_SERVERS,
            ordered=True,
            setup={path: text},
            sub="file",
            fields=[field],
            units=[unit],
            answer=value,
        )
    ((display, city),) = g.places(1)
    target = g.rng.choice((("K", "kelvin"), ("F", "degrees Fahrenheit")))
    celsius = g.value("temperature", city)
    result = g.almanac.convert_units(celsius, "C", target[0]).result
    user = (
        f"Look up the temperature in {display} right now, then convert it to {target[1]} with the unit "
        f"converter tool. {answer_form('<number>')}"
    )
    first = g.call("temperature", display, city)
    convert = {
        "name": "convert_units",
        "arguments": {"value": celsius},
        "accept": {
            "from_unit": ["C", "°C", "celsius", "degC"],
            "to_unit": {"K": ["K", "kelvin"], "F": ["F", "°F", "fahrenheit", "degF"]}[target[0]],
        },
        "plan": {
            "tool": "convert_units",
            "arguments": {"value": {"from_result": "temperature"}, "from_unit": "C", "to_unit": target[0]},
        },
    }
    spec = _answer_spec((result, ""))
    return _make(
        g,
        "sequential",
        user,
        [first, convert],
        spec,
        ordered=True,
        sub="convert",
        fields=["result"],
        units=[""],
        answer=result,
    )


def _parallel(g: _Gen) -> Task:
    a, b = g.rng.sample(("temperature", "wind", "aqi", "sunset", "sunrise"), 2)
    while _LOOKUPS[a][0] == _LOOKUPS[b][0] or {_LOOKUPS[a][0], _LOOKUPS[b][0]} == {"get_air_quality", "get_sun_times"}:
        a, b = g.rng.sample(("temperature", "wind", "aqi", "sunset", "sunrise"), 2)
    (da, ca), (db, cb) = g.places(2)
    va, vb = g.value(a, ca), g.value(b, cb)
    ua, ub = _LOOKUPS[a][3], _LOOKUPS[b][3]
    user = (
        f"Two questions: what is {_LOOKUPS[a][2].format(city=da)}, and what is {_LOOKUPS[b][2].format(city=db)}? "
        + answer_form(f"{_FORM[ua]}; {_FORM[ub]}")
    )

    calls = [{**g.call(a, da, ca), "together": True}, {**g.call(b, db, cb), "together": True}]
    return _make(
        g,
        "parallel",
        user,
        calls,
        _answer_spec((va, ua), (vb, ub)),
        fields=[_LOOKUPS[a][1], _LOOKUPS[b][1]],
        units=[ua, ub],
        answer=[va, vb],
    )


def _typo(name: str, rng: random.Random) -> str:
    letters = list(name)
    spots = [i for i in range(1, len(letters) - 1) if letters[i].isalpha()]
    i = rng.choice(spots)
    how = rng.choice(("double", "drop", "swap"))
    if how == "double":
        letters.insert(i, letters[i])
    elif how == "drop":
        del letters[i]
    else:
        letters[i], letters[i + 1] = letters[i + 1], letters[i]
    return "".join(letters)


def _recover(g: _Gen) -> Task | None:
    from mcp_servers.errors import NotFoundError

    lookup = g.rng.choice(("temperature", "aqi", "sunset", "wind"))
    ((display, city),) = g.places(1)
    if len(city.name) < 5 or display != city.name:
        return None
    typo = _typo(city.name, g.rng)
    try:
        g.offline.resolve_city(typo)
        return None  # the misspelling is a known name: no error to recover from
    except NotFoundError as exc:
        match = re.search(r"did you mean: ([^;?]+)", str(exc))
        if match is None or match.group(1).strip() != city.label:
            return None  # the error would not point at the city
    _, field, words, unit = _LOOKUPS[lookup]
    value = g.value(lookup, city)
    user = f"What is {words.format(city=typo)}? {answer_form(_FORM[unit])}"
    first = g.call(lookup, typo, city, location=typo)
    first["accept"] = {"location": [typo]}
    first["optional"] = True
    second = g.call(lookup, display, city)
    second["plan"]["arguments"]["location"] = {"from_error": "did you mean"}
    return _make(
        g,
        "recover",
        user,
        [first, second],
        _answer_spec((value, unit)),
        ordered=True,
        typo=typo,
        city=city.label,
        fields=[field],
        units=[unit],
        answer=value,
    )


KINDS: dict[str, Callable[[_Gen], Task | None]] = {
    "select": _select,
    "no_tool": _no_tool,
    "sequential": _sequential,
    "parallel": _parallel,
    "recover": _recover,
}


def generate(seed: int = 0, n: int | None = None) -> list[Task]:
    """Tool-selection tasks, cycling select, no_tool, select, sequential, select, no_tool, parallel, recover (a quarter
    of the tasks are no-tool tasks).

    Args:
        seed: the generation seed; the same seed gives the same tasks.
        n: how many (default 240).

    Returns:
        Tasks over the weather, almanac and search servers (and files for some sequential ones), with `tool_use`
        verifiers.

    Raises:
        ConfigError: the weather settings do not fix the date (see `collector.tasks.weather.weather_date`).
    """
    count = DEFAULT_SIZE if n is None else n
    g = _Gen(seeded_rng(seed, FAMILY), weather_date())
    tasks: dict[str, Task] = {}
    attempts = 0
    while len(tasks) < count and attempts < count * 10:
        kind = _CYCLE[len(tasks) % len(_CYCLE)]
        attempts += 1
        task = KINDS[kind](g)
        if task is not None:
            tasks.setdefault(task.id, task)
    return list(tasks.values())
