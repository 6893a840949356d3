"""A viewer with a token in a real headless Chromium: refused at first, `?token=` once, then the cookie does the rest."""

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
from viewer_data import build_db

from collector.viewer import create_app

pytestmark = pytest.mark.browser

TOKEN = "browser-token-51ab"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("viewer-token") / "trajectories.db"
    build_db(db)
    port = _free_port()
    app = create_app(db, token=TOKEN)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("headless Chromium is not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={Path(tmp_path_factory.mktemp('chrome-profile'))}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_token_once_in_the_url_then_the_cookie(server: str, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    browser.get(f"{server}/runs")
    assert "needs its token" in browser.page_source and "collect-expert" not in browser.page_source

    browser.get(f"{server}/episodes?token={TOKEN}&run=collect-expert")
    assert browser.current_url == f"{server}/episodes?run=collect-expert"  # the token left the address bar
    assert browser.find_element(By.ID, "total").text == "4"

    browser.get(f"{server}/runs")  # a later page: the cookie alone
    runs = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#runs a.run-link")}
    assert runs == {"collect-expert", "collect-local", "eval-before", "eval-after"}
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script of the page can read it
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
