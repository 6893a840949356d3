"""Run servers: one server on stdio, or the gateway over streamable HTTP with uvicorn."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp_servers.errors import ConfigError

if TYPE_CHECKING:
    from mcp_servers.settings import ServerSettings

__all__ = ["check_http_settings", "serve_http", "serve_stdio"]


def serve_stdio(name: str, settings: ServerSettings) -> None:
    """Serve one server on stdin/stdout until the client closes the stream.

    File and exec tools work directly in `settings.workspace` (one client, one workspace).

    Args:
        name: The server name (files, search, weather, exec).
        settings: Server settings.
    """
    import asyncio

    from mcp_servers.gateway.fast_stdio import run_stdio_fast
    from mcp_servers.registry import build_server
    from mcp_servers.workspace import WorkspaceManager

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workspaces = WorkspaceManager(settings.workspace, per_session=False)
    server = build_server(name, settings, workspaces)
    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        runner.run(run_stdio_fast(server))


def _fast_loop_factory() -> Any:
    """uvloop's event loop when it is installed (a faster loop for the many small messages of MCP), else None."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def check_http_settings(settings: ServerSettings) -> None:
    """Refuse settings that would expose tools without protection.

    Args:
        settings: Server settings.

    Raises:
        ConfigError: The host is not loopback and no token is set, or a limit is not positive.
    """
    from mcp_servers.gateway.guard import is_loopback

    http = settings.http
    if not is_loopback(http.host) and (settings.token is None or not settings.token.get_secret_value()):
        raise ConfigError(
            f"--host {http.host} accepts connections from other machines, so a bearer token is required: "
            "pass --token or set MCPGYM_TOKEN (or bind to 127.0.0.1)"
        )
    if not 0 < http.port < 65536:
        raise ConfigError(f"--port: must be 1-65535, got {http.port}")
    for label, value in (
        ("max_body_bytes", http.max_body_bytes),
        ("call_timeout_s", http.call_timeout_s),
        ("session_idle_timeout_s", http.session_idle_timeout_s),
    ):
        if value <= 0:
            raise ConfigError(f"http.{label}: must be > 0, got {value}")


EXIT_WITH_PARENT_ENV = "MCPGYM_EXIT_WITH_PARENT"
"""Set to a process id by whoever starts a gateway it owns (the collector's managed gateway): the gateway shuts down
when that process is gone, even when it died without stopping it (SIGKILL, an unhandled SIGTERM)."""


def exit_with_parent(interval_s: float = 0.5) -> None:
    """When `MCPGYM_EXIT_WITH_PARENT` names this process's parent, end this process (SIGTERM: a graceful shutdown
    that removes the workspaces) once the parent is gone. Without the variable, nothing happens.

    A thread polls `os.getppid()`: a process whose parent dies is handed to another parent, so the id changes. (Linux's
    PR_SET_PDEATHSIG would fire when the *thread* that started the gateway ends, and the collector restarts gateways
    from worker threads.)

    Raises:
        ConfigError: the variable is set but is not a process id.
    """
    import os
    import signal
    import threading
    import time

    raw = os.environ.pop(EXIT_WITH_PARENT_ENV, "")  # not inherited by the servers' own children
    if not raw:
        return
    if not raw.isdigit():
        raise ConfigError(f"{EXIT_WITH_PARENT_ENV} must be a process id (digits), got {raw!r}")
    parent = int(raw)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        logging.getLogger(__name__).warning("the process that started this gateway (%d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    if os.getppid() != parent:  # already gone (or a wrong id): stop now rather than serve an owner that is not there
        raise ConfigError(f"{EXIT_WITH_PARENT_ENV}={parent} is not this process's parent ({os.getppid()})")
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def serve_http(names: Sequence[str], settings: ServerSettings, workers: int = 1) -> None:
    """Serve the named servers over streamable HTTP at `/<name>/mcp` (plus `/healthz`) until interrupted.

    Args:
        names: Servers to mount; unavailable ones are skipped with a warning.
        settings: Server settings.
        workers: Gateway processes sharing the port, each with its own servers (see `http_server.serve_workers`).

    Raises:
        ConfigError: See `check_http_settings`, no server is available, `workers` is below 1, or several workers
            were asked for with SSE responses.
    """
    from mcp_servers.gateway.http_server import run_uvicorn, serve_workers

    check_http_settings(settings)
    if workers < 1:
        raise ConfigError(f"--workers: must be at least 1, got {workers}")
    if workers > 1 and not settings.http.json_response:
        raise ConfigError(
            "--workers above 1 needs JSON responses (--json, the default): with --sse the SDK keeps each session in "
            "the process that opened it, where requests arriving at another worker cannot reach it"
        )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    exit_with_parent()
    host = settings.http.host
    shown = f"[{host}]" if ":" in host else host
    if workers > 1:
        serve_workers(list(names), settings, workers)
        return
    from mcp_servers.gateway.app import build_gateway

    gateway = build_gateway(settings, names)
    for name, reason in gateway.skipped.items():
        print(f"mcpgym: skipping {name}: {reason}", file=sys.stderr)
    for name, path in gateway.paths.items():
        print(f"mcpgym: {name} at http://{shown}:{settings.http.port}{path}", file=sys.stderr)
    run_uvicorn(gateway.app, settings)
