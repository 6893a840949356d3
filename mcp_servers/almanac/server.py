"""The almanac MCP server: past weather, air quality, sun times, unit conversion and day counts.

Every tool is real and deterministic (see `mcp_servers.almanac.data`); "today" is the weather server's
(`MCPGYM_WEATHER__FIXED_DATE`, default 2025-06-15), so the almanac and the weather server agree on the date.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.almanac import data
from mcp_servers.errors import tool_errors
from mcp_servers.settings import ServerSettings
from mcp_servers.weather import offline
from mcp_servers.weather.models import UNITS

__all__ = ["build_almanac_server"]

LocationArg = Annotated[
    str,
    Field(min_length=1, max_length=200, description="City name, optionally qualified: 'Paris', 'Portland, Maine'"),
]
DateArg = Annotated[str, Field(min_length=1, max_length=40, description="A date as YYYY-MM-DD")]
UnitsArg = Annotated[
    str,
    Field(description="'metric' (°C, km/h, mm) or 'imperial' (°F, mph, inch)", json_schema_extra={"enum": list(UNITS)}),
]
UnitArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        description="A unit symbol: m, km, mi, ft (length); kg, g, lb, oz (mass); km/h, m/s, mph, kn (speed); "
        "C, F, K (temperature)",
    ),
]


def build_almanac_server(settings: ServerSettings) -> MCPServer:
    """Build the almanac server (always offline; today is the weather settings' fixed date).

    Args:
        settings: Server settings (``settings.weather.fixed_date`` is the almanac's today).

    Returns:
        An `MCPServer` with the tools ``get_weather_history``, ``get_air_quality``, ``get_sun_times``,
        ``convert_units`` and ``days_between``.
    """
    fixed = settings.weather.fixed_date
    server = MCPServer(
        name="mcpgym-almanac",
        instructions=(
            "Almanac tools: the weather of past days, air quality now, sunrise and sunset, unit conversion and day "
            f"counts. Today is {offline.today(fixed).isoformat()}."
        ),
    )

    def annotations(title: str) -> ToolAnnotations:
        return ToolAnnotations(
            title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )

    @server.tool(annotations=annotations("Weather history"), structured_output=True)
    @tool_errors
    def get_weather_history(location: LocationArg, date: DateArg, units: UnitsArg = "metric") -> data.PastWeather:
        """Get the observed weather of a past day in a city: maximum and minimum temperature, precipitation total,
        maximum wind and condition.

        Use this for days before today ("How warm was it in Oslo on 2025-06-01?"), up to a year back. For today
        and the coming days use the weather server's get_current_weather or get_forecast.
        """
        return data.past_weather(location, date, offline.today(fixed), units)

    @server.tool(annotations=annotations("Air quality"), structured_output=True)
    @tool_errors
    def get_air_quality(location: LocationArg) -> data.AirQuality:
        """Get the air quality right now in a city: the air quality index (AQI, US EPA scale 0-500), its
        category, and the PM2.5 and PM10 particle concentrations.

        Use this for questions about pollution or smog now. It has no forecast and no history; temperature,
        humidity and wind come from the weather tools.
        """
        return data.air_quality(location, offline.today(fixed))

    @server.tool(annotations=annotations("Sunrise and sunset"), structured_output=True)
    @tool_errors
    def get_sun_times(location: LocationArg, date: DateArg | None = None) -> data.SunTimes:
        """Get the sunrise and sunset times of a day in a city, in local time (HH:MM), and the day length.

        Use this for daylight questions ("When does the sun set in Lima?"). `date` defaults to today.
        """
        return data.sun_times(location, date, offline.today(fixed))

    @server.tool(annotations=annotations("Convert units"), structured_output=True)
    @tool_errors
    def convert_units(
        value: Annotated[float, Field(description="The quantity to convert")], from_unit: UnitArg, to_unit: UnitArg
    ) -> data.Conversion:
        """Convert a quantity from one unit to another of the same kind: length, mass, speed or temperature.

        Example: value 10, from_unit "km", to_unit "mi" gives 6.21.
        """
        return data.convert_units(value, from_unit, to_unit)

    @server.tool(annotations=annotations("Days between dates"), structured_output=True)
    @tool_errors
    def days_between(start: DateArg, end: DateArg) -> data.DayCount:
        """Count the days from one date to another (end minus start; negative when end is earlier)."""
        return data.days_between(start, end)

    return server
