"""The `mcpgym` console script: gathers each package's thin CLI as lazily imported sub-commands."""

from __future__ import annotations

import importlib

import click

# sub-command -> ("module:attribute", short help). Modules are imported only when their command runs,
# so `mcpgym serve` never pays for torch and a tools-only install never needs it.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("mcp_servers.cli:serve", "Serve MCP tool servers (files, search, weather, exec) over stdio or HTTP."),
    "index": ("mcp_servers.cli:index", "Build the local full-text search index."),
    "collect": ("collector.cli:collect", "Run agents through MCP servers on tasks and record episodes in SQLite."),
    "export": ("collector.cli:export", "Export recorded episodes as JSONL."),
    "merge": ("collector.cli:merge", "Merge trajectory databases collected independently into one."),
    "reverify": ("collector.cli:reverify", "Judge stored episodes again with today's verifiers; keep the old verdicts."),
    "tasks": ("collector.cli:tasks", "List or dump the built-in and user task suites."),
    "view": ("collector.cli:view", "Browse recorded runs and episodes in a local web viewer."),
    "dataset": ("training.cli:dataset", "Build SFT or GRPO datasets from recorded episodes."),
    "train": ("training.cli:train", "Train a model with TRL (SFT or GRPO)."),
    "eval": ("training.cli:eval_cmd", "Evaluate one or two models on held-out tasks."),
    "demo": ("training.cli:demo", "Run the whole loop on embedded defaults: serve, collect, train, evaluate."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # an optional extra is missing
            missing = exc.name or str(exc)

            @click.command(name=cmd_name, help=target[1])
            def unavailable() -> None:
                raise click.ClickException(
                    f"'mcpgym {cmd_name}' needs the package '{missing}', which is not installed. "
                    "Install the model-side extra with: pip install 'mcpgym[train]'"
                )

            return unavailable
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcpgym")
def main() -> None:
    """mcpgym: turn tool-using LLM agents into training data and better models.

    \b
    Example:
      mcpgym demo --quick
    """


if __name__ == "__main__":
    main()
