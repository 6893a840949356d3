"""Tasks: the model, the built-in families, user JSONL suites, and the verifiers."""

from collector.tasks.model import Task, VerifierSpec

__all__ = ["Task", "VerifierSpec"]
