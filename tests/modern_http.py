"""A raw MCP 2026-07-28 `tools/call` over HTTP (no SDK): what the gateway tests send to a header workspace."""

from __future__ import annotations

import httpx

from mcp_servers.gateway.process import GatewayProcess

MODERN = "2026-07-28"


def modern_call(gw: GatewayProcess, server: str, tool: str, workspace: str, *, token: str, timeout: float = 60,
                **arguments: object) -> httpx.Response:
    """One sessionless tools/call on a fresh connection (with several workers, either may accept it)."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "MCP-Protocol-Version": MODERN,
               "Mcp-Method": "tools/call", "Mcp-Name": tool, "Mcpgym-Workspace": workspace}
    with httpx.Client(timeout=timeout) as http:
        return http.post(gw.url(server), json=body, headers=headers)
