"""The live weather backend: Open-Meteo's forecast and geocoding APIs through httpx, with retries and a cache."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import httpx

from mcp_servers.errors import BackendError, BackendTimeoutError, NotFoundError, ToolInputError
from mcp_servers.settings import WeatherSettings
from mcp_servers.weather.cities import normalize_name
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

__all__ = ["OpenMeteo"]

_CURRENT_FIELDS = (
    "temperature_2m,relative_humidity_2m,apparent_temperature,precipitation,weather_code,"
    "wind_speed_10m,wind_direction_10m"
)
_DAILY_FIELDS = (
    "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum,precipitation_probability_max,"
    "wind_speed_10m_max"
)
_RETRY_STATUS = {429, 500, 502, 503, 504}


class _TtlCache:
    """A small LRU cache whose entries expire after a time-to-live."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        if self.max_entries <= 0 or self.ttl_s <= 0:
            return
        self._items[key] = (time.monotonic() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class OpenMeteo:
    """A client of the Open-Meteo APIs (or any server speaking their JSON), configured by `WeatherSettings`.

    Args:
        settings: URLs, timeout, retries and cache settings.
        transport: An httpx transport to use instead of the network (for embedding); None for the default.
    """

    def __init__(self, settings: WeatherSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._cache = _TtlCache(settings.cache_ttl_s, settings.cache_max_entries)
        self.requests_sent = 0  # network requests actually made (cache hits excluded)

    async def _get_json(self, url: str, params: dict[str, str | int | float]) -> dict[str, Any]:
        key = str(httpx.URL(url, params=sorted(params.items())))
        cached = self._cache.get(key)
        if cached is not None:
            return dict(cached)
        attempts = max(0, self.settings.retries) + 1
        last_problem = ""
        async with httpx.AsyncClient(timeout=self.settings.timeout_s, transport=self._transport) as client:
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                try:
                    self.requests_sent += 1
                    response = await client.get(url, params=params)
                except httpx.TimeoutException:
                    last_problem = f"no answer within {self.settings.timeout_s:g} s"
                    continue
                except httpx.TransportError as exc:
                    last_problem = f"connection failed ({type(exc).__name__})"
                    continue
                if response.status_code in _RETRY_STATUS:
                    last_problem = f"HTTP {response.status_code}"
                    continue
                return self._decode(response, key)
        message = f"Open-Meteo at {httpx.URL(url).host} failed after {attempts} attempt(s): {last_problem}"
        if last_problem.startswith("no answer"):
            raise BackendTimeoutError(message)
        raise BackendError(message)

    def _decode(self, response: httpx.Response, key: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise BackendError(
                f"Open-Meteo answered HTTP {response.status_code} with a body that is not JSON"
            ) from None
        if not isinstance(body, dict):
            raise BackendError("Open-Meteo answered with JSON that is not an object")
        if response.status_code >= 400 or body.get("error"):
            reason = body.get("reason", f"HTTP {response.status_code}")
            raise BackendError(f"Open-Meteo rejected the request: {reason}")
        self._cache.put(key, body)
        return body

    async def geocode(self, name: str, count: int = 10) -> GeocodeResult:
        """Look a place name up with the geocoding API.

        A name may carry qualifiers after commas (``"Portland, Maine"``); the API is asked for the first part and
        the results are filtered by region, country or country code.

        Raises:
            ToolInputError: Empty name.
            NotFoundError: Nothing matches.
            BackendError: The API failed.
        """
        head, *qualifiers = name.split(",")
        if not normalize_name(head):
            raise ToolInputError("name must be a place name, e.g. 'Paris' or 'Portland, Maine'")
        params: dict[str, str | int | float] = {
            "name": head.strip(),
            "count": max(count, 10) if qualifiers else count,
            "language": "en",
            "format": "json",
        }
        body = await self._get_json(self.settings.geocoding_url, params)
        rows = body.get("results") or []
        places = [_location(r) for r in rows if isinstance(r, dict)]
        wanted = [normalize_name(q) for q in qualifiers if normalize_name(q)]
        places = [p for p in places if all(_matches(p, q) for q in wanted)]
        if not places:
            raise NotFoundError(
                f"location {name!r} was not found by the geocoding service; check the spelling, or qualify it with a "
                "country, e.g. 'Paris, France'"
            )
        return GeocodeResult(query=name, results=places[:count])

    async def _resolve(self, location: str) -> Location:
        return (await self.geocode(location, count=1)).results[0]

    async def current(self, location: str, units: str = "metric") -> CurrentWeather:
        """Current conditions at a place.

        Raises:
            ToolInputError: Bad units.
            NotFoundError: Unknown place.
            BackendError: The API failed.
        """
        u = check_units(units)
        place = await self._resolve(location)
        body = await self._get_json(self.settings.forecast_url, _forecast_params(place, u, current=True, days=1))
        cur = _section(body, "current")
        with _malformed("current"):
            return _current(cur, place, u)

    async def forecast(self, location: str, days: int = 7, units: str = "metric") -> Forecast:
        """A daily forecast of 1 to 16 days, starting today.

        Raises:
            ToolInputError: Bad units or days.
            NotFoundError: Unknown place.
            BackendError: The API failed.
        """
        u = check_units(units)
        n = check_days(days)
        place = await self._resolve(location)
        body = await self._get_json(self.settings.forecast_url, _forecast_params(place, u, current=False, days=n))
        daily = _section(body, "daily")
        with _malformed("daily"):
            rows = _daily_rows(daily, n)
        return Forecast(location=place, units=u, unit_labels=unit_labels(u), days=rows, source="open-meteo")


@contextlib.contextmanager
def _malformed(section: str) -> Iterator[None]:
    try:
        yield
    except (TypeError, ValueError, IndexError) as exc:  # pydantic's ValidationError is a ValueError
        raise BackendError(f"Open-Meteo returned malformed '{section}' data ({type(exc).__name__})") from None


def _current(cur: dict[str, Any], place: Location, u: Units) -> CurrentWeather:
    code = int(_field(cur, "current", "weather_code"))
    return CurrentWeather(
        location=place,
        time=str(_field(cur, "current", "time")),
        units=u,
        unit_labels=unit_labels(u),
        temperature=float(_field(cur, "current", "temperature_2m")),
        apparent_temperature=float(_field(cur, "current", "apparent_temperature")),
        relative_humidity_pct=int(_field(cur, "current", "relative_humidity_2m")),
        precipitation=float(_field(cur, "current", "precipitation")),
        wind_speed=float(_field(cur, "current", "wind_speed_10m")),
        wind_direction_deg=int(_field(cur, "current", "wind_direction_10m")),
        weather_code=code,
        condition=condition_for_code(code),
        source="open-meteo",
    )


def _daily_rows(daily: dict[str, Any], n: int) -> list[DailyWeather]:
    dates = _field(daily, "daily", "time")
    columns = {name: _field(daily, "daily", name) for name in _DAILY_FIELDS.split(",")}
    rows: list[DailyWeather] = []
    for i, day in enumerate(list(dates)[:n]):
        code = int(columns["weather_code"][i] or 0)
        rows.append(
            DailyWeather(
                date=str(day),
                temperature_max=float(columns["temperature_2m_max"][i]),
                temperature_min=float(columns["temperature_2m_min"][i]),
                precipitation_sum=float(columns["precipitation_sum"][i] or 0.0),
                precipitation_probability_pct=int(columns["precipitation_probability_max"][i] or 0),
                wind_speed_max=float(columns["wind_speed_10m_max"][i]),
                weather_code=code,
                condition=condition_for_code(code),
            )
        )
    return rows


def _forecast_params(place: Location, units: str, *, current: bool, days: int) -> dict[str, str | int | float]:
    params: dict[str, str | int | float] = {
        "latitude": place.latitude,
        "longitude": place.longitude,
        "timezone": "auto",
        "forecast_days": days,
    }
    if current:
        params["current"] = _CURRENT_FIELDS
    else:
        params["daily"] = _DAILY_FIELDS
    if units == "imperial":
        params.update(temperature_unit="fahrenheit", wind_speed_unit="mph", precipitation_unit="inch")
    return params


def _section(body: dict[str, Any], name: str) -> dict[str, Any]:
    section = body.get(name)
    if not isinstance(section, dict):
        raise BackendError(f"Open-Meteo response lacks the '{name}' object")
    return section


def _field(section: dict[str, Any], where: str, name: str) -> Any:
    value = section.get(name)
    if value is None:
        raise BackendError(f"Open-Meteo response lacks '{where}.{name}'")
    return value


def _location(row: dict[str, Any]) -> Location:
    return Location(
        name=str(row.get("name", "")),
        admin1=str(row.get("admin1") or ""),
        country=str(row.get("country") or ""),
        country_code=str(row.get("country_code") or ""),
        latitude=float(row.get("latitude", 0.0)),
        longitude=float(row.get("longitude", 0.0)),
        elevation_m=row.get("elevation"),
        timezone=row.get("timezone"),
        population=row.get("population"),
    )


def _matches(place: Location, qualifier: str) -> bool:
    return qualifier in {normalize_name(place.admin1), normalize_name(place.country), place.country_code.lower()}
