"""The weather MCP server: current conditions, daily forecasts and geocoding (offline or Open-Meteo)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.errors import tool_errors
from mcp_servers.settings import ServerSettings, WeatherSettings
from mcp_servers.weather import offline
from mcp_servers.weather.models import (
    MAX_FORECAST_DAYS,
    UNITS,
    CurrentWeather,
    Forecast,
    GeocodeResult,
    check_days,
    check_units,
)
from mcp_servers.weather.openmeteo import OpenMeteo

__all__ = ["build_weather_server", "offline_today"]


LocationArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="City name, optionally qualified by region or country: 'Paris', 'Portland, Maine', 'London, CA'",
    ),
]
# units and days publish their bounds in the input schema, but are checked by check_units/check_days rather than by
# pydantic, so that a model that breaks them reads one plain sentence ("days must be between 1 and 16 (got 30)").
UnitsArg = Annotated[
    str,
    Field(
        description="'metric' (°C, km/h, mm) or 'imperial' (°F, mph, inch)",
        json_schema_extra={"enum": list(UNITS)},
    ),
]
DaysArg = Annotated[
    int,
    Field(
        description=f"Number of days, today included: 1 to {MAX_FORECAST_DAYS}",
        json_schema_extra={"minimum": 1, "maximum": MAX_FORECAST_DAYS},
    ),
]


def offline_today(settings: WeatherSettings) -> date:
    """The date the offline provider treats as today: `fixed_date`, or the clock's date when it is ``"today"``."""
    return offline.today(settings.fixed_date)


def build_weather_server(settings: ServerSettings) -> MCPServer:
    """Build the weather server for the configured backend.

    Args:
        settings: Server settings; ``settings.weather.backend`` picks ``offline`` (deterministic, built-in cities,
            the date pinned by ``fixed_date``) or ``open-meteo`` (live APIs at the configured URLs).

    Returns:
        An `MCPServer` with the tools ``get_current_weather``, ``get_forecast`` and ``geocode``.
    """
    ws = settings.weather
    live = ws.backend == "open-meteo"
    client = OpenMeteo(ws) if live else None
    server = MCPServer(
        name="mcpgym-weather",
        instructions=(
            "Weather tools. Use get_current_weather for conditions now, get_forecast for the coming days, and "
            "geocode to find which places a name refers to."
            + ("" if live else f" Offline provider: today is {offline_today(ws).isoformat()}.")
        ),
    )

    def annotations(title: str) -> ToolAnnotations:
        return ToolAnnotations(
            title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=live
        )

    @server.tool(annotations=annotations("Current weather"), structured_output=True)
    @tool_errors
    async def get_current_weather(location: LocationArg, units: UnitsArg = "metric") -> CurrentWeather:
        """Get the weather right now in a city: temperature, feels-like temperature, humidity, precipitation, wind
        and a short condition ('clear sky', 'moderate rain').

        Use this for questions about the present ("Is it raining in Oslo?", "How warm is it in Lima?"). For
        coming days use get_forecast. Ambiguous names resolve to the most populous match; qualify them
        ('Portland, Maine') or call geocode first.
        """
        u = check_units(units)
        if client is not None:
            return await client.current(location, u)
        return offline.current(location, offline_today(ws), u)

    @server.tool(annotations=annotations("Daily forecast"), structured_output=True)
    @tool_errors
    async def get_forecast(location: LocationArg, days: DaysArg = 7, units: UnitsArg = "metric") -> Forecast:
        """Get a daily forecast for a city, starting today: minimum and maximum temperature, precipitation total
        and probability, maximum wind and condition for each day.

        Use this for questions about the coming days ("Will it rain in Tokyo this week?", "the high in Rome on
        Friday"). For the weather right now use get_current_weather.
        """
        u = check_units(units)
        n = check_days(days)
        if client is not None:
            return await client.forecast(location, n, u)
        return offline.forecast(location, offline_today(ws), n, u)

    @server.tool(annotations=annotations("Geocode a place name"), structured_output=True)
    @tool_errors
    async def geocode(
        name: LocationArg,
        count: Annotated[int, Field(ge=1, le=20, description="Maximum number of matches")] = 5,
    ) -> GeocodeResult:
        """Find the places a name refers to, with country, region, coordinates, elevation, time zone and
        population, most populous first.

        Use this when a name may mean several places (Portland, London, Cordoba) or to get coordinates.
        """
        if client is not None:
            return await client.geocode(name, count)
        return offline.geocode(name, count)

    return server
