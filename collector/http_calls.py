"""Sessionless MCP over HTTP (revision 2026-07-28): one JSON POST per request, no session to open or close.

The 2026-07-28 revision has no handshake: every request is self-contained (the `_meta` envelope with the protocol
version, client info and capabilities, and the `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers the
revision requires on HTTP). The tool pool (`collector.pool`) sends an episode's calls this way to a server that
speaks the revision, over its shared connection pool, with the `Mcpgym-Workspace` header that keys the episode's
workspace; everything else goes through the MCP SDK's client session. The wire pieces are here, in one place; the
header names and encodings, the envelope keys and the `x-mcp-header` rules are the SDK's own.

What the SDK's client does with an answer, done the same way here so that both paths give the same `ToolResult`s:
a JSON-RPC error (also in the body of a 4xx/5xx reply) is an `MCPError`; a 404 without a JSON-RPC body is
"Not Found", any other failed status "Server returned an error response"; an answer that cannot be read raises an
ordinary exception; structured content is checked against the tool's output schema (`RuntimeError`, the SDK's
messages); tools whose `x-mcp-header` annotations are invalid are dropped from the listing, and the valid ones are
mirrored into `Mcp-Param-*` headers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import jsonschema
import mcp_types as types
from mcp.client.session import DEFAULT_CLIENT_INFO
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PROTOCOL_VERSION_META_KEY,
)
from mcp_types.version import LATEST_MODERN_VERSION, MODERN_PROTOCOL_VERSIONS

from collector.errors import ToolSessionError
from collector.servers import ServerSpec

__all__ = ["PROTOCOL_VERSION", "WORKSPACE_EXTENSION", "CallOutcome", "ModernServer", "SessionlessConnection",
           "UnreadableAnswer", "content_text", "probe", "release_workspace"]

_log = logging.getLogger(__name__)

WORKSPACE_EXTENSION = "mcpgym/workspace"
"""The capability extension a gateway server advertises when it keeps per-client workspaces (`Mcpgym-Workspace`),
which a client releases with a `DELETE` carrying the header (mcp_servers.workspace.manager.WORKSPACE_EXTENSION)."""

PROTOCOL_VERSION = LATEST_MODERN_VERSION  # "2026-07-28"
_META: dict[str, Any] = {
    PROTOCOL_VERSION_META_KEY: PROTOCOL_VERSION,
    CLIENT_INFO_META_KEY: DEFAULT_CLIENT_INFO.model_dump(by_alias=True, mode="json", exclude_none=True),
    CLIENT_CAPABILITIES_META_KEY: {},
}
_BASE_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                 MCP_PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION}
_ids = itertools.count(1)


class UnreadableAnswer(ValueError):
    """The server's answer is not a JSON-RPC response to the request (or not a tool result)."""


def _where(spec: ServerSpec) -> str:
    """`MCP server 'name' (url)`: how errors name a server."""
    return f"MCP server {spec.name!r} ({spec.url})"


def _sse_messages(body: bytes) -> list[Any]:
    """The JSON `data` of each event of a text/event-stream body."""
    out: list[Any] = []
    for event in body.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:"))
        if data:
            out.append(json.loads(data))
    return out


def _answer(message: Any, request_id: int) -> dict[str, Any]:
    """The result of a JSON-RPC response; `MCPError` for an error response."""
    if not isinstance(message, dict):
        raise UnreadableAnswer(f"the answer is not a JSON-RPC response: {str(message)[:200]}")
    if "error" in message:
        error = types.ErrorData.model_validate(message["error"])
        raise MCPError(error.code, error.message, error.data)
    result = message.get("result")
    if message.get("id") != request_id or not isinstance(result, dict):
        raise UnreadableAnswer(f"the answer is not the JSON-RPC response to request {request_id}: {str(message)[:200]}")
    return result


