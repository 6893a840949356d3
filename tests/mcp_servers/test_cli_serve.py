"""`mcpgym serve` / `mcpgym index`: help texts, refusals, settings precedence, unavailable servers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mcp_servers import registry
from mcp_servers.cli import index, serve
from mcp_servers.errors import ConfigError, ServerUnavailableError
from mcp_servers.registry import ServerSpec, build_server, load_settings
from mcp_servers.settings import ServerSettings
from mcp_servers.workspace import WorkspaceManager
from mcpgym.cli import main


@pytest.mark.parametrize("sub", ["files", "search", "weather", "exec", "all"])
def test_every_serve_command_has_help_and_example(sub: str) -> None:
    result = CliRunner().invoke(serve, [sub, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"mcpgym serve {sub}" in result.output
    for option in ("--transport", "--host", "--port", "--workspace", "--token", "--max-body-bytes", "--call-timeout"):
        assert option in result.output
    assert ("--backend" in result.output) == (sub in ("exec", "all"))


def test_group_and_index_help() -> None:
    runner = CliRunner()
    assert "Example" in runner.invoke(main, ["serve", "--help"]).output
    out = runner.invoke(index, ["--help"]).output
    assert "--rebuild" in out and "Example" in out


def test_non_loopback_host_needs_a_token(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCPGYM_TOKEN", raising=False)
    result = CliRunner().invoke(serve, ["all", "--host", "0.0.0.0", "--port", "1", "--workspace", str(tmp_path)])
    assert result.exit_code != 0
    assert "bearer token is required" in result.output and "--token" in result.output


def test_all_over_stdio_is_a_usage_error(tmp_path: pytest.TempPathFactory) -> None:
    result = CliRunner().invoke(serve, ["all", "--transport", "stdio", "--workspace", str(tmp_path)])
    assert result.exit_code == 2 and "--transport http" in result.output


def test_bad_option_values_are_named() -> None:
    result = CliRunner().invoke(serve, ["files", "--transport", "carrier-pigeon"])
    assert result.exit_code == 2 and "stdio" in result.output and "http" in result.output
    with pytest.raises(ConfigError, match="http.port"):
        load_settings({"http.port": "not-a-number"})
    with pytest.raises(ConfigError, match="unknown setting 'http.colour'"):
        load_settings({"http.colour": "red"})


def test_cli_options_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPGYM_HTTP__PORT", "9100")
    monkeypatch.setenv("MCPGYM_EXEC__BACKEND", "docker")
    settings = load_settings({"http.port": None})
    assert settings.http.port == 9100 and settings.exec.backend == "docker"
    settings = load_settings({"http.port": 9200, "exec.backend": "process", "token": "t"})
    assert settings.http.port == 9200 and settings.exec.backend == "process"
    assert settings.token is not None and settings.token.get_secret_value() == "t"


def test_unknown_and_unavailable_servers(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    workspaces = WorkspaceManager(tmp_path, per_session=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown server 'ftp'"):
        build_server("ftp", ServerSettings(), workspaces)
    monkeypatch.setitem(
        registry.SERVERS, "ghost", ServerSpec("ghost", "mcp_servers.ghost.server:build_ghost_server", False, "missing")
    )
    with pytest.raises(ServerUnavailableError, match="server 'ghost' is not available"):
        build_server("ghost", ServerSettings())
    with pytest.raises(ConfigError, match="needs a WorkspaceManager"):
        build_server("files", ServerSettings())
    assert build_server("files", ServerSettings(), workspaces).name == "mcpgym-files"
