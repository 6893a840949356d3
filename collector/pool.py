"""The MCP client pool: per-episode tool sessions to stdio or HTTP servers, with cached tool lists and restarts.

An HTTP server that speaks MCP 2026-07-28 (asked once per URL with `server/discover`) is reached without a session:
each call is one POST over the pool's shared connections (`collector.http_calls`), the episode's workspace named by
the `Mcpgym-Workspace` header. Other servers, stdio servers and `mcp_client="sdk"` get one MCP SDK client session
per server and episode.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Self, TextIO

import httpx2
from mcp.shared.exceptions import MCPError

from collector.errors import ConfigError, ToolSessionError
from collector.http_calls import ModernServer, SessionlessConnection, probe, release_workspace
from collector.sdk_session import SessionConnection, SharedTransport, tool_dict
from collector.servers import ManagedGateway, ServerSpec
from collector.settings import CollectorSettings
from collector.tools import (
    ToolRef,
    ToolResult,
    mcp_tool_to_openai,
    namespaced,
    parse_arguments,
    result_text,
    truncate_output,
)
from collector.types import OpenAITool
from collector.workspace import WorkspaceOps

__all__ = ["WORKSPACE_HEADER", "ToolPool", "ToolSession", "offered_tools"]

WORKSPACE_HEADER = "Mcpgym-Workspace"  # the gateway keys workspaces by it: one workspace across a session's servers

ToolsCallback = Callable[[str, list[dict[str, Any]]], Sequence[str]]


def offered_tools(tools_by_server: Mapping[str, list[dict[str, Any]]], subset: Mapping[str, Sequence[str]] | None
                  ) -> dict[str, list[dict[str, Any]]]:
    """The MCP tools offered to the model: a server in `subset` offers only the named tools (in its own order).

    Args:
        tools_by_server: server -> its MCP tool dicts (as listed).
        subset: server -> tool names (a task's `tools`); a server not in it offers all its tools.

    Raises:
        ConfigError: `subset` names a server that is not attached, or a tool its server does not have.
    """
    subset = subset or {}
    stray = [s for s in subset if s not in tools_by_server]
    if stray:
        raise ConfigError(f"the tool subset names server(s) {stray} that this session does not attach "
                          f"(attached: {list(tools_by_server)})")
    out: dict[str, list[dict[str, Any]]] = {}
    for server, tools in tools_by_server.items():
        if server not in subset:
            out[server] = list(tools)
            continue
        names = [str(t["name"]) for t in tools]
        missing = [n for n in subset[server] if n not in names]
        if missing:
            raise ConfigError(f"server {server!r} has no tool {', '.join(map(repr, missing))} to offer; its tools: "
                              f"{', '.join(names) or 'none'}")
        wanted = set(subset[server])
        out[server] = [t for t in tools if t["name"] in wanted]
    return out


class ToolSession(WorkspaceOps):
    """The tools of one episode: one MCP session per attached server, all in one fresh workspace.

    Over HTTP the sessions of one ToolSession send the same `Mcpgym-Workspace` id, so files written through the files
    server are what the exec server runs; a stdio server gets its own `{workspace}` directory (see the config docs).

    Use through `ToolPool.session(...)`. `tools` are the OpenAI tools offered (namespaced `server__tool` when several
    servers are attached; a task's `tools` subset leaves the others out); `call` runs one model-emitted call and
    never raises for a bad call: unknown (or not offered) tools, invalid JSON and schema-violating arguments come back
    as error results the model can read. `call_tool` reaches every tool of an attached server (workspace setup and
    verifiers use it), offered or not.
    """

    def __init__(self, conns: dict[str, SessionConnection | SessionlessConnection], tools_by_server: dict[str, list[dict[str, Any]]], *,
                 call_timeout_s: float, max_output_chars: int, workspace_id: str = "",
                 scratch: Path | None = None, background: Callable[[Awaitable[None]], None] | None = None,
                 short_descriptions: bool = False,
                 release: Callable[[list[ServerSpec]], Awaitable[None]] | None = None) -> None:
        self._conns = conns
        self.workspace_id = workspace_id
        self._scratch = scratch
        self._background = background
        self._release = release
        self._called: set[str] = set()  # servers this session sent a tool call (only those may have made a workspace)
        self.servers = list(conns)
        self.call_timeout_s = call_timeout_s
        self.max_output_chars = max_output_chars
        several = len(conns) > 1
        self.refs: dict[str, ToolRef] = {}
        self.tools: list[OpenAITool] = []
        for server, tools in tools_by_server.items():
            for tool in tools:
                exposed = namespaced(server, str(tool["name"]), several=several)
                self.refs[exposed] = ToolRef(exposed, server, str(tool["name"]), dict(tool.get("inputSchema") or {}))
                self.tools.append(mcp_tool_to_openai(tool, name=exposed, short=short_descriptions))

    @property
    def sessionless(self) -> list[str]:
        """The attached servers reached without an MCP session (one POST per call, MCP 2026-07-28)."""
        return [n for n, c in self._conns.items() if isinstance(c, SessionlessConnection)]

    def resolve(self, name: str) -> ToolRef | None:
        """The tool a (possibly namespaced) name refers to, or None."""
        return self.refs.get(name)

    async def call(self, name: str, arguments_json: str) -> ToolResult:
        """Run one call as the model emitted it (`arguments_json` is the raw JSON string).

        Raises:
            ToolSessionError: the server died during the call (the episode cannot go on).
        """
        ref = self.refs.get(name)
        if ref is None:
            offered = ", ".join(sorted(self.refs)) or "none"
            return ToolResult(f"Error: unknown tool '{name}'. Available tools: {offered}.", is_error=True,
                              error_kind="unknown_tool")
        args, error = parse_arguments(ref, arguments_json)
        if error is not None:
            return error
        assert args is not None
        return await self.call_tool(ref.server, ref.tool, args)

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:
        """Call a tool by server and MCP name with already-parsed arguments (no schema check).

        Raises:
            ToolSessionError: the server is not attached to this session, or died during the call.
        """
        conn = self._conns.get(server)
        if conn is None:
            raise ToolSessionError(f"server {server!r} is not attached to this session (attached: {self.servers})")
        self._called.add(server)
        start = time.perf_counter()
        try:
            if isinstance(conn, SessionlessConnection):
                async with asyncio.timeout(self.call_timeout_s):
                    outcome = await conn.call_tool(tool, arguments)
                text, is_error, structured = outcome.text, outcome.is_error, outcome.structured
            else:
                result = await conn.request(lambda c: c.call_tool(tool, arguments), self.call_timeout_s)
                text, is_error, structured = result_text(result.content), bool(result.is_error), \
                    result.structured_content
        except TimeoutError:
            if isinstance(conn, SessionlessConnection):
                conn.suspect()  # a hung server is found (and a managed one restarted) when the next session opens
            return ToolResult(f"Error: the tool '{tool}' did not answer within {self.call_timeout_s:g} seconds.",
                              is_error=True, duration_s=time.perf_counter() - start, server=server, tool=tool,
                              error_kind="timeout")
        except MCPError as exc:
            return ToolResult(f"Error: {exc.error.message}", is_error=True, duration_s=time.perf_counter() - start,
                              server=server, tool=tool, error_kind="protocol_error")
        except (ToolSessionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # e.g. a result that does not validate: the model reads why
            if conn.dead:
                raise ToolSessionError(f"server died: {type(exc).__name__}: {exc}") from exc
            return ToolResult(f"Error: the server's answer could not be read ({type(exc).__name__}: {exc})"[:2000],
                              is_error=True, duration_s=time.perf_counter() - start, server=server, tool=tool,
                              error_kind="protocol_error")
        text, truncated = truncate_output(text, self.max_output_chars)
        return ToolResult(text, is_error=is_error, structured=structured,
                          duration_s=time.perf_counter() - start, server=server, tool=tool,
                          error_kind="tool_error" if is_error else None, truncated=truncated)

    async def aclose(self, *, wait: bool = True) -> None:
        """Close every server session (sessionless servers have none to close), then release the workspace.

        Over HTTP the episode's workspace (its `Mcpgym-Workspace` id) is released with one request per gateway
        (`ToolPool` sends it) when the episode called a server that keeps workspaces; a failed release is logged
        and never fails the episode. With nothing to close or release this returns at once.

        Args:
            wait: wait until the servers acknowledged (and stdio processes exited). With False the closing goes on
                in the background (the pool waits for it when it closes), which saves the episode a round trip.
        """
        release = [self._conns[n].spec for n in self._called if self._conns[n].keeps_workspace] if self._release else []
        self._called.clear()
        if (self._scratch is None and not release
                and all(isinstance(c, SessionlessConnection) for c in self._conns.values())):
            return
        if not wait and self._background is not None:
            self._background(self._close_all(release))
        else:
            await self._close_all(release)

    async def _close_all(self, release: list[ServerSpec]) -> None:
        await asyncio.gather(*(c.close() for c in self._conns.values() if isinstance(c, SessionConnection)),
                             return_exceptions=True)
        if release and self._release is not None:
            await self._release(release)  # after the sessions ended: no call of this episode is still running
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


class ToolPool:
    """Attaches to a set of MCP servers and opens a fresh session per episode.

    Args:
        servers: name -> spec (from `load_server_config`); None starts `mcpgym serve all --transport http` on a free
            loopback port (run-scoped workspace root) and stops it at the end.
        settings: timeouts and output budget (default: from the environment).
        on_tools: called with (server, MCP tool dicts) whenever a server's tools are (re)listed; returns the names
            whose definition changed (e.g. `Store.record_tools`).
        errlog: where stdio servers' stderr goes (default: discarded).

    Example:
        async with ToolPool() as pool, pool.session(["weather"]) as s:
            result = await s.call("get_current_weather", '{"location": "Paris"}')
    """

    def __init__(self, servers: Mapping[str, ServerSpec] | None = None, *, settings: CollectorSettings | None = None,
                 on_tools: ToolsCallback | None = None, errlog: TextIO | None = None) -> None:
        self.settings = settings or CollectorSettings()
        self.gateway = None if servers is not None else ManagedGateway(
            self.settings.workspace_root, start_timeout_s=self.settings.server_start_timeout_s,
            keep_workspaces=self.settings.keep_workspaces)
        self._specs = dict(servers) if servers is not None else {}
        self._on_tools = on_tools
        self._own_errlog = errlog is None
        self._errlog: TextIO = errlog or open(os.devnull, "w")  # noqa: SIM115 - closed in aclose()
        self._tools: dict[str, list[dict[str, Any]]] = {}
        self._tool_locks: dict[str, asyncio.Lock] = {}
        self._restart_lock = asyncio.Lock()
        self.changed_tools: list[tuple[str, str]] = []
        self._scratch: Path | None = None
        self._http: httpx2.AsyncHTTPTransport | None = None
        self._calls_client: httpx2.AsyncClient | None = None
        self._modern: dict[str, ModernServer | None] = {}  # URL -> the server when it speaks 2026-07-28, else None
        self._probe_locks: dict[str, asyncio.Lock] = {}
        self._closers: set[asyncio.Future[None]] = set()
        self._no_release: set[tuple[str, str, int | None]] = set()  # gateways that do not take workspace releases

    @property
    def server_names(self) -> list[str]:
        """Names of the attachable servers."""
        return list(self._specs)

    async def start(self) -> None:
        """Start the managed server (no-op for a configured pool)."""
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.start)
            self._specs = self.gateway.specs()

    async def aclose(self) -> None:
        """Wait for sessions closing in the background, stop the managed server and release resources."""
        if self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.cleanup)
        if self._calls_client is not None:
            await self._calls_client.aclose()
            self._calls_client = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._own_errlog:
            self._errlog.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _ensure_gateway(self, *, check_health: bool = False) -> bool:
        """Restart the managed gateway if it died; True when it was restarted."""
        if self.gateway is None or (not check_health and self.gateway.alive()):
            return False
        async with self._restart_lock:
            if await asyncio.to_thread(self.gateway.ensure_running, check_health=check_health):
                self._specs = self.gateway.specs()
                self._tools.clear()
                self._modern.clear()
                return True
        return False

    def _spec(self, name: str) -> ServerSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise ConfigError(f"no MCP server named {name!r}; attached servers: {', '.join(self._specs) or 'none'}")
        return spec

    def _session_spec(self, name: str, workspace_id: str) -> ServerSpec:
        """The spec for one session: the shared workspace header (HTTP) or `{workspace}` filled in (stdio)."""
        spec = self._spec(name)
        if spec.url:
            return replace(spec, headers={WORKSPACE_HEADER: workspace_id, **spec.headers})
        texts = [spec.cwd or "", *spec.args, *spec.env.values()]
        if not any("{workspace}" in t for t in texts):
            return spec
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="mcpgym-stdio-ws-"))
        ws = self._scratch / workspace_id
        ws.mkdir(parents=True, exist_ok=True)

        def fill(text: str) -> str:
            return text.replace("{workspace}", str(ws))

        return replace(spec, args=tuple(fill(a) for a in spec.args), cwd=fill(spec.cwd) if spec.cwd else None,
                       env={k: fill(v) for k, v in spec.env.items()})

    def _shared_transport(self) -> httpx2.AsyncHTTPTransport:
        if self._http is None:
            self._http = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_connections=None,
                                                                        max_keepalive_connections=256))
        return self._http

    def _broken(self, url: str) -> None:
        """A sessionless request to `url` failed at the connection: ask its revision again before the next session."""
        self._modern.pop(url, None)

    def _client(self) -> httpx2.AsyncClient:
        """The client of the pool's own requests (sessionless calls, revision probes, workspace releases)."""
        if self._calls_client is None:
            self._calls_client = httpx2.AsyncClient(
                transport=SharedTransport(self._shared_transport()), trust_env=False,
                timeout=httpx2.Timeout(self.settings.connect_timeout_s, read=None))
        return self._calls_client

    async def _release_workspace(self, specs: list[ServerSpec]) -> None:
        """Release an ended episode's workspace: one `DELETE` per gateway (scheme, host and port), since every server
        of a gateway shares its workspaces. Never raises; failures are logged (`http_calls.release_workspace`)."""
        targets: dict[tuple[str, str, int | None], ServerSpec] = {}
        for spec in specs:
            url = httpx2.URL(spec.url or "")
            origin = (url.scheme, url.host, url.port)
            if origin not in self._no_release:
                targets.setdefault(origin, spec)
        if not targets:
            return
        client = self._client()
        answers = await asyncio.gather(*(release_workspace(client, spec, self.settings.connect_timeout_s)
                                         for spec in targets.values()))
        self._no_release.update(origin for origin, answer in zip(targets, answers, strict=True) if answer is None)

    async def _modern_server(self, spec: ServerSpec) -> ModernServer | None:
        """The server when it speaks 2026-07-28 and `mcp_client` allows sessionless calls (asked once per URL).

        Raises:
            ToolSessionError: the server cannot be reached.
        """
        url = spec.url or ""
        if self.settings.mcp_client == "sdk" or self.settings.mcp_mode == "legacy":
            return None
        if url in self._modern:
            return self._modern[url]
        async with self._probe_locks.setdefault(url, asyncio.Lock()):
            if url not in self._modern:
                try:
                    async with asyncio.timeout(self.settings.connect_timeout_s):
                        server = await probe(self._client(), spec)
                except (httpx2.TransportError, TimeoutError) as exc:
                    detail = f"{type(exc).__name__}: {exc}" if str(exc) else \
                        f"no answer in {self.settings.connect_timeout_s:g}s"
                    raise ToolSessionError(f"cannot connect to MCP server {spec.name!r} ({url}): {detail}") from exc
                self._modern[url] = server
            return self._modern[url]

    async def _connect(self, name: str, workspace_id: str) -> SessionConnection | SessionlessConnection:
        spec = self._session_spec(name, workspace_id)
        if spec.url:
            server = await self._modern_server(spec)
            if server is not None and self._calls_client is not None:
                return SessionlessConnection(spec, server, self._calls_client, self._broken)
        transport = SharedTransport(self._shared_transport()) if spec.url else None
        conn = SessionConnection(spec, mode=self.settings.mcp_mode, errlog=self._errlog, transport=transport)
        await conn.open(self.settings.connect_timeout_s)
        return conn

    async def _tools_of(self, name: str, conn: SessionConnection | SessionlessConnection) -> list[dict[str, Any]]:
        lock = self._tool_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._tools:
                try:
                    if isinstance(conn, SessionlessConnection):
                        async with asyncio.timeout(self.settings.connect_timeout_s):
                            tools = await conn.list_tools()
                    else:
                        listing = await conn.request(lambda c: c.list_tools(), self.settings.connect_timeout_s)
                        tools = [tool_dict(t) for t in listing.tools]
                except TimeoutError as exc:
                    raise ToolSessionError(f"MCP server {name!r} did not list its tools in time") from exc
                except (MCPError, ValueError) as exc:
                    if not isinstance(conn, SessionlessConnection):
                        raise
                    detail = exc.error.message if isinstance(exc, MCPError) else f"{type(exc).__name__}: {exc}"
                    raise ToolSessionError(f"MCP server {name!r} ({conn.spec.url}) did not list its tools: "
                                           f"{detail}"[:2000]) from exc
                self._tools[name] = tools
                if self._on_tools is not None:
                    self.changed_tools.extend((name, t) for t in self._on_tools(name, tools))
            if isinstance(conn, SessionlessConnection) and not conn.server.listed:
                conn.server.absorb(self._tools[name])
            return self._tools[name]

    async def _open_all(self, names: list[str], workspace_id: str
                        ) -> tuple[dict[str, SessionConnection | SessionlessConnection], dict[str, list[dict[str, Any]]]]:
        conns: dict[str, SessionConnection | SessionlessConnection] = {}
        try:
            for n in names:
                conns[n] = await self._connect(n, workspace_id)
            tools = {n: await self._tools_of(n, c) for n, c in conns.items()}
        except BaseException:
            await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
            raise
        return conns, tools

    async def open_session(self, servers: Sequence[str], tools: Mapping[str, Sequence[str]] | None = None
                           ) -> ToolSession:
        """Open one session per named server; close it with `aclose()` (or use `session()`).

        Args:
            servers: the server names.
            tools: server -> the tool names offered to the model (a task's `tools`); a server not in it offers all
                its tools.

        Raises:
            ConfigError: a server name is not attached, or `tools` names a server or tool the session does not have.
            ToolSessionError: a server cannot be reached (after restarting a dead managed server).
        """
        names = list(dict.fromkeys(servers))
        for n in names:
            self._spec(n)
        await self._ensure_gateway()
        workspace_id = f"ep-{uuid.uuid4().hex[:16]}"
        try:
            conns, listed = await self._open_all(names, workspace_id)
        except ToolSessionError:
            if not await self._ensure_gateway(check_health=True):
                raise
            conns, listed = await self._open_all(names, workspace_id)  # the managed server was restarted
        try:
            offered = offered_tools(listed, tools)
        except ConfigError:
            await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
            raise
        scratch = self._scratch / workspace_id if self._scratch is not None else None
        return ToolSession(conns, offered, call_timeout_s=self.settings.call_timeout_s,
                           max_output_chars=self.settings.max_tool_output_chars, workspace_id=workspace_id,
                           scratch=scratch if scratch is not None and scratch.exists() else None,
                           background=self._in_background,
                           short_descriptions=self.settings.tool_descriptions == "short",
                           release=self._release_workspace)

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    @asynccontextmanager
    async def session(self, servers: Sequence[str], *, tools: Mapping[str, Sequence[str]] | None = None,
                      wait_close: bool = True) -> AsyncIterator[ToolSession]:
        """`async with pool.session(["files", "exec"]) as s:` a fresh session (and workspace) per server.

        Args:
            servers: the server names.
            tools: server -> the tool names offered (a task's `tools`; see `open_session`).
            wait_close: wait for the sessions to close on exit (False: close in the background).
        """
        s = await self.open_session(servers, tools)
        try:
            yield s
        finally:
            await s.aclose(wait=wait_close)

    def forget(self, server: str) -> None:
        """Drop a server's cached tool list (it is listed again, and re-recorded, on the next session)."""
        self._tools.pop(server, None)

    async def list_tools(self, servers: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """The MCP tool definitions of each server (for schema task generation and docs)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name in servers or self.server_names:
            async with self.session([name]):
                out[name] = self._tools[name]
        return out

