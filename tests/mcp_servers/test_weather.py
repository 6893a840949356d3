"""The weather MCP server (offline backend) through a real MCP client: in process and as a stdio subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_servers.settings import ServerSettings, WeatherSettings
from mcp_servers.weather import offline
from mcp_servers.weather.server import build_weather_server


def _settings(**weather: Any) -> ServerSettings:
    return ServerSettings(weather=WeatherSettings(**weather))


async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_tools_are_listed_with_descriptions_bounds_and_annotations() -> None:
    async with Client(build_weather_server(_settings())) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"get_current_weather", "get_forecast", "geocode"}
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.idempotent_hint is True
        assert tool.annotations.open_world_hint is False  # offline backend
        assert tool.output_schema is not None
    days = tools["get_forecast"].input_schema["properties"]["days"]
    assert (days["minimum"], days["maximum"]) == (1, 16)
    assert tools["get_current_weather"].input_schema["properties"]["units"]["enum"] == ["metric", "imperial"]
    assert tools["get_current_weather"].input_schema["required"] == ["location"]


async def test_results_equal_the_offline_library_on_the_fixed_date() -> None:
    async with Client(build_weather_server(_settings())) as client:
        current = await _call(client, "get_current_weather", {"location": "Tokyo", "units": "imperial"})
        forecast = await _call(client, "get_forecast", {"location": "Tokyo", "days": 3})
    assert current == offline.current("Tokyo", date(2025, 6, 15), "imperial").model_dump()
    assert forecast == offline.forecast("Tokyo", date(2025, 6, 15), 3, "metric").model_dump()
    assert current["time"] == "2025-06-15T12:00"
    assert current["source"] == "offline"


async def test_fixed_date_setting_moves_today() -> None:
    async with Client(build_weather_server(_settings(fixed_date=date(2024, 1, 20)))) as client:
        forecast = await _call(client, "get_forecast", {"location": "Helsinki", "days": 2})
    assert [d["date"] for d in forecast["days"]] == ["2024-01-20", "2024-01-21"]
    assert forecast == offline.forecast("Helsinki", "2024-01-20", 2).model_dump()


async def test_fixed_date_today_follows_the_clock() -> None:
    async with Client(build_weather_server(_settings(fixed_date="today"))) as client:
        forecast = await _call(client, "get_forecast", {"location": "Lima", "days": 1})
    assert forecast["days"][0]["date"] in {date.today().isoformat()}


async def test_geocode_lists_places() -> None:
    async with Client(build_weather_server(_settings())) as client:
        found = await _call(client, "geocode", {"name": "Portland"})
        one = await _call(client, "geocode", {"name": "Sydney", "count": 1})
    assert [(p["admin1"], p["country_code"]) for p in found["results"]] == [("Oregon", "US"), ("Maine", "US")]
    assert one["results"][0]["country"] == "Australia" and len(one["results"]) == 1


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("get_current_weather", {"location": "Lodnon"}, "did you mean: London, England"),
        ("get_current_weather", {"location": "Paris", "units": "kelvin"}, "use 'metric'"),
        ("get_forecast", {"location": "Paris", "days": 17}, "days must be between 1 and 16 (got 17)"),
        ("get_forecast", {"location": "Paris", "days": 0}, "days must be between 1 and 16 (got 0)"),
        ("geocode", {"name": "Atlantis"}, "'Atlantis' is not a known city"),
        ("get_current_weather", {"location": ""}, "location"),
    ],
)
async def test_bad_input_is_a_clear_tool_error(tool: str, args: dict[str, Any], message: str) -> None:
    async with Client(build_weather_server(_settings())) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert message in text
    assert "Traceback" not in text


async def test_stdio_subprocess_serves_the_same_numbers(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_servers.weather"],
        env={"MCPGYM_WEATHER__FIXED_DATE": "2025-03-01", "MCPGYM_DATA_DIR": str(tmp_path)},
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        current = await client.call_tool("get_current_weather", {"location": "Nairobi"})
        bad = await client.call_tool("get_forecast", {"location": "Nairobi", "days": 40})
    assert names == {"get_current_weather", "get_forecast", "geocode"}
    assert current.structured_content == offline.current("Nairobi", "2025-03-01").model_dump()
    assert json.loads(current.content[0].text)["location"]["country"] == "Kenya"  # type: ignore[union-attr]
    assert bad.is_error and "between 1 and 16" in bad.content[0].text  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("mcpgym", path=os.path.dirname(sys.executable)) is None, reason="no mcpgym script")
async def test_mcpgym_serve_weather_over_stdio(tmp_path: Path) -> None:
    try:
        import mcp_servers.gateway.serve  # noqa: F401
    except ImportError:
        pytest.skip("the serve command's gateway module is not in this build")
    params = StdioServerParameters(
        command=os.path.join(os.path.dirname(sys.executable), "mcpgym"),
        args=["serve", "weather", "--transport", "stdio"],
        env={"MCPGYM_DATA_DIR": str(tmp_path)},
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        result = await client.call_tool("get_forecast", {"location": "Cairo", "days": 2, "units": "imperial"})
    assert result.structured_content == offline.forecast("Cairo", "2025-06-15", 2, "imperial").model_dump()


async def test_streamable_http_through_the_gateway(tmp_path: Path) -> None:
    try:
        from mcp_servers.gateway.process import GatewayProcess
    except ImportError:
        pytest.skip("the HTTP gateway is not in this build")
    env = {**os.environ, "MCPGYM_DATA_DIR": str(tmp_path), "MCPGYM_WEATHER__FIXED_DATE": "2025-09-01"}
    with GatewayProcess(["weather"], workspace=tmp_path / "ws", env=env) as gateway:
        async with Client(gateway.url("weather")) as client:
            result = await client.call_tool("get_forecast", {"location": "Perth", "days": 3})
            bad = await client.call_tool("get_current_weather", {"location": "Perth", "units": "SI"})
    assert result.structured_content == offline.forecast("Perth", "2025-09-01", 3).model_dump()
    assert bad.is_error and "use 'metric'" in bad.content[0].text  # type: ignore[union-attr]
