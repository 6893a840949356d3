"""The viewer app over a real SQLite file: pages, JSON twins, filters, escaping, errors, charts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from viewer_data import XSS, build_db

from collector.errors import ConfigError, StoreError
from collector.store import Store
from collector.viewer import create_app
from collector.viewer.charts import Bar, bar_chart, grouped_bar_chart
from collector.viewer.queries import EpisodeFilter, list_episodes, reward_histogram


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("viewer") / "t.db"
    return path, build_db(path)


@pytest.fixture(scope="module")
def client(db: tuple[Path, dict[str, str]]) -> TestClient:
    return TestClient(create_app(db[0]), base_url="http://127.0.0.1:8000")  # the Host check refuses "testserver"


def test_runs_summary(client: TestClient) -> None:
    runs = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert set(runs) == {"collect-expert", "collect-local", "eval-before", "eval-after"}
    expert, local = runs["collect-expert"], runs["collect-local"]
    assert (expert["done"], expert["failed"], expert["success_rate"]) == (4, 0, 1.0)
    assert expert["families"] == ["files", "weather"] and expert["policy"] == "scripted"
    assert expert["mean_reward"] == pytest.approx((1.0 + 1.1 + 1.2 + 1.0) / 4)
    assert (local["done"], local["failed"], local["success_rate"]) == (2, 1, 0.0)
    assert local["finished_at"] is not None
    html = client.get("/runs").text
    assert "SmolLM2-135M-Instruct" in html and "100.0%" in html


def test_run_page_and_unknown_run(client: TestClient) -> None:
    data = client.get("/api/runs/eval-after").json()
    assert data["kind"] == "eval" and data["config"] == {"label": "after"}
    assert {f["family"]: f["rate"] for f in data["by_family"]} == {"files": 1.0, "weather": 1.0}
    assert "Success by family" in client.get("/runs/eval-after").text
    missing = client.get("/api/runs/nope")
    assert missing.status_code == 404 and "no run named 'nope'" in missing.json()["error"]
    assert client.get("/runs/nope").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 11),
        ("?run=collect-local", 3),
        ("?family=weather&passed=no", 2),  # the local malformed one and eval-before's weather
        ("?passed=yes&run=collect-expert", 4),
        ("?reward_min=1.05", 2),
        ("?reward_min=-1&reward_max=0", 4),
        ("?error_type=ToolSessionError", 1),
        ("?status=failed", 1),
        ("?q=BERLIN", 1),  # case-insensitive, matches the final answer
        ("?q=exec+server+died", 1),  # matches the error message
        ("?q=nothing-like-this", 0),
    ],
)
def test_episode_filters(client: TestClient, query: str, expected: int) -> None:
    data = client.get(f"/api/episodes{query}").json()
    assert data["total"] == expected and len(data["episodes"]) == expected


def test_pagination(client: TestClient) -> None:
    first = client.get("/api/episodes?per_page=4").json()
    third = client.get("/api/episodes?per_page=4&page=3").json()
    assert first["pages"] == 3 and len(first["episodes"]) == 4 and len(third["episodes"]) == 3
    seen = {e["id"] for p in (1, 2, 3) for e in client.get(f"/api/episodes?per_page=4&page={p}").json()["episodes"]}
    assert len(seen) == 11
    html = client.get("/episodes?per_page=4&page=2&family=").text
    assert "Page 2 of 3" in html and 'href="/episodes?page=3&amp;per_page=4"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("passed=maybe", "'passed' must be one of any, yes, no"),
        ("status=lost", "'status' must be one of any, done, failed, running"),
        ("reward_min=high", "'reward_min' must be a number"),
        ("reward_min=2&reward_max=1", "must not exceed"),
        ("page=0", "'page' must be a whole number from 1"),
        ("per_page=100000", "'per_page' must be a whole number from 1 to 500"),
    ],
)
def test_bad_filters_are_clear_errors(client: TestClient, query: str, message: str) -> None:
    api = client.get(f"/api/episodes?{query}")
    assert api.status_code == 400 and message in api.json()["error"]
    page = client.get(f"/episodes?{query}")
    assert page.status_code == 400 and message in page.text.replace("&#39;", "'")


def test_episode_page_shows_the_conversation(client: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    eid = db[1]["malformed"]
    data = client.get(f"/api/episodes/{eid}").json()
    assert data["episode"]["reward_components"] == {"success": 0.0, "format": -0.5}
    roles = [t["role"] for t in data["turns"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    call = data["turns"][1]["calls"][0]
    assert call["malformed"] and call["arguments"] == "{location: Paris"  # verbatim, never repaired
    assert data["turns"][2]["result"]["is_error"] and data["turns"][2]["result"]["name"] == "get_current_weather"
    html = client.get(f"/episodes/{eid}").text
    assert 'class="turn assistant malformed"' in html and "malformed call" in html
    assert "<details class=\"tool-result is-error\">" in html and "1.70 s" in html


def test_tool_arguments_are_pretty_printed(client: TestClient) -> None:
    html = client.get("/episodes/collect-expert/weather-0001/0").text
    assert '{\n  &#34;location&#34;: &#34;Berlin&#34;,\n  &#34;unit&#34;: &#34;C&#34;\n}' in html
    assert "12 ms" in html  # tool duration from the tool_calls table


def test_model_output_is_escaped(client: TestClient, db: tuple[Path, dict[str, str]]) -> None:
    response = client.get(f"/episodes/{db[1]['xss']}")
    assert XSS not in response.text and "&lt;script&gt;alert(" in response.text
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none': no script runs
    assert response.headers["x-content-type-options"] == "nosniff"


def test_unknown_episode_is_404(client: TestClient) -> None:
    response = client.get("/api/episodes/run/none/0")
    assert response.status_code == 404 and "no episode 'run/none/0'" in response.json()["error"]


def test_charts(client: TestClient) -> None:
    data = client.get("/api/charts").json()
    assert sum(b["count"] for b in data["reward_histogram"]) == 10  # done episodes with a reward
    assert {f["family"]: f["episodes"] for f in data["success_by_family"]} == {"code": 1, "files": 4, "weather": 6}
    assert [r["id"] for r in data["eval"]["runs"]] == ["eval-before", "eval-after"]
    assert data["eval"]["rates"]["eval-before"] == {"files": 1.0, "weather": 0.0}
    html = client.get("/charts").text
    assert html.count("<svg class=\"chart\"") == 5 and "checkpoint-sft" in html
    one = client.get("/api/charts?run=collect-local").json()
    assert sum(d["count"] for d in one["turns"]) == 3 and one["eval"]["runs"] == []
    bad = client.get("/api/charts?run=ghost")
    assert bad.status_code == 400 and "unknown run(s) 'ghost'" in bad.json()["error"]


def test_chart_labels_are_escaped() -> None:
    svg = str(bar_chart([Bar("<b>x</b>", 2.0)], title="t<"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "t&lt;" in svg
    grouped = str(grouped_bar_chart(["f"], [("<i>run</i>", [0.5])], title="g"))
    assert "<i>" not in grouped and "50%" in grouped
    assert "No data" in str(bar_chart([], title="empty"))


def test_histogram_of_a_single_value(tmp_path: Path) -> None:
    store = Store(tmp_path / "one.db")
    store.create_run("r", policy="p", model="m", config={})
    for i in range(3):
        eid = store.start_episode("r", {"id": f"t{i}", "family": "f"}, 0, policy="p", model="m")
        store.finish_episode(eid, fields={"status": "done", "reward": 0.5}, messages=[])
    assert reward_histogram(store, ["r"]) == [{"low": 0.5, "high": 1.5, "count": 3}]
    assert list_episodes(store, EpisodeFilter(q="T1")).total == 1


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no trajectory database"):
        create_app(tmp_path / "absent.db")
    with pytest.raises(ConfigError, match="per_page"):
        create_app(build_db_path(tmp_path), per_page=0)


def build_db_path(tmp_path: Path) -> Path:
    path = tmp_path / "x.db"
    Store(path).close()
    return path


def test_viewer_never_writes(db: tuple[Path, dict[str, str]], client: TestClient) -> None:
    before = db[0].stat().st_mtime_ns
    for url in ("/runs", "/episodes", "/charts", "/api/runs", "/healthz"):
        assert client.get(url).status_code == 200
    assert db[0].stat().st_mtime_ns == before
