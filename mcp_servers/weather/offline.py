"""The deterministic offline weather provider: numbers depend only on (city, date, units).

Values follow each city's climate normals (January and July means, annual precipitation and wet days), with
day-to-day weather drawn from a hash of the city and the date, so that the same question always gets the same
answer and a verifier can recompute it::

    from mcp_servers.weather import offline
    offline.current("Paris", "2025-06-15", "metric").temperature
"""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass
from datetime import date, timedelta

from mcp_servers.errors import NotFoundError, ToolInputError
from mcp_servers.weather.cities import CITIES, City, normalize_name
from mcp_servers.weather.models import (
    CurrentWeather,
    DailyWeather,
    Forecast,
    GeocodeResult,
    Location,
    Units,
    check_days,
    check_units,
    condition_for_code,
    unit_labels,
)

__all__ = [
    "CITIES",
    "DEFAULT_DATE",
    "City",
    "current",
    "day_weather",
    "find_cities",
    "forecast",
    "geocode",
    "parse_date",
    "resolve_city",
    "to_location",
    "today",
]

DEFAULT_DATE = date(2025, 6, 15)

_ALIASES: dict[str, str] = {
    "nyc": "new york",
    "new york city": "new york",
    "la": "los angeles",
    "sf": "san francisco",
    "washington dc": "washington",
    "washington d c": "washington",
    "st petersburg": "saint petersburg",
    "kiev": "kyiv",
    "bombay": "mumbai",
    "bangalore": "bengaluru",
    "calcutta": "kolkata",
    "saigon": "ho chi minh city",
    "peking": "beijing",
    "marrakech": "marrakesh",
    "rio": "rio de janeiro",
    "new delhi": "delhi",
    "mexico df": "mexico city",
}

_US_STATES: dict[str, str] = {
    "or": "oregon", "me": "maine", "tx": "texas", "ca": "california", "ma": "massachusetts", "va": "virginia",
    "wa": "washington", "nv": "nevada", "az": "arizona", "co": "colorado", "ut": "utah", "il": "illinois",
    "mn": "minnesota", "la": "louisiana", "ga": "georgia", "fl": "florida", "dc": "district of columbia",
    "ny": "new york", "hi": "hawaii", "ak": "alaska",
}  # fmt: skip

_BY_NAME: dict[str, list[City]] = {}
for _city in CITIES:
    _BY_NAME.setdefault(normalize_name(_city.name), []).append(_city)
for _names in _BY_NAME.values():
    _names.sort(key=lambda c: -c.population)


def today(fixed: date | str = DEFAULT_DATE) -> date:
    """The date the offline provider treats as today.

    Args:
        fixed: A date (or ISO string), or ``"today"`` for the clock's date (`WeatherSettings.fixed_date`).

    Returns:
        The date.
    """
    if fixed == "today":
        return date.today()
    return parse_date(fixed)


def parse_date(value: date | str) -> date:
    """Accept a `date` or an ISO ``YYYY-MM-DD`` string.

    Raises:
        ToolInputError: If the string is not an ISO date.
    """
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ToolInputError(f"date {value!r} is not an ISO date: use YYYY-MM-DD, e.g. 2025-06-15") from None


def _qualifier_matches(city: City, qualifier: str) -> bool:
    q = normalize_name(qualifier)
    if not q:
        return True
    fields = {normalize_name(city.admin1), normalize_name(city.country), city.country_code.lower()}
    if city.country_code == "US":
        fields.update({"usa", "us", "united states of america", "america"})
        if q in _US_STATES:
            q = _US_STATES[q]
    if city.country_code == "GB":
        fields.update({"uk", "great britain", "britain"})
    return q in fields


def find_cities(name: str) -> list[City]:
    """All built-in cities matching a name, most populous first.

    The name may carry qualifiers after commas (region, country or country code), e.g. ``"Portland, Maine"``,
    ``"Paris, FR"``, ``"London, Ontario, Canada"``. Matching ignores case, accents and punctuation, and knows a
    few common alternative names (``"NYC"``, ``"Bombay"``, ``"Kiev"``).

    Args:
        name: The place name.

    Returns:
        The matching cities (possibly empty).
    """
    head, *qualifiers = name.split(",")
    key = normalize_name(head)
    key = _ALIASES.get(key, key)
    return [c for c in _BY_NAME.get(key, []) if all(_qualifier_matches(c, q) for q in qualifiers)]


def _suggestions(name: str) -> list[str]:
    key = normalize_name(name.split(",")[0])
    candidates = list(_BY_NAME) + list(_ALIASES)
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    labels: list[str] = []
    for match in close:
        for city in _BY_NAME[_ALIASES.get(match, match)]:
            if city.label not in labels:
                labels.append(city.label)
    return labels[:5]


