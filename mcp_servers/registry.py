"""The tool servers by name: lazily imported factories, and settings with command-line overrides applied."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mcp_servers.errors import ConfigError, ServerUnavailableError, validation_message_middleware

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from mcp_servers.settings import ServerSettings
    from mcp_servers.workspace import WorkspaceManager

__all__ = ["SERVERS", "ServerSpec", "build_server", "load_settings", "server_names"]


@dataclass(frozen=True)
class ServerSpec:
    """How to build one server: its factory as "module:function" and whether it takes a WorkspaceManager."""

    name: str
    factory: str
    needs_workspace: bool
    summary: str


SERVERS: dict[str, ServerSpec] = {
    "files": ServerSpec(
        "files", "mcp_servers.files.server:build_files_server", True, "read, write, edit and search files"
    ),
    "search": ServerSpec("search", "mcp_servers.search.server:build_search_server", False, "full-text/web search"),
    "weather": ServerSpec("weather", "mcp_servers.weather.server:build_weather_server", False, "weather and geocoding"),
    "exec": ServerSpec("exec", "mcp_servers.exec.server:build_exec_server", True, "run code in a sandbox"),
    "almanac": ServerSpec(
        "almanac", "mcp_servers.almanac.server:build_almanac_server", False, "past weather, air quality, sun, units"
    ),
    "shop": ServerSpec("shop", "mcp_servers.shop.server:build_shop_server", False, "catalog, stock, shipping, orders"),
}


def server_names() -> list[str]:
    """The names of all known servers, in serving order."""
    return list(SERVERS)


def _factory(spec: ServerSpec) -> Callable[..., MCPServer]:
    module_name, attr = spec.factory.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ServerUnavailableError(
                f"server {spec.name!r} is not available: module {module_name} is not installed in this build"
            ) from None
        raise ServerUnavailableError(
            f"server {spec.name!r} is not available: it needs the package {exc.name!r}, which is not installed"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ServerUnavailableError(f"server {spec.name!r} is not available: {module_name} has no {attr}()")
    return factory  # type: ignore[no-any-return]


def build_server(name: str, settings: ServerSettings, workspaces: WorkspaceManager | None = None) -> MCPServer:
    """Build one server by name.

    Args:
        name: One of `server_names()`.
        settings: The server settings.
        workspaces: The workspace manager, for servers that act on files (files, exec).

    Returns:
        The configured `MCPServer`.

    Raises:
        ConfigError: Unknown name, or a workspace server built without a WorkspaceManager.
        ServerUnavailableError: The server's module is not installed (yet).
    """
    spec = SERVERS.get(name)
    if spec is None:
        raise ConfigError(f"unknown server {name!r}; known servers: {', '.join(SERVERS)}")
    factory = _factory(spec)
    if spec.needs_workspace:
        if workspaces is None:
            raise ConfigError(f"server {name!r} needs a WorkspaceManager")
        server = factory(workspaces, settings)
    else:
        server = factory(settings)
    server.middleware.append(cast(Any, validation_message_middleware()))
    return server


def load_settings(overrides: Mapping[str, Any] | None = None) -> ServerSettings:
    """Read settings from the environment (`MCPGYM_...`) and apply overrides on top (e.g. from the command line).

    Args:
        overrides: Dotted keys to values, e.g. {"http.port": 9000, "exec.backend": "docker", "token": "t"};
            None values are skipped.

    Returns:
        The merged, validated settings.

    Raises:
        ConfigError: An override names an unknown setting or has an invalid value.
    """
    from pydantic import ValidationError

    from mcp_servers.settings import ServerSettings

    base = ServerSettings()
    data = base.model_dump()
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown setting {key!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"unknown setting {key!r}")
        node[leaf] = value
    if data.get("token") is not None and hasattr(data["token"], "get_secret_value"):
        data["token"] = data["token"].get_secret_value()
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {where}: {first['msg']}") from None
