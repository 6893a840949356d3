"""The Open-Meteo backend against a real local HTTP server that speaks Open-Meteo's forecast and geocoding JSON."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from mcp import Client

from mcp_servers.errors import BackendError, BackendTimeoutError, NotFoundError
from mcp_servers.settings import ServerSettings, WeatherSettings
from mcp_servers.weather import offline
from mcp_servers.weather.openmeteo import OpenMeteo
from mcp_servers.weather.server import build_weather_server

TODAY = date(2025, 6, 15)


class FakeOpenMeteo(ThreadingHTTPServer):
    """Open-Meteo's two endpoints on 127.0.0.1, with numbers from the offline provider and injectable failures."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_next = 0  # answer this many upcoming requests with HTTP 503
        self.delay_s = 0.0
        self.error_reason: str | None = None  # answer forecasts with HTTP 400 and this reason
        self.null_temperatures = False  # answer daily forecasts with null maximum temperatures

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) leaves a broken pipe behind: not an error here

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _geocode(params: dict[str, str]) -> dict[str, Any]:
    cities = offline.find_cities(params["name"])[: int(params.get("count", "10"))]
    if not cities:
        return {"generationtime_ms": 0.2}
    return {
        "results": [
            {
                "id": 1000 + i, "name": c.name, "latitude": c.latitude, "longitude": c.longitude,
                "elevation": float(c.elevation_m), "timezone": c.timezone, "country": c.country,
                "country_code": c.country_code, "admin1": c.admin1, "population": c.population,
            }
            for i, c in enumerate(cities)
        ],
        "generationtime_ms": 0.3,
    }  # fmt: skip


