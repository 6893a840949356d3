"""Who may read the viewer: Host and Origin checks (DNS rebinding), the token, binds, and headers on every answer."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from viewer_data import build_db

from collector.viewer import create_app

BASE = "http://127.0.0.1:8000"
TOKEN = "viewer-token-7c1d"
PATHS = ("/api/episodes?per_page=1", "/api/runs", "/runs", "/episodes", "/charts", "/healthz", "/static/style.css")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("viewer-access") / "t.db"
    build_db(path)
    return path


@pytest.fixture(scope="module")
def client(db: Path) -> TestClient:
    return TestClient(create_app(db), base_url=BASE)


@pytest.fixture(scope="module")
def locked(db: Path) -> TestClient:
    return TestClient(create_app(db, token=TOKEN), base_url=BASE, follow_redirects=False)


def test_static_file_exists(client: TestClient) -> None:
    assert client.get("/static/style.css").status_code == 200  # so PATHS really reach something


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example:8000",
                                  "127.0.0.1:8000.evil.example", "localhost.evil.example", ""])  # fmt: skip
def test_a_rebound_name_reads_nothing(client: TestClient, host: str) -> None:
    # A page on evil.example that re-resolves its name to 127.0.0.1 sends its own name in Host.
    for path in PATHS:
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 421, (path, response.status_code)
        assert "episodes" not in response.text and "collect-expert" not in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"])
def test_loopback_names_are_accepted(client: TestClient, host: str) -> None:
    assert client.get("/api/runs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_a_foreign_origin_is_refused(client: TestClient, origin: str) -> None:
    for path in PATHS:
        response = client.get(path, headers={"Origin": origin})
        assert response.status_code == 403, (path, response.status_code)
        assert "collect-expert" not in response.text
    assert client.get("/runs", headers={"Origin": BASE}).status_code == 200  # the viewer's own origin


def test_bind_address_and_allowed_hosts_are_accepted(db: Path) -> None:
    app = create_app(db, token=TOKEN, host="192.0.2.7", allowed_hosts=["viewer.lan:8000", "other.lan:*"])
    client = TestClient(app, base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"})
    for host in ("192.0.2.7:8000", "viewer.lan:8000", "other.lan:9", "other.lan", "127.0.0.1:8000"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host
    for host in ("viewer.lan:8001", "viewer.lan", "192.0.2.8:8000", "other.lan:x"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 421, host
    assert client.get("/runs", headers={"Host": "viewer.lan:8000", "Origin": "http://viewer.lan:8000"}).status_code == 200
    wildcard = TestClient(create_app(db, token=TOKEN, host="0.0.0.0"), base_url=BASE)
    assert wildcard.get("/healthz", headers={"Host": "0.0.0.0:8000"}).status_code == 421  # a wildcard names nobody


def test_token_guards_every_page_but_healthz(locked: TestClient) -> None:
    for path in PATHS:
        if path == "/healthz":
            continue
        response = locked.get(path)
        assert response.status_code == 401, path
        assert "collect-expert" not in response.text and "Authorization: Bearer" in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert locked.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert locked.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert locked.get("/healthz").json()["ok"] is True
    assert "invalid bearer token" in locked.get("/api/runs", headers={"Authorization": "Bearer x"}).json()["error"]


def test_token_in_the_url_once_sets_a_strict_cookie(db: Path) -> None:
    browser = TestClient(create_app(db, token=TOKEN), base_url=BASE, follow_redirects=False)
    assert browser.get("/episodes?token=wrong&run=collect-expert").status_code == 401
    response = browser.get(f"/episodes?run=collect-expert&token={TOKEN}&page=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/episodes?run=collect-expert&page=1"  # the token leaves the URL
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # a value derived from the token, not the token
    page = browser.get(response.headers["location"])
    assert page.status_code == 200 and "collect-expert" in page.text
    assert browser.get("/api/runs").status_code == 200
    stranger = TestClient(create_app(db, token=TOKEN), base_url=BASE)
    stranger.cookies.set(cookie.split("=", 1)[0], "0" * 64)
    assert stranger.get("/runs").status_code == 401  # a forged cookie is no proof
    other = TestClient(create_app(db, token="another-token"), base_url=BASE)
    other.cookies.set(*cookie.split(";", 1)[0].split("=", 1))
    assert other.get("/runs").status_code == 401  # the cookie of one token opens no viewer with another


def test_an_unhandled_error_still_carries_the_security_headers(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    build_db(path)
    with sqlite3.connect(path) as con:  # a column the queries read is gone: an error no handler expects
        con.execute("ALTER TABLE episodes DROP COLUMN final_answer")
    client = TestClient(create_app(path), base_url=BASE, raise_server_exceptions=False)
    response = client.get("/api/episodes?q=x")
    assert response.status_code == 500
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-content-type-options"] == "nosniff"


def _in_netns(script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) in a network namespace of its own: a non-loopback bind there reaches nothing outside."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {probe.stderr.decode().strip()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGYM_")}
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "127.foo.example"])
def test_a_non_loopback_bind_without_token_is_refused(db: Path, host: str) -> None:
    # in a namespace of its own, so that a viewer that wrongly starts listens on nothing reachable
    result = _in_netns(f"exec {sys.executable} -m mcpgym.cli view --db {db} --host '{host}' --port 8000")
    assert result.returncode != 0
    assert "needs a token" in result.stderr and "--token" in result.stderr and "MCPGYM_VIEWER_TOKEN" in result.stderr


def test_a_non_loopback_bind_with_token_serves_only_the_token(db: Path, tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import os, subprocess, sys, time, httpx
        env = dict(os.environ, MCPGYM_VIEWER_TOKEN={TOKEN!r})
        viewer = subprocess.Popen([sys.executable, "-m", "mcpgym.cli", "view", "--db", {str(db)!r},
                                   "--host", "0.0.0.0", "--port", "8000"], env=env)
        try:
            for _ in range(300):
                try:
                    httpx.get("http://127.0.0.1:8000/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            get = lambda path, **kw: httpx.get("http://127.0.0.1:8000" + path, timeout=5, **kw).status_code
            print(get("/healthz"), get("/api/runs"), get("/api/runs", headers={{"Authorization": "Bearer {TOKEN}"}}),
                  get("/api/runs", headers={{"Authorization": "Bearer {TOKEN}", "Host": "evil.example"}}),
                  get("/runs?token={TOKEN}"))
        finally:
            viewer.terminate()
            viewer.wait(10)
    """))
    result = _in_netns(f"ip link set lo up && exec {sys.executable} {driver}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["200", "401", "200", "421", "303"], result.stdout + result.stderr[-2000:]
