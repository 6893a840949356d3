"""The `mcpgym` console script: every sub-command imports, has help text and an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mcpgym.cli import COMMANDS, main


def _walk(cmd: click.Command, path: str) -> list[tuple[str, click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out.extend(_walk(sub, f"{path} {name}"))
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    for path, cmd in _walk(command, name):
        assert cmd.help, f"'mcpgym {path}' has no help text"
        result = CliRunner().invoke(main, [*path.split(), "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_top_level_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
