"""The almanac's pure library: deterministic answers for the built-in cities of the offline weather provider.

- past weather comes from the offline weather provider itself (`mcp_servers.weather.offline.day_weather`), so the
  history of a day agrees with what the forecast said about it;
- air quality is synthetic but stable: a function of the city, the day and that day's wind (windier days are
  cleaner), reported as a US-EPA-style index with its category;
- sunrise and sunset are computed from the city's coordinates (NOAA's solar equations), in the city's time zone;
- unit conversions and day counts are exact arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from mcp_servers.errors import ToolInputError
from mcp_servers.weather import offline
from mcp_servers.weather.models import Location, check_units, condition_for_code, unit_labels

__all__ = [
    "HISTORY_DAYS",
    "UNIT_GROUPS",
    "AirQuality",
    "Conversion",
    "DayCount",
    "PastWeather",
    "SunTimes",
    "air_quality",
    "convert_units",
    "days_between",
    "parse_iso_date",
    "past_weather",
    "sun_times",
]

HISTORY_DAYS = 365  # how far back the weather history goes

# unit -> (group, factor to the group's base unit); temperatures are handled apart (offsets)
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "mi": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "kg": ("mass", 1.0),
    "g": ("mass", 0.001),
    "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "km/h": ("speed", 1 / 3.6),
    "m/s": ("speed", 1.0),
    "mph": ("speed", 0.44704),
    "kn": ("speed", 1852 / 3600),
    "C": ("temperature", 0.0),
    "F": ("temperature", 0.0),
    "K": ("temperature", 0.0),
}
_ALIASES = {
    "°c": "C",
    "c": "C",
    "celsius": "C",
    "degc": "C",
    "°f": "F",
    "f": "F",
    "fahrenheit": "F",
    "degf": "F",
    "k": "K",
    "kelvin": "K",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "mile": "mi",
    "miles": "mi",
    "foot": "ft",
    "feet": "ft",
    "kilogram": "kg",
    "kilograms": "kg",
    "gram": "g",
    "grams": "g",
    "pound": "lb",
    "pounds": "lb",
    "lbs": "lb",
    "ounce": "oz",
    "ounces": "oz",
    "kph": "km/h",
    "kmh": "km/h",
    "knot": "kn",
    "knots": "kn",
    "kt": "kn",
}
UNIT_GROUPS: dict[str, list[str]] = {}
for _unit_name, (_group, _) in _UNITS.items():
    UNIT_GROUPS.setdefault(_group, []).append(_unit_name)
_AQI_CATEGORIES = (
    (50, "good"),
    (100, "moderate"),
    (150, "unhealthy for sensitive groups"),
    (200, "unhealthy"),
    (300, "very unhealthy"),
    (500, "hazardous"),
)


class PastWeather(BaseModel):
    """The observed weather of one past day."""

    location: Location
    date: str = Field(description="The day, ISO 8601")
    units: str
    unit_labels: dict[str, str]
    temperature_max: float
    temperature_min: float
    precipitation_sum: float
    wind_speed_max: float
    condition: str
    source: str = "offline"


class AirQuality(BaseModel):
    """Air quality at one place now."""

    location: Location
    time: str = Field(description="Local time of the measurement, ISO 8601")
    aqi: int = Field(description="Air quality index, 0 (clean) to 500 (hazardous), US EPA scale")
    category: str
    pm2_5: float = Field(description="Fine particles, µg/m³")
    pm10: float = Field(description="Coarse particles, µg/m³")
    dominant_pollutant: str
    source: str = "offline"


class SunTimes(BaseModel):
    """Sunrise and sunset of one day at one place, in local time."""

    location: Location
    date: str
    timezone: str
    sunrise: str | None = Field(description="HH:MM local time; null during polar day or night")
    sunset: str | None = Field(description="HH:MM local time; null during polar day or night")
    day_length: str = Field(description="HH:MM of daylight")
    note: str | None = None


class Conversion(BaseModel):
    """One converted quantity."""

    value: float
    from_unit: str
    to_unit: str
    result: float = Field(description="The converted value, rounded to 2 decimals")


class DayCount(BaseModel):
    """Days from one date to another."""

    start: str
    end: str
    days: int = Field(description="end minus start, in days (negative when end is earlier)")


def parse_iso_date(value: str, what: str) -> date:
    """A YYYY-MM-DD date.

    Raises:
        ToolInputError: the value is not an ISO date (the message names the argument and the accepted form).
    """
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ToolInputError(f"{what} {value!r} is not an ISO date: use YYYY-MM-DD, e.g. 2025-06-01") from None


def past_weather(location: str, day: str, today: date, units: str = "metric") -> PastWeather:
    """The weather of a past day (yesterday back to `HISTORY_DAYS` days ago).

    Raises:
        ToolInputError: a bad date, or one outside the history (today and later belong to the forecast).
        NotFoundError: an unknown city.
    """
    u = check_units(units)
    when = parse_iso_date(day, "date")
    if when >= today:
        raise ToolInputError(
            f"date {when.isoformat()} is not in the past: the history ends yesterday ({today - timedelta(days=1)}); "
            "use the weather server's get_current_weather or get_forecast for today and later"
        )
    if (today - when).days > HISTORY_DAYS:
        raise ToolInputError(f"date {when.isoformat()} is too old: the history goes back {HISTORY_DAYS} days")
    city = offline.resolve_city(location)
    w = offline.day_weather(city, when)
    imperial = u == "imperial"

    def temp(c: float) -> float:
        return round(c * 9 / 5 + 32 if imperial else c, 1)

    return PastWeather(
        location=offline.to_location(city),
        date=when.isoformat(),
        units=u,
        unit_labels=unit_labels(u).model_dump(),
        temperature_max=temp(w.t_max),
        temperature_min=temp(w.t_min),
        precipitation_sum=round(w.precipitation_mm / 25.4, 2) if imperial else round(w.precipitation_mm, 1),
        wind_speed_max=round(w.wind_max_kmh / 1.609344 if imperial else w.wind_max_kmh, 1),
        condition=condition_for_code(w.weather_code),
    )


def _unit_interval(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def air_quality(location: str, today: date) -> AirQuality:
    """Air quality now (12:00 local time of `today`) in a built-in city.

    Raises:
        NotFoundError: an unknown city.
    """
    city = offline.resolve_city(location)
    wind = offline.day_weather(city, today).wind_max_kmh
    size = math.log10(max(city.population or 10_000, 10_000))  # 4 (small town) .. ~7.5 (megacity)
    pm25 = (2.0 + 5.0 * (size - 4.0) + 16.0 * _unit_interval("pm25", city.label, today)) * 18.0 / (10.0 + wind)
    pm25 = round(max(pm25, 1.0), 1)
    pm10 = round(pm25 * (1.4 + 0.8 * _unit_interval("pm10", city.label, today)), 1)
    aqi = _pm25_aqi(pm25)
    category = next(name for top, name in _AQI_CATEGORIES if aqi <= top)
    return AirQuality(
        location=offline.to_location(city),
        time=f"{today.isoformat()}T12:00",
        aqi=aqi,
        category=category,
        pm2_5=pm25,
        pm10=pm10,
        dominant_pollutant="pm2_5" if pm25 * 2.2 >= pm10 else "pm10",
    )


def _pm25_aqi(pm25: float) -> int:
    """The US EPA index of a PM2.5 concentration (linear between breakpoints)."""
    points = (
        (0.0, 9.0, 0, 50),
        (9.1, 35.4, 51, 100),
        (35.5, 55.4, 101, 150),
        (55.5, 125.4, 151, 200),
        (125.5, 225.4, 201, 300),
        (225.5, 325.4, 301, 500),
    )
    c = math.floor(pm25 * 10) / 10
    for lo, hi, ilo, ihi in points:
        if c <= hi:
            return round((ihi - ilo) / (hi - lo) * (max(c, lo) - lo) + ilo)
    return 500


def _hhmm(minutes: float) -> str:
    minutes = round(minutes)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def sun_times(location: str, day: str | None, today: date) -> SunTimes:
    """Sunrise and sunset in a built-in city on `day` (default `today`), local time, to the minute.

    Raises:
        ToolInputError: a bad date.
        NotFoundError: an unknown city.
    """
    city = offline.resolve_city(location)
    when = today if day in (None, "") else parse_iso_date(str(day), "date")
    n = when.timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (n - 1)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    lat = math.radians(city.latitude)
    cos_ha = math.cos(math.radians(90.833)) / (math.cos(lat) * math.cos(decl)) - math.tan(lat) * math.tan(decl)
    tz_name = city.timezone or "UTC"
    if abs(cos_ha) > 1:
        polar_day = cos_ha < -1
        return SunTimes(
            location=offline.to_location(city),
            date=when.isoformat(),
            timezone=tz_name,
            sunrise=None,
            sunset=None,
            day_length="24:00" if polar_day else "00:00",
            note="polar day: the sun does not set" if polar_day else "polar night: the sun does not rise",
        )
    ha = math.degrees(math.acos(cos_ha))
    midnight = datetime(when.year, when.month, when.day, tzinfo=UTC)
    zone = ZoneInfo(tz_name)

    def local(minutes_utc: float) -> str:
        moment = (midnight + timedelta(minutes=round(minutes_utc))).astimezone(zone)
        return f"{moment.hour:02d}:{moment.minute:02d}"

    rise = 720 - 4 * (city.longitude + ha) - eqtime
    set_ = 720 - 4 * (city.longitude - ha) - eqtime
    return SunTimes(
        location=offline.to_location(city),
        date=when.isoformat(),
        timezone=tz_name,
        sunrise=local(rise),
        sunset=local(set_),
        day_length=_hhmm(round(set_) - round(rise)),
    )


def _canonical_unit(unit: str, what: str) -> str:
    text = str(unit).strip()
    if text in _UNITS:
        return text
    key = text.casefold().replace(" ", "")
    if key in _ALIASES:
        return _ALIASES[key]
    if key in {u.casefold() for u in _UNITS}:
        return next(u for u in _UNITS if u.casefold() == key)
    accepted = "; ".join(f"{g}: {', '.join(units)}" for g, units in UNIT_GROUPS.items())
    raise ToolInputError(f"{what} {unit!r} is not a known unit; accepted: {accepted}")


def _to_celsius(value: float, unit: str) -> float:
    return {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[unit]


def _from_celsius(value: float, unit: str) -> float:
    return {"C": value, "F": value * 9 / 5 + 32, "K": value + 273.15}[unit]


def convert_units(value: float, from_unit: str, to_unit: str) -> Conversion:
    """Convert a quantity between units of the same kind (length, mass, speed, temperature).

    Raises:
        ToolInputError: an unknown unit, or units of different kinds.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ToolInputError(f"value must be a finite number, got {value!r}")
    src, dst = _canonical_unit(from_unit, "from_unit"), _canonical_unit(to_unit, "to_unit")
    (g1, f1), (g2, f2) = _UNITS[src], _UNITS[dst]
    if g1 != g2:
        raise ToolInputError(f"cannot convert {src} ({g1}) to {dst} ({g2}): both units must measure the same thing")
    result = _from_celsius(_to_celsius(value, src), dst) if g1 == "temperature" else value * f1 / f2
    return Conversion(value=value, from_unit=src, to_unit=dst, result=round(result, 2))


def days_between(start: str, end: str) -> DayCount:
    """Days from `start` to `end` (ISO dates).

    Raises:
        ToolInputError: a date that is not YYYY-MM-DD.
    """
    a, b = parse_iso_date(start, "start"), parse_iso_date(end, "end")
    return DayCount(start=a.isoformat(), end=b.isoformat(), days=(b - a).days)
