"""The viewer in a real headless Chromium (Selenium): runs page, filter, episode page, screenshots."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from viewer_data import XSS, build_db

from collector.viewer import create_app

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1360,1000",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    db = tmp_path_factory.mktemp("viewer") / "trajectories.db"
    ids = build_db(db)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base, ids
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("headless Chromium is not installed: apt-get install chromium chromium-driver "
                    "(scripts/setup-system.sh does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_runs_filter_episode_in_chromium(server: tuple[str, dict[str, str]], browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    assert isinstance(browser, WebDriver)
    base, ids = server
    ARTIFACTS.mkdir(exist_ok=True)

    browser.get(f"{base}/runs")
    runs = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#runs a.run-link")]
    assert set(runs) == {"collect-expert", "collect-local", "eval-before", "eval-after"}
    local_row = browser.find_element(By.XPATH, "//tr[td/a[text()='collect-local']]")
    assert "SmolLM2-135M-Instruct" in local_row.text and "33.3%" not in local_row.text  # 0 of 3 passed
    assert "0.0%" in local_row.text
    browser.save_screenshot(str(ARTIFACTS / "viewer-runs.png"))

    # Filter: the weather episodes of the local run that did not pass.
    browser.get(f"{base}/episodes")
    Select(browser.find_element(By.ID, "f-run")).select_by_visible_text("collect-local")
    Select(browser.find_element(By.ID, "f-family")).select_by_visible_text("weather")
    Select(browser.find_element(By.ID, "f-passed")).select_by_visible_text("no")
    browser.find_element(By.ID, "apply").click()
    # a click on a submit button does not wait for the page it loads
    WebDriverWait(browser, 30).until(expected_conditions.url_contains("passed=no"))
    assert "run=collect-local" in browser.current_url and "passed=no" in browser.current_url
    assert browser.find_element(By.ID, "total").text == "1"
    links = browser.find_elements(By.CSS_SELECTOR, "#episodes a.episode-link")
    assert [a.text for a in links] == ["weather-0000"]
    browser.save_screenshot(str(ARTIFACTS / "viewer-episodes.png"))

    links[0].click()
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "episode-title")))
    assert browser.find_element(By.ID, "episode-title").text.startswith("weather-0000")
    verdict = browser.find_element(By.ID, "verdict").text
    assert "not passed" in verdict and "-0.5" in verdict and "format" in verdict
    malformed = browser.find_elements(By.CSS_SELECTOR, ".turn.malformed")
    assert len(malformed) == 1 and "{location: Paris" in malformed[0].text
    assert "MALFORMED CALL" in malformed[0].text.upper()
    # The tool result is collapsed until clicked.
    result = browser.find_element(By.CSS_SELECTOR, "details.tool-result")
    body = result.find_element(By.CSS_SELECTOR, "pre.content")
    assert not body.is_displayed()
    result.find_element(By.TAG_NAME, "summary").click()
    assert body.is_displayed() and "not valid JSON" in body.text
    assert "1.70 s" in browser.find_element(By.ID, "turn-1").text  # model latency of that step
    browser.save_screenshot(str(ARTIFACTS / "viewer-episode.png"))

    # Model output is shown as text, never run.
    browser.get(f"{base}/episodes/{ids['xss']}")
    assert XSS in browser.find_element(By.ID, "final-answer").text
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []

    browser.get(f"{base}/charts")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 5
    assert "checkpoint-sft" in browser.find_element(By.ID, "eval-chart").text
    browser.save_screenshot(str(ARTIFACTS / "viewer-charts.png"))
