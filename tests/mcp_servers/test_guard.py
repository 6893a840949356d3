"""The checks every mcpgym HTTP app shares: which binds are loopback, which Host and Origin values are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mcp_servers.errors import ConfigError
from mcp_servers.gateway.app import build_gateway
from mcp_servers.gateway.guard import HostPolicy, is_loopback
from mcp_servers.gateway.serve import check_http_settings
from mcp_servers.settings import HttpSettings, ServerSettings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True), ("localhost", True),
        ("LocalHost", True), ("::ffff:127.0.0.1", True),
        ("127.foo.example", False), ("127.0.0.1.nip.io", False), ("127.", False), ("1270.0.0.1", False),
        ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("localhost.example", False), ("", False),
    ],
)  # fmt: skip
def test_is_loopback_only_for_loopback_literals_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_name_that_looks_like_loopback_still_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCPGYM_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="bearer token is required"):
        check_http_settings(ServerSettings(http=HttpSettings(host="127.foo.example")))
    check_http_settings(ServerSettings(http=HttpSettings(host="127.0.0.2")))  # a real loopback address


def test_host_policy_matching() -> None:
    policy = HostPolicy.for_bind("127.0.0.1", ["myhost:8765", "other:*"])
    accepted = ["127.0.0.1:8765", "127.0.0.1", "LOCALHOST:1", "[::1]:8765", "myhost:8765", "other", "other:9"]
    refused = ["evil.example", "127.0.0.1:8765.evil.example", "127.0.0.1:", "127.0.0.1:x", "[::1]x", "myhost:8766",
               "myhost", "localhost.evil.example:80", "", None]  # fmt: skip
    assert [h for h in accepted if not policy.host_ok(h)] == []
    assert [h for h in refused if policy.host_ok(h)] == []
    assert policy.origin_ok(None) and policy.origin_ok("http://127.0.0.1:8765") and policy.origin_ok("https://myhost:8765")
    for origin in ("null", "http://evil.example", "http://127.0.0.1.evil.example", "http://myhost:8765.evil", ""):
        assert not policy.origin_ok(origin), origin
    assert HostPolicy.for_bind("fd00::7").host_ok("[fd00::7]:8765")  # a specific IPv6 bind, in brackets
    assert HostPolicy.for_bind("192.0.2.7").host_ok("192.0.2.7:8765")
    assert not HostPolicy.for_bind("0.0.0.0").host_ok("0.0.0.0:8765")  # a wildcard names no host


def test_gateway_accepts_allowed_hosts_on_every_path(tmp_path: Path) -> None:
    settings = ServerSettings(workspace=tmp_path, http=HttpSettings(allowed_hosts=["tools:8765"]))
    client = TestClient(build_gateway(settings, ["weather"]).app, base_url="http://127.0.0.1:8765")
    assert client.get("/healthz", headers={"Host": "tools:8765"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "tools:8766"}).status_code == 421
    assert client.get("/healthz", headers={"Host": "testserver"}).status_code == 421