def resolve_city(name: str | City) -> City:
    """The one city a name refers to (the most populous when several match).

    Args:
        name: A place name as accepted by `find_cities`, or a `City`.

    Returns:
        The city.

    Raises:
        ToolInputError: If the name is empty.
        NotFoundError: If no built-in city matches; the message suggests near matches.
    """
    if isinstance(name, City):
        return name
    if not normalize_name(name):
        raise ToolInputError("location must name a city, e.g. 'Paris' or 'Portland, Maine'")
    matches = find_cities(name)
    if matches:
        return matches[0]
    same_name = _BY_NAME.get(_ALIASES.get(normalize_name(name.split(",")[0]), normalize_name(name.split(",")[0])))
    if same_name:
        known = "; ".join(c.label for c in same_name)
        raise NotFoundError(f"location {name!r}: no built-in city matches those qualifiers; known: {known}")
    hint = _suggestions(name)
    did_you_mean = f"; did you mean: {'; '.join(hint)}?" if hint else ""
    raise NotFoundError(
        f"location {name!r} is not a known city{did_you_mean} (the offline provider knows {len(CITIES)} major "
        "world cities; use geocode to look names up)"
    )


def to_location(city: City) -> Location:
    """The `Location` record of a built-in city."""
    return Location(
        name=city.name,
        admin1=city.admin1,
        country=city.country,
        country_code=city.country_code,
        latitude=city.latitude,
        longitude=city.longitude,
        elevation_m=float(city.elevation_m),
        timezone=city.timezone,
        population=city.population,
    )


def geocode(name: str, count: int = 10) -> GeocodeResult:
    """Look a place name up among the built-in cities.

    Args:
        name: A place name, optionally qualified (``"Cambridge, US"``).
        count: Maximum number of results.

    Returns:
        The matches, most populous first.

    Raises:
        ToolInputError: If the name is empty.
        NotFoundError: If nothing matches; the message suggests near matches.
    """
    matches = find_cities(name)
    if not matches:
        resolve_city(name)  # raises with suggestions
    return GeocodeResult(query=name, results=[to_location(c) for c in matches[:count]])


@dataclass(frozen=True)
class DayWeather:
    """One day's weather of one city, in metric units before rounding."""

    day: date
    t_min: float
    t_max: float
    precipitation_mm: float
    precipitation_probability_pct: int
    wind_max_kmh: float
    wind_direction_deg: int
    humidity_pct: int
    weather_code: int


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on ``parts``."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def day_weather(city: City | str, day: date | str) -> DayWeather:
    """The deterministic weather of one city on one day, in metric units (unrounded).

    Args:
        city: A `City` or a name accepted by `resolve_city`.
        day: The date.

    Returns:
        The day's numbers.
    """
    c = resolve_city(city)
    d = parse_date(day)
    key = c.key
    doy = d.timetuple().tm_yday
    mid = (c.jan_mean_c + c.jul_mean_c) / 2
    half = (c.jan_mean_c - c.jul_mean_c) / 2
    seasonal = mid + half * math.cos(2 * math.pi * (doy - 15) / 365.25)
    t = d.toordinal()
    swing = 0.4 + 0.6 * min(1.0, abs(c.latitude) / 40)
    anomaly = sum(
        amp * math.sin(2 * math.pi * t / period + 2 * math.pi * _unit(key, "phase", i))
        for i, (amp, period) in enumerate(((2.2, 6.3), (1.4, 11.1), (0.9, 27.4)))
    )
    anomaly = swing * (anomaly + (_unit(key, d, "jitter") - 0.5) * 1.2)
    p_wet = c.wet_days / 365
    wet = _unit(key, d, "rain") < p_wet
    aridity = min(1.0, max(0.0, 1 - c.precip_mm / 1200))
    mean = seasonal + anomaly - (1.5 if wet else 0.0)
    if wet:
        per_wet_day = c.precip_mm / max(c.wet_days, 1)
        amount = max(1.0, per_wet_day * -math.log(1 - _unit(key, d, "amount")))
        probability = 55 + int(40 * _unit(key, d, "prob"))
        if mean <= 0.5:
            code = 71 if amount < 2 else 73 if amount < 8 else 75
        elif amount > 15 and mean > 18 and _unit(key, d, "storm") > 0.6:
            code = 95
        else:
            code = 51 if amount < 1.5 else 61 if amount < 5 else 63 if amount < 15 else 65
    else:
        amount = 0.0
        probability = 5 + int(40 * p_wet * _unit(key, d, "prob"))
        cloud = _unit(key, d, "cloud") * (0.6 + 0.6 * p_wet)
        code = 0 if cloud < 0.25 else 1 if cloud < 0.45 else 2 if cloud < 0.7 else 3
        if cloud > 0.9 and p_wet > 0.25 and mean < 12:
            code = 45
    diurnal = (5 + 8 * aridity + min(c.elevation_m, 3000) / 1000) * (0.6 if wet else 0.75 if code == 3 else 1.0)
    windiness = 8 + 10 * _unit(key, "windiness")
    wind_max = windiness * (0.7 + 0.9 * _unit(key, d, "wind")) + (6 if wet else 0)
    humidity = 35 + 45 * (1 - aridity) + (15 if wet else 0) + 10 * (_unit(key, d, "humidity") - 0.5)
    return DayWeather(
        day=d,
        t_min=mean - diurnal / 2,
        t_max=mean + diurnal / 2,
        precipitation_mm=amount,
        precipitation_probability_pct=min(100, probability),
        wind_max_kmh=wind_max,
        wind_direction_deg=int(360 * _unit(key, d, "direction")),
        humidity_pct=int(min(100, max(5, humidity))),
        weather_code=code,
    )


