"""The MCP client config file: accepted shapes and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.errors import ConfigError
from collector.servers import load_server_config, parse_server_config


def test_yaml_and_json_configs(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "mcpServers:\n  files:\n    command: mcpgym\n    args: [serve, files, --transport, stdio]\n"
        "    env: {MCPGYM_X: '1'}\n  remote:\n    url: http://127.0.0.1:9/mcp\n    headers: {Authorization: Bearer t}\n")
    specs = load_server_config(tmp_path / "s.yaml")
    assert specs["files"].transport == "stdio" and specs["files"].args[0] == "serve"
    assert specs["files"].env == {"MCPGYM_X": "1"}
    assert specs["remote"].transport == "http" and specs["remote"].headers["Authorization"] == "Bearer t"
    (tmp_path / "s.json").write_text(json.dumps({"mcpServers": {"w": {"url": "http://127.0.0.1:1/w/mcp"}}}))
    assert load_server_config(tmp_path / "s.json")["w"].url == "http://127.0.0.1:1/w/mcp"


@pytest.mark.parametrize(("data", "message"), [
    ({}, "mcpServers"),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, "exactly one"),
    ({"mcpServers": {"a": {}}}, "exactly one"),
    ({"mcpServers": {"a": {"url": "ftp://h"}}}, "http://"),
    ({"mcpServers": {"a": {"command": "x", "args": "no"}}}, "'args' must be a list"),
    ({"mcpServers": {"a__b": {"command": "x"}}}, "without '__'"),
    ({"mcpServers": {"a": {"command": "x", "bogus": 1}}}, "unknown keys"),
])
def test_bad_configs_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_server_config(data)


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_server_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_server_config(tmp_path / "bad.json")
