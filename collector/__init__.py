"""The collector: policies, MCP client pool, tasks and verifiers, the episode loop, and the SQLite store."""

from collector.store import Store
from collector.tasks.model import Task, VerifierSpec

__all__ = ["Store", "Task", "VerifierSpec"]
