"""The deterministic offline weather provider as a library: reproducibility, plausibility, lookup and errors."""

from __future__ import annotations

from datetime import date

import pytest

from mcp_servers.errors import NotFoundError, ToolInputError
from mcp_servers.weather import offline
from mcp_servers.weather.cities import CITIES, normalize_name


def test_same_city_and_date_give_the_same_numbers() -> None:
    a = offline.current("Paris", date(2025, 6, 15), "metric")
    b = offline.current("paris", "2025-06-15", "metric")
    assert a == b
    other_day = offline.current("Paris", date(2025, 6, 16), "metric")
    assert other_day.temperature != a.temperature or other_day.weather_code != a.weather_code


def test_city_keys_are_unique_and_the_list_is_large() -> None:
    assert len(CITIES) >= 100
    assert len({c.key for c in CITIES}) == len(CITIES)


@pytest.mark.parametrize("name", ["Moscow", "Chicago", "Beijing", "Berlin"])
def test_northern_cities_are_warmer_in_july_than_january(name: str) -> None:
    july = offline.forecast(name, "2025-07-01", 16).days
    january = offline.forecast(name, "2025-01-01", 16).days
    mean = lambda days: sum((d.temperature_max + d.temperature_min) / 2 for d in days) / len(days)
    assert mean(july) > mean(january) + 8


@pytest.mark.parametrize("name", ["Sydney, Australia", "Buenos Aires", "Cape Town"])
def test_southern_cities_are_warmer_in_january(name: str) -> None:
    july = offline.forecast(name, "2025-07-01", 16).days
    january = offline.forecast(name, "2025-01-01", 16).days
    assert sum(d.temperature_max for d in january) > sum(d.temperature_max for d in july)


def test_values_stay_plausible_for_every_city_over_a_year() -> None:
    for city in CITIES:
        for month in range(1, 13):
            w = offline.day_weather(city, date(2025, month, 10))
            normal = city.jan_mean_c + (city.jul_mean_c - city.jan_mean_c) * (1 - abs(month - 7) / 6)
            assert abs((w.t_min + w.t_max) / 2 - normal) < 12, (city.name, month)
            assert w.t_min < w.t_max
            assert 0 <= w.precipitation_mm < 400
            assert 0 <= w.precipitation_probability_pct <= 100
            assert 5 <= w.humidity_pct <= 100
            if w.weather_code in (71, 73, 75):
                assert (w.t_min + w.t_max) / 2 <= 0.5


def test_current_temperature_lies_within_the_days_forecast() -> None:
    for name in ("Tokyo", "Lima", "Anchorage", "Dubai"):
        now = offline.current(name, "2025-06-15")
        today = offline.forecast(name, "2025-06-15", 1).days[0]
        assert today.date == "2025-06-15"
        assert today.temperature_min <= now.temperature <= today.temperature_max
        assert now.weather_code == today.weather_code


def test_imperial_is_metric_converted() -> None:
    metric = offline.forecast("Rome", "2025-03-01", 5, "metric")
    imperial = offline.forecast("Rome", "2025-03-01", 5, "imperial")
    assert imperial.unit_labels.temperature == "°F" and metric.unit_labels.temperature == "°C"
    for m, i in zip(metric.days, imperial.days, strict=True):
        assert i.temperature_max == pytest.approx(m.temperature_max * 9 / 5 + 32, abs=0.2)
        assert i.wind_speed_max == pytest.approx(m.wind_speed_max / 1.609344, abs=0.2)
        assert i.precipitation_sum == pytest.approx(m.precipitation_sum / 25.4, abs=0.01)


def test_forecast_has_the_requested_consecutive_days() -> None:
    fc = offline.forecast("Oslo", "2025-12-25", 16)
    assert [d.date for d in fc.days][:3] == ["2025-12-25", "2025-12-26", "2025-12-27"]
    assert fc.days[-1].date == "2026-01-09"
    assert len(fc.days) == 16


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Portland", ("Portland", "Oregon")),
        ("Portland, Maine", ("Portland", "Maine")),
        ("portland, ME", ("Portland", "Maine")),
        ("London", ("London", "England")),
        ("London, Canada", ("London", "Ontario")),
        ("Paris, TX", ("Paris", "Texas")),
        ("São Paulo", ("Sao Paulo", "Sao Paulo")),
        ("NYC", ("New York", "New York")),
        ("Bombay", ("Mumbai", "Maharashtra")),
        ("  zürich ", ("Zurich", "Zurich")),
    ],
)
def test_names_resolve_to_the_intended_city(query: str, expected: tuple[str, str]) -> None:
    city = offline.resolve_city(query)
    assert (city.name, city.admin1) == expected


def test_geocode_lists_every_match_most_populous_first() -> None:
    result = offline.geocode("Cambridge")
    assert [r.country_code for r in result.results] == ["GB", "US"]
    assert result.results[0].timezone == "Europe/London"
    assert offline.geocode("Cambridge", count=1).results[0].country == "United Kingdom"


def test_unknown_location_suggests_near_matches() -> None:
    with pytest.raises(NotFoundError, match="did you mean: London, England"):
        offline.current("Lodnon")
    with pytest.raises(NotFoundError, match="known: Paris, Ile-de-France, France; Paris, Texas"):
        offline.current("Paris, Germany")
    with pytest.raises(NotFoundError, match="not a known city"):
        offline.geocode("Qwxzvbn")


def test_bad_arguments_name_what_is_accepted() -> None:
    with pytest.raises(ToolInputError, match="'metric'.*'imperial'"):
        offline.current("Paris", "2025-06-15", "kelvin")
    with pytest.raises(ToolInputError, match="between 1 and 16"):
        offline.forecast("Paris", "2025-06-15", 17)
    with pytest.raises(ToolInputError, match="between 1 and 16"):
        offline.forecast("Paris", "2025-06-15", 0)
    with pytest.raises(ToolInputError, match="YYYY-MM-DD"):
        offline.current("Paris", "15/06/2025")
    with pytest.raises(ToolInputError, match="must name a city"):
        offline.current(" , ")


def test_normalize_name() -> None:
    assert normalize_name("São  Paulo!") == "sao paulo"
    assert normalize_name("St. Petersburg") == "st petersburg"


def test_today_is_pinned_unless_asked_for_the_clock() -> None:
    assert offline.today() == date(2025, 6, 15)
    assert offline.today("2024-02-29") == date(2024, 2, 29)
    assert offline.today("today") == date.today()
