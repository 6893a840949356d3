"""Tasks: the model, the built-in families, user JSONL suites, and schema tasks for any MCP server."""

from collector.tasks.model import Task, VerifierSpec, VerifyContext
from collector.tasks.registry import load_tasks

__all__ = ["Task", "VerifierSpec", "VerifyContext", "load_tasks"]