def _forecast(params: dict[str, str]) -> dict[str, Any]:
    lat, lon = float(params["latitude"]), float(params["longitude"])
    city = min(offline.CITIES, key=lambda c: (c.latitude - lat) ** 2 + (c.longitude - lon) ** 2)
    units = "imperial" if params.get("temperature_unit") == "fahrenheit" else "metric"
    body: dict[str, Any] = {"latitude": lat, "longitude": lon, "timezone": city.timezone, "utc_offset_seconds": 0}
    if "current" in params:
        now = offline.current(city, TODAY, units)
        body["current"] = {
            "time": now.time, "interval": 900, "temperature_2m": now.temperature,
            "relative_humidity_2m": now.relative_humidity_pct, "apparent_temperature": now.apparent_temperature,
            "precipitation": now.precipitation, "weather_code": now.weather_code, "wind_speed_10m": now.wind_speed,
            "wind_direction_10m": now.wind_direction_deg,
        }  # fmt: skip
    if "daily" in params:
        days = offline.forecast(city, TODAY, int(params["forecast_days"]), units).days
        body["daily"] = {
            "time": [d.date for d in days],
            "weather_code": [d.weather_code for d in days],
            "temperature_2m_max": [d.temperature_max for d in days],
            "temperature_2m_min": [d.temperature_min for d in days],
            "precipitation_sum": [d.precipitation_sum for d in days],
            "precipitation_probability_max": [d.precipitation_probability_pct for d in days],
            "wind_speed_10m_max": [d.wind_speed_max for d in days],
        }
    return body


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenMeteo

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append((parts.path, params))
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            return self._send(503, {"error": True, "reason": "busy"})
        if parts.path == "/v1/search":
            return self._send(200, _geocode(params))
        if parts.path == "/v1/forecast":
            if self.server.error_reason:
                return self._send(400, {"error": True, "reason": self.server.error_reason})
            body = _forecast(params)
            if self.server.null_temperatures and "daily" in body:
                body["daily"]["temperature_2m_max"] = [None] * len(body["daily"]["time"])
            return self._send(200, body)
        self._send(404, {"error": True, "reason": "not found"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake() -> Iterator[FakeOpenMeteo]:
    server = FakeOpenMeteo()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _weather_settings(fake: FakeOpenMeteo, **extra: Any) -> WeatherSettings:
    return WeatherSettings(
        backend="open-meteo",
        forecast_url=f"{fake.base}/v1/forecast",
        geocoding_url=f"{fake.base}/v1/search",
        timeout_s=extra.pop("timeout_s", 5.0),
        **extra,
    )


async def test_tools_over_mcp_return_the_apis_numbers(fake: FakeOpenMeteo) -> None:
    server = build_weather_server(ServerSettings(weather=_weather_settings(fake)))
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        current = await client.call_tool("get_current_weather", {"location": "Portland, Maine", "units": "imperial"})
        forecast = await client.call_tool("get_forecast", {"location": "Reykjavik", "days": 4})
        places = await client.call_tool("geocode", {"name": "London"})
    assert all(t.annotations and t.annotations.open_world_hint for t in tools.values())
    expected = offline.current("Portland, Maine", TODAY, "imperial")
    got = current.structured_content
    assert got is not None and got["source"] == "open-meteo"
    assert got["location"]["admin1"] == "Maine"
    assert (got["temperature"], got["wind_speed"], got["condition"]) == (
        expected.temperature, expected.wind_speed, expected.condition,
    )  # fmt: skip
    assert got["unit_labels"] == {"temperature": "°F", "wind_speed": "mph", "precipitation": "inch"}
    sent = next(p for path, p in fake.requests if path == "/v1/forecast")
    assert (sent["temperature_unit"], sent["wind_speed_unit"], sent["precipitation_unit"]) == (
        "fahrenheit",
        "mph",
        "inch",
    )
    assert forecast.structured_content is not None
    assert forecast.structured_content["days"] == [d.model_dump() for d in offline.forecast("Reykjavik", TODAY, 4).days]
    assert places.structured_content is not None
    assert [p["country_code"] for p in places.structured_content["results"]] == ["GB", "CA"]


async def test_responses_are_cached(fake: FakeOpenMeteo) -> None:
    client = OpenMeteo(_weather_settings(fake))
    first = await client.forecast("Lisbon", 3)
    second = await client.forecast("Lisbon", 3)
    assert first == second
    assert len(fake.requests) == 2  # one geocoding and one forecast request, then only cache hits
    assert client.requests_sent == 2
    await client.forecast("Lisbon", 5)  # other parameters: a new forecast request, geocoding still cached
    assert len(fake.requests) == 3


async def test_cache_expires_after_its_ttl(fake: FakeOpenMeteo) -> None:
    client = OpenMeteo(_weather_settings(fake, cache_ttl_s=0.05))
    await client.geocode("Lima")
    await asyncio.sleep(0.1)
    await client.geocode("Lima")
    assert len(fake.requests) == 2


async def test_transient_failures_are_retried(fake: FakeOpenMeteo) -> None:
    fake.fail_next = 2
    client = OpenMeteo(_weather_settings(fake, retries=2))
    result = await client.geocode("Tokyo")
    assert result.results[0].country == "Japan"
    assert len(fake.requests) == 3


async def test_persistent_failure_is_a_clear_tool_error(fake: FakeOpenMeteo) -> None:
    fake.fail_next = 10
    server = build_weather_server(ServerSettings(weather=_weather_settings(fake, retries=1)))
    async with Client(server) as client:
        result = await client.call_tool("get_current_weather", {"location": "Tokyo"})
    assert result.is_error
    assert "failed after 2 attempt(s): HTTP 503" in result.content[0].text  # type: ignore[union-attr]
    assert len(fake.requests) == 2


async def test_timeout_is_reported(fake: FakeOpenMeteo) -> None:
    fake.delay_s = 1.0
    client = OpenMeteo(_weather_settings(fake, timeout_s=0.2, retries=0))
    with pytest.raises(BackendTimeoutError, match="no answer within 0.2 s"):
        await client.geocode("Tokyo")


async def test_api_error_reason_is_passed_on(fake: FakeOpenMeteo) -> None:
    fake.error_reason = "Parameter 'forecast_days' is invalid"
    client = OpenMeteo(_weather_settings(fake))
    with pytest.raises(BackendError, match="rejected the request: Parameter 'forecast_days' is invalid"):
        await client.forecast("Tokyo", 3)


async def test_malformed_data_is_a_backend_error(fake: FakeOpenMeteo) -> None:
    fake.null_temperatures = True
    server = build_weather_server(ServerSettings(weather=_weather_settings(fake)))
    async with Client(server) as client:
        result = await client.call_tool("get_forecast", {"location": "Tokyo", "days": 2})
    assert result.is_error
    assert "Open-Meteo returned malformed 'daily' data (TypeError)" in result.content[0].text  # type: ignore[union-attr]


async def test_unknown_place_and_qualifier_filtering(fake: FakeOpenMeteo) -> None:
    client = OpenMeteo(_weather_settings(fake))
    with pytest.raises(NotFoundError, match="'Atlantis' was not found"):
        await client.current("Atlantis")
    with pytest.raises(NotFoundError, match="'Paris, Japan' was not found"):
        await client.current("Paris, Japan")
    texas = await client.geocode("Paris, Texas")
    assert [(p.name, p.admin1) for p in texas.results] == [("Paris", "Texas")]
    assert fake.requests[-1][1]["name"] == "Paris"


async def test_connection_refused_is_a_backend_error() -> None:
    with socket.socket() as sock:  # a port on which nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = WeatherSettings(
        backend="open-meteo",
        forecast_url=f"http://127.0.0.1:{port}/v1/forecast",
        geocoding_url=f"http://127.0.0.1:{port}/v1/search",
        retries=0,
    )
    with pytest.raises(BackendError, match="connection failed"):
        await OpenMeteo(settings).geocode("Tokyo")


def test_fake_dates_follow_the_fixed_date() -> None:
    days = _forecast({"latitude": "35.6762", "longitude": "139.6503", "daily": "x", "forecast_days": "2"})["daily"]
    assert days["time"] == [TODAY.isoformat(), (TODAY + timedelta(days=1)).isoformat()]
