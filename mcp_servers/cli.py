"""`mcpgym serve` and `mcpgym index`: thin click commands over the registry and the gateway."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mcp_servers.errors import McpGymServerError

__all__ = ["index", "serve"]

F = TypeVar("F", bound=Callable[..., Any])

_EXAMPLES = {
    "files": "mcpgym serve files --transport stdio --workspace ./ws",
    "search": "mcpgym serve search --transport stdio",
    "weather": "mcpgym serve weather --transport http --port 8765",
    "exec": "mcpgym serve exec --transport stdio --backend process --workspace ./ws",
    "almanac": "mcpgym serve almanac --transport stdio",
    "shop": "mcpgym serve shop --transport stdio",
    "all": "mcpgym serve all --transport http --host 127.0.0.1 --port 8765 --workspace ./ws",
}


def _common_options(fn: F) -> F:
    options = [
        click.option(
            "--transport",
            type=click.Choice(["stdio", "http"]),
            default=None,
            help="stdio (one client on stdin/stdout; default for one server) or http (streamable HTTP).",
        ),
        click.option("--host", default=None, help="HTTP bind address [env MCPGYM_HTTP__HOST, default 127.0.0.1]."),
        click.option("--port", type=int, default=None, help="HTTP port [env MCPGYM_HTTP__PORT, default 8765]."),
        click.option(
            "--workspace",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Workspace root for file and exec tools [env MCPGYM_WORKSPACE, default ./workspaces].",
        ),
        click.option(
            "--token",
            default=None,
            envvar="MCPGYM_TOKEN",
            show_envvar=True,
            help="Bearer token HTTP clients must send; required when --host is not loopback.",
        ),
        click.option(
            "--allowed-host",
            "allowed_hosts",
            multiple=True,
            help="Extra Host header value accepted over HTTP (e.g. myhost:8765); repeatable.",
        ),
        click.option("--max-body-bytes", type=int, default=None, help="Largest HTTP request body accepted."),
        click.option("--call-timeout", type=float, default=None, help="Seconds a tool call may run over HTTP."),
        click.option(
            "--session-idle-timeout",
            type=float,
            default=None,
            help="Seconds after which an idle HTTP session and its workspace are removed.",
        ),
        click.option(
            "--max-workspaces",
            type=click.IntRange(min=1),
            default=None,
            help="Most per-client workspaces live at once over HTTP; one more is refused [default 10000].",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="HTTP: gateway processes sharing the port, each with its own servers (use about one per core).",
        ),
        click.option(
            "--sse/--json",
            "sse",
            default=None,
            help="HTTP replies as SSE streams (tools can stream progress) or one JSON body per call "
            "[default --json, env MCPGYM_HTTP__JSON_RESPONSE].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _backend_option(fn: F) -> F:
    return click.option(
        "--backend",
        type=click.Choice(["process", "docker"]),
        default=None,
        help="Sandbox backend for exec [env MCPGYM_EXEC__BACKEND, default process].",
    )(fn)


def _run(names: list[str], opts: dict[str, Any], default_transport: str) -> None:
    from mcp_servers.gateway.serve import serve_http, serve_stdio
    from mcp_servers.registry import load_settings

    transport = opts.pop("transport") or default_transport
    workers = opts.pop("workers", 1) or 1
    allowed = list(opts.pop("allowed_hosts") or ()) or None
    overrides = {
        "http.host": opts.get("host"),
        "http.port": opts.get("port"),
        "workspace": opts.get("workspace"),
        "token": opts.get("token"),
        "http.allowed_hosts": allowed,
        "http.max_body_bytes": opts.get("max_body_bytes"),
        "http.call_timeout_s": opts.get("call_timeout"),
        "http.session_idle_timeout_s": opts.get("session_idle_timeout"),
        "http.max_workspaces": opts.get("max_workspaces"),
        "exec.backend": opts.get("backend"),
        "http.json_response": None if opts.get("sse") is None else not opts["sse"],
    }
    try:
        settings = load_settings(overrides)
        if transport == "stdio":
            if len(names) != 1:
                raise click.UsageError("'serve all' runs several servers and needs --transport http")
            if workers != 1:
                raise click.UsageError("--workers applies to --transport http (stdio serves one client)")
            serve_stdio(names[0], settings)
        else:
            serve_http(names, settings, workers)
    except McpGymServerError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def serve() -> None:
    """Serve MCP tool servers (files, search, weather, exec) over stdio or streamable HTTP.

    \b
    Examples:
      mcpgym serve files --transport stdio --workspace ./ws
      mcpgym serve all --transport http --port 8765 --token s3cret
    """


def _single(name: str, summary: str, with_backend: bool = False) -> click.Command:
    def command(**opts: Any) -> None:
        _run([name], opts, "stdio")

    command.__doc__ = f"Serve the {name} server ({summary}).\n\n    \b\n    Example:\n      {_EXAMPLES[name]}\n    "
    command.__name__ = f"serve_{name}"
    cmd = _common_options(command)
    if with_backend:
        cmd = _backend_option(cmd)
    return serve.command(name=name)(cmd)


serve_files = _single("files", "read, write, edit, search files in a workspace")
serve_search = _single("search", "full-text search over a local corpus or a SearXNG instance")
serve_weather = _single("weather", "current weather, forecasts and geocoding")
serve_exec = _single("exec", "run code in a sandbox in the workspace", with_backend=True)
serve_almanac = _single("almanac", "past weather, air quality, sun times, unit conversion and day counts")
serve_shop = _single("shop", "a store's catalog, stock, shipping quotes, prices in other currencies and order totals")


@serve.command(name="all")
@_common_options
@_backend_option
def serve_all(**opts: Any) -> None:
    """Serve every server in one HTTP app: /files/mcp, /search/mcp, /weather/mcp, /exec/mcp, /almanac/mcp, /shop/mcp,
    /healthz.

    Servers whose module is not installed are skipped with a warning.

    \b
    Example:
      mcpgym serve all --transport http --host 127.0.0.1 --port 8765 --workspace ./ws
    """
    from mcp_servers.registry import server_names

    _run(server_names(), opts, "http")


@click.command(name="index", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rebuild", is_flag=True, help="Drop and rebuild the index even if it exists.")
@click.option(
    "--index-path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Index file [env MCPGYM_SEARCH__INDEX_PATH, default <data_dir>/search.db].",
)
@click.option(
    "--corpus",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="Extra corpus: a folder of .md/.txt files or a JSONL of {id, title, text}; repeatable.",
)
def index(rebuild: bool, index_path: Path | None, corpus: tuple[Path, ...]) -> None:
    """Build the local full-text search index (Wikipedia lead sections plus any user corpus).

    \b
    Example:
      mcpgym index --rebuild --corpus ./notes
    """
    from mcp_servers.registry import load_settings

    try:
        settings = load_settings({"search.index_path": index_path, "search.corpus": list(corpus) or None})
        try:
            from mcp_servers.search.index import build_index
        except ModuleNotFoundError as exc:
            raise click.ClickException(f"the search index is not available in this build ({exc.name} is missing)")
        stats = build_index(settings, rebuild)
    except McpGymServerError as exc:
        raise click.ClickException(str(exc)) from None
    for key, value in stats.items():
        click.echo(f"{key}: {value}")
