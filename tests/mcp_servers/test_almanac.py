"""The almanac server: its pure library (agreement with the weather provider, sun times, conversions, errors) and
the server over stdio."""

from __future__ import annotations

import sys
from datetime import date

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_servers.almanac import data
from mcp_servers.errors import NotFoundError, ToolInputError
from mcp_servers.weather import offline

TODAY = date(2025, 6, 15)


def test_history_is_the_weather_providers_own_day() -> None:
    past = data.past_weather("Oslo", "2025-06-01", TODAY)
    row = offline.forecast("Oslo", "2025-06-01", 1, "metric").days[0]
    assert (past.temperature_max, past.temperature_min, past.condition) == (
        row.temperature_max,
        row.temperature_min,
        row.condition,
    )
    imperial = data.past_weather("Oslo", "2025-06-01", TODAY, "imperial")
    assert imperial.temperature_max == offline.forecast("Oslo", "2025-06-01", 1, "imperial").days[0].temperature_max
    with pytest.raises(ToolInputError, match="not in the past.*get_forecast"):
        data.past_weather("Oslo", "2025-06-15", TODAY)
    with pytest.raises(ToolInputError, match="too old"):
        data.past_weather("Oslo", "2023-01-01", TODAY)
    with pytest.raises(ToolInputError, match="not an ISO date: use YYYY-MM-DD"):
        data.past_weather("Oslo", "1 June 2025", TODAY)


def test_sun_times_are_close_to_the_published_ones() -> None:
    # published times for 2025-06-15: Oslo 03:53 / 22:43 (CEST), Lima 06:27 / 17:53 (PET), Sydney 07:00 / 16:53
    for city, rise, sets in (("Oslo", "03:53", "22:43"), ("Lima", "06:27", "17:53"), ("Sydney", "07:00", "16:53")):
        sun = data.sun_times(city, None, TODAY)
        for got, want in ((sun.sunrise, rise), (sun.sunset, sets)):
            assert got is not None
            minutes = abs((int(got[:2]) * 60 + int(got[3:])) - (int(want[:2]) * 60 + int(want[3:])))
            assert minutes <= 6, (city, got, want)
    assert data.sun_times("Oslo", "2025-12-21", TODAY).day_length < data.sun_times("Oslo", None, TODAY).day_length


def test_air_quality_is_stable_and_categorized() -> None:
    first = data.air_quality("Delhi", TODAY)
    assert first == data.air_quality("Delhi", TODAY)
    for city in ("Oslo", "Delhi", "Lima", "Tokyo", "Reykjavik"):
        aq = data.air_quality(city, TODAY)
        assert 0 <= aq.aqi <= 500 and aq.pm10 >= aq.pm2_5 > 0
        top = {"good": 50, "moderate": 100, "unhealthy for sensitive groups": 150, "unhealthy": 200}[aq.category]
        assert aq.aqi <= top
    with pytest.raises(NotFoundError, match="did you mean: Munich, Bavaria, Germany"):
        data.air_quality("Muenchen", TODAY)


def test_conversions_and_day_counts() -> None:
    assert data.convert_units(100, "celsius", "F").result == 212
    assert data.convert_units(19.1, "°C", "K").result == 292.25
    assert data.convert_units(10, "km", "miles").result == 6.21
    assert data.convert_units(36, "km/h", "m/s").result == 10
    with pytest.raises(ToolInputError, match="cannot convert km \\(length\\) to kg \\(mass\\)"):
        data.convert_units(1, "km", "kg")
    with pytest.raises(ToolInputError, match="'stone' is not a known unit; accepted: length: m, km"):
        data.convert_units(1, "stone", "kg")
    assert data.days_between("2025-06-15", "2025-12-25").days == 193
    assert data.days_between("2025-06-15", "2025-06-01").days == -14
    with pytest.raises(ToolInputError, match="end 'Christmas' is not an ISO date"):
        data.days_between("2025-06-15", "Christmas")


async def test_server_over_stdio() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcpgym.cli", "serve", "almanac"])
    async with Client(stdio_client(params), mode="auto") as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["convert_units", "days_between", "get_air_quality", "get_sun_times", "get_weather_history"]
        ok = await client.call_tool("get_sun_times", {"location": "Oslo"})
        assert not ok.is_error and ok.structured_content["date"] == "2025-06-15"
        bad = await client.call_tool("get_air_quality", {"location": "Vancuover"})
        assert bad.is_error and "did you mean: Vancouver, British Columbia, Canada" in bad.content[0].text
