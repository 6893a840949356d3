"""mcpgym: MCP tool servers, a trajectory collector and TRL training, gathered under one command."""

__all__ = ["__version__"]
__version__ = "0.1.0"
