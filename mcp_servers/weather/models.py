"""Structured results of the weather tools, shared by the offline and the Open-Meteo backends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mcp_servers.errors import ToolInputError

__all__ = [
    "MAX_FORECAST_DAYS",
    "UNITS",
    "CurrentWeather",
    "DailyWeather",
    "Forecast",
    "GeocodeResult",
    "Location",
    "UnitLabels",
    "Units",
    "check_days",
    "check_units",
    "condition_for_code",
    "unit_labels",
]

Units = Literal["metric", "imperial"]
UNITS: tuple[str, ...] = ("metric", "imperial")
MAX_FORECAST_DAYS = 16

# WMO weather interpretation codes, as Open-Meteo reports them.
_CONDITIONS: dict[int, str] = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snow fall",
    73: "moderate snow fall",
    75: "heavy snow fall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


def condition_for_code(code: int) -> str:
    """The English description of a WMO weather code (``"unknown"`` for codes outside the table)."""
    return _CONDITIONS.get(code, "unknown")


class UnitLabels(BaseModel):
    """The units the numbers of a result are expressed in."""

    temperature: str = Field(description="°C or °F")
    wind_speed: str = Field(description="km/h or mph")
    precipitation: str = Field(description="mm or inch")


def unit_labels(units: Units) -> UnitLabels:
    """The unit labels of a unit system."""
    if units == "imperial":
        return UnitLabels(temperature="°F", wind_speed="mph", precipitation="inch")
    return UnitLabels(temperature="°C", wind_speed="km/h", precipitation="mm")


def check_units(units: str) -> Units:
    """Validate a unit system name.

    Args:
        units: The value given by the caller.

    Returns:
        ``"metric"`` or ``"imperial"``.

    Raises:
        ToolInputError: For any other value; the message lists the accepted ones.
    """
    value = units.strip().lower()
    if value == "metric":
        return "metric"
    if value == "imperial":
        return "imperial"
    raise ToolInputError(f"units {units!r} is not supported: use 'metric' (°C, km/h, mm) or 'imperial' (°F, mph, inch)")


def check_days(days: int) -> int:
    """Validate a forecast length.

    Raises:
        ToolInputError: Unless ``1 <= days <= 16``.
    """
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise ToolInputError(f"days must be between 1 and {MAX_FORECAST_DAYS} (got {days})")
    return days


class Location(BaseModel):
    """A place that weather can be looked up for."""

    name: str
    admin1: str = Field(default="", description="State or province")
    country: str
    country_code: str
    latitude: float
    longitude: float
    elevation_m: float | None = None
    timezone: str | None = None
    population: int | None = None


class CurrentWeather(BaseModel):
    """Weather conditions at one place and time."""

    location: Location
    time: str = Field(description="Local time of the observation, ISO 8601")
    units: Units
    unit_labels: UnitLabels
    temperature: float
    apparent_temperature: float
    relative_humidity_pct: int
    precipitation: float = Field(description="Precipitation in the last hour")
    wind_speed: float
    wind_direction_deg: int
    weather_code: int = Field(description="WMO weather code")
    condition: str
    source: str = Field(description="'offline' (deterministic built-in provider) or 'open-meteo'")


class DailyWeather(BaseModel):
    """One day of a forecast."""

    date: str
    temperature_max: float
    temperature_min: float
    precipitation_sum: float
    precipitation_probability_pct: int
    wind_speed_max: float
    weather_code: int
    condition: str


class Forecast(BaseModel):
    """A daily forecast, starting today."""

    location: Location
    units: Units
    unit_labels: UnitLabels
    days: list[DailyWeather]
    source: str


class GeocodeResult(BaseModel):
    """Places matching a name, best match first."""

    query: str
    results: list[Location]
