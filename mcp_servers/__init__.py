"""MCP tool servers (files, search, weather, exec), their sandbox and workspaces, and the HTTP gateway."""