async def post(http: httpx2.AsyncClient, spec: ServerSpec, headers: Mapping[str, str], method: str,
               params: dict[str, Any], *, name: str | None = None,
               extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Send one 2026-07-28 request as a self-contained POST; its result.

    Args:
        http: the client (the pool's shared connections).
        spec: the server (its URL names it in errors).
        headers: the spec's headers (authorization, `Mcpgym-Workspace`, ...).
        method: the JSON-RPC method.
        params: its params, without `_meta` (the envelope is added).
        name: the `Mcp-Name` header (the tool's name for `tools/call`).
        extra: more headers (`Mcp-Param-*`).

    Raises:
        MCPError: the server answered with a JSON-RPC error, or failed at the HTTP level.
        httpx2.TransportError: the server could not be reached or the connection broke.
        ValueError: the answer is not a JSON-RPC response to the request.
    """
    request_id = next(_ids)
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": _META}}
    sent = {**headers, **_BASE_HEADERS, MCP_METHOD_HEADER: method}
    if name is not None:
        sent[MCP_NAME_HEADER] = encode_header_value(name)
    if extra:
        sent.update(extra)
    response = await http.post(spec.url or "", content=json.dumps(body).encode(), headers=sent)
    kind = response.headers.get("content-type", "").lower()
    if response.status_code == 202:
        raise MCPError(INVALID_REQUEST, "server answered a request with 202 Accepted")
    if 300 <= response.status_code < 400:
        raise MCPError(INVALID_REQUEST, f"the server answered {response.status_code} (a redirect, not followed) "
                                        f"to {response.headers.get('location', '?')}")
    if response.status_code >= 400:
        if kind.startswith("application/json"):
            try:
                message = json.loads(response.content)
            except ValueError:
                message = None
            if isinstance(message, dict) and isinstance(message.get("error"), dict):
                _answer(message, request_id)  # raises its MCPError
        if response.status_code == 404:
            raise MCPError(METHOD_NOT_FOUND, "Not Found")
        raise MCPError(INTERNAL_ERROR, "Server returned an error response")
    if kind.startswith("application/json"):
        return _answer(json.loads(response.content), request_id)
    if kind.startswith("text/event-stream"):
        for message in _sse_messages(response.content):
            if isinstance(message, dict) and message.get("id") == request_id and (
                    "result" in message or "error" in message):
                return _answer(message, request_id)
        raise UnreadableAnswer(f"the event stream of request {request_id} ended without its response")
    raise UnreadableAnswer(f"unexpected content type {kind or 'none'!r} (HTTP {response.status_code})")


async def probe(http: httpx2.AsyncClient, spec: ServerSpec) -> ModernServer | None:
    """The server when it speaks 2026-07-28 (`server/discover` lists it), else None. Any error answer means it
    does not.

    Like the SDK's `mode="auto"` negotiation, only a discover result naming a modern version counts: a JSON-RPC or
    HTTP error, or an answer that cannot be read, means the session path (the `initialize` handshake).

    Raises:
        httpx2.TransportError: the server cannot be reached (not an answer about its revision).
    """
    try:
        result = await post(http, spec, spec.headers, "server/discover", {})
    except (MCPError, ValueError):
        return None
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or not any(v in MODERN_PROTOCOL_VERSIONS for v in versions):
        return None
    capabilities = result.get("capabilities")
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return ModernServer(spec.url or "", keeps_workspaces=isinstance(extensions, dict) and WORKSPACE_EXTENSION in extensions)


async def release_workspace(http: httpx2.AsyncClient, spec: ServerSpec, timeout_s: float) -> bool | None:
    """Tell a gateway that the episode is done with its workspace: `DELETE` on the server's URL with the spec's
    headers (`Mcpgym-Workspace`, authorization) and no `Mcp-Session-Id`. Never raises: a failure is logged.

    Returns:
        True when the gateway answered 200; None when it does not take such requests (400, 404, 405, 501: not an
        mcpgym gateway, or an older one), so the caller stops sending them there; False for any other failure.
    """
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.delete(spec.url or "", headers=spec.headers)
    except (httpx2.HTTPError, OSError, TimeoutError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer in {timeout_s:g}s"
        _log.warning("releasing the workspace at %s failed: %s", _where(spec), detail)
        return False
    if response.status_code == 200:
        return True
    text = response.text[:200]
    if response.status_code in (400, 404, 405, 501):
        _log.warning("%s does not release workspaces on request (HTTP %d: %s); none are sent there again by this "
                     "pool, its workspaces are left to its own clean-up", _where(spec), response.status_code, text)
        return None
    _log.warning("releasing the workspace at %s failed: HTTP %d: %s", _where(spec), response.status_code, text)
    return False


class CallOutcome:
    """A tool's answer as the collector reads it (the text is flattened from the content blocks)."""

    __slots__ = ("is_error", "structured", "text")

    def __init__(self, text: str, is_error: bool, structured: Any) -> None:
        self.text = text
        self.is_error = is_error
        self.structured = structured


def content_text(content: list[Any]) -> str:
    """Flatten MCP content blocks (as JSON) into the text a model reads; `collector.tools.result_text` for dicts."""
    parts: list[str] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.get('mimeType', 'unknown type')}]")
        elif kind == "resource":
            res = block.get("resource") or {}
            parts.append(res.get("text") or f"[resource: {res.get('uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.get('uri', '')}]")
        else:
            parts.append(str(block))
    return "\n".join(parts)


class ModernServer:
    """What the pool keeps about one server that speaks 2026-07-28: its tools' `Mcp-Param-*` header maps and
    output-schema validators (from its listing; tools are listed once per pool), and whether it keeps per-client
    workspaces (it advertises `WORKSPACE_EXTENSION`)."""

    def __init__(self, url: str, *, keeps_workspaces: bool = False) -> None:
        self.url = url
        self.keeps_workspaces = keeps_workspaces
        self.listed = False
        self._header_maps: dict[str, dict[tuple[str, ...], str]] = {}
        self._output_schemas: dict[str, dict[str, Any] | None] = {}
        self._validators: dict[str, Any] = {}

    def absorb(self, tools: list[dict[str, Any]]) -> None:
        """Take in the listed tools (MCP tool dicts)."""
        for tool in tools:
            name = str(tool["name"])
            header_map = x_mcp_header_map(tool.get("inputSchema") or {})
            if header_map:
                self._header_maps[name] = header_map
            schema = tool.get("outputSchema")
            self._output_schemas[name] = schema if isinstance(schema, dict) else None
        self.listed = True

    def param_headers(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, str] | None:
        """The `Mcp-Param-*` headers of a call (None when the tool declares none)."""
        header_map = self._header_maps.get(tool)
        return mcp_param_headers(header_map, arguments) if header_map else None

    def check_output(self, tool: str, result: Mapping[str, Any]) -> None:
        """The SDK client's output check: structured content must match the tool's output schema.

        Raises:
            RuntimeError: it is missing or does not match (the SDK's messages).
        """
        schema = self._output_schemas.get(tool)
        if schema is None:
            return
        if "structuredContent" not in result:
            raise RuntimeError(f"Tool {tool} has an output schema but did not return structured content")
        validator = self._validators.get(tool)
        if validator is None:
            try:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise RuntimeError(f"Invalid schema for tool {tool}: {exc.message}") from exc
            validator = self._validators[tool] = cls(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(result["structuredContent"]))
        if error is not None:
            raise RuntimeError(f"Invalid structured content returned by tool {tool}: {error}") from error


class SessionlessConnection:
    """One episode's use of a 2026-07-28 server: no session, each request a POST with the episode's headers.

    Stands in for the SDK session (`collector.sdk_session.SessionConnection`) in a `ToolSession`: opening and closing it costs
    nothing. A broken connection is a `ToolSessionError` naming the server and its URL; then, and after a call that
    timed out, `on_broken` tells the pool, which asks the server again before the next session.
    """

    dead = False

    @property
    def keeps_workspace(self) -> bool:
        """The server keeps a workspace for the episode's `Mcpgym-Workspace` id (released when the episode ends)."""
        return self.server.keeps_workspaces

    def __init__(self, spec: ServerSpec, server: ModernServer, http: httpx2.AsyncClient,
                 on_broken: Callable[[str], None]) -> None:
        self.spec = spec
        self.server = server
        self._http = http
        self._on_broken = on_broken

    async def _post(self, method: str, params: dict[str, Any], *, name: str | None = None,
                    extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            return await post(self._http, self.spec, self.spec.headers, method, params, name=name, extra=extra)
        except httpx2.TransportError as exc:
            self._on_broken(self.server.url)
            what = "cannot connect to" if isinstance(exc, httpx2.ConnectError) else "server died:"
            raise ToolSessionError(f"{what} {_where(self.spec)}: {type(exc).__name__}: {exc}") from exc

    async def list_tools(self) -> list[dict[str, Any]]:
        """The server's tools (first page, as the SDK client's `list_tools`), as MCP tool dicts without `_meta`.

        Tools whose `x-mcp-header` annotations are invalid are dropped (the revision requires it of clients).
        """
        listing = types.ListToolsResult.model_validate(await self._post("tools/list", {}))
        tools: list[dict[str, Any]] = []
        for tool in listing.tools:
            if find_invalid_x_mcp_header(tool.input_schema) is not None:
                continue
            data: dict[str, Any] = tool.model_dump(by_alias=True, exclude_none=True, mode="json")
            data.pop("_meta", None)
            tools.append(data)
        return tools

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> CallOutcome:
        """Call one tool.

        Raises:
            MCPError: a JSON-RPC error answer.
            ToolSessionError: the connection failed.
            ValueError, RuntimeError: the answer cannot be read, or its structured content does not match the
                tool's output schema.
        """
        result = await self._post("tools/call", {"name": tool, "arguments": arguments}, name=tool,
                                  extra=self.server.param_headers(tool, arguments))
        content = result.get("content")
        if not isinstance(content, list):
            raise UnreadableAnswer(f"the result of tool {tool} has no content list: {str(result)[:200]}")
        is_error = bool(result.get("isError", False))
        if not is_error:
            self.server.check_output(tool, result)
        return CallOutcome(content_text(content), is_error, result.get("structuredContent"))

    def suspect(self) -> None:
        """A call got no answer in time: the pool asks the server again (`server/discover`) before the next session,
        so a server that stopped answering fails that session's opening (a managed gateway is then restarted)."""
        self._on_broken(self.server.url)

    async def close(self) -> None:
        """Nothing to close: no session was opened."""