def _temp(celsius: float, units: Units) -> float:
    return round(celsius * 9 / 5 + 32 if units == "imperial" else celsius, 1)


def _speed(kmh: float, units: Units) -> float:
    return round(kmh / 1.609344 if units == "imperial" else kmh, 1)


def _precip(mm: float, units: Units) -> float:
    return round(mm / 25.4, 2) if units == "imperial" else round(mm, 1)


def current(city: City | str, day: date | str = DEFAULT_DATE, units: str = "metric") -> CurrentWeather:
    """The weather "now" (12:00 local time on ``day``) at a built-in city.

    Args:
        city: A `City` or a name accepted by `resolve_city`.
        day: The date taken as today (the server uses `WeatherSettings.fixed_date`).
        units: ``"metric"`` or ``"imperial"``.

    Returns:
        The current conditions.

    Raises:
        NotFoundError: Unknown city.
        ToolInputError: Bad units or date.
    """
    u = check_units(units)
    c = resolve_city(city)
    w = day_weather(c, day)
    temp_c = w.t_min + 0.8 * (w.t_max - w.t_min)
    wind_kmh = w.wind_max_kmh * 0.6
    vapour = w.humidity_pct / 100 * 6.105 * math.exp(17.27 * temp_c / (237.7 + temp_c))
    apparent_c = temp_c + 0.33 * vapour - 0.70 * (wind_kmh / 3.6) - 4.0
    return CurrentWeather(
        location=to_location(c),
        time=f"{w.day.isoformat()}T12:00",
        units=u,
        unit_labels=unit_labels(u),
        temperature=_temp(temp_c, u),
        apparent_temperature=_temp(apparent_c, u),
        relative_humidity_pct=w.humidity_pct,
        precipitation=_precip(w.precipitation_mm / 8, u),
        wind_speed=_speed(wind_kmh, u),
        wind_direction_deg=w.wind_direction_deg,
        weather_code=w.weather_code,
        condition=condition_for_code(w.weather_code),
        source="offline",
    )


def forecast(city: City | str, start: date | str = DEFAULT_DATE, days: int = 7, units: str = "metric") -> Forecast:
    """A daily forecast of ``days`` days starting on ``start`` (today) at a built-in city.

    Args:
        city: A `City` or a name accepted by `resolve_city`.
        start: The first day (the server uses `WeatherSettings.fixed_date`).
        days: 1 to 16.
        units: ``"metric"`` or ``"imperial"``.

    Returns:
        The forecast.

    Raises:
        NotFoundError: Unknown city.
        ToolInputError: Bad units, days or date.
    """
    u = check_units(units)
    n = check_days(days)
    c = resolve_city(city)
    first = parse_date(start)
    rows: list[DailyWeather] = []
    for i in range(n):
        w = day_weather(c, first + timedelta(days=i))
        rows.append(
            DailyWeather(
                date=w.day.isoformat(),
                temperature_max=_temp(w.t_max, u),
                temperature_min=_temp(w.t_min, u),
                precipitation_sum=_precip(w.precipitation_mm, u),
                precipitation_probability_pct=w.precipitation_probability_pct,
                wind_speed_max=_speed(w.wind_max_kmh, u),
                weather_code=w.weather_code,
                condition=condition_for_code(w.weather_code),
            )
        )
    return Forecast(location=to_location(c), units=u, unit_labels=unit_labels(u), days=rows, source="offline")
