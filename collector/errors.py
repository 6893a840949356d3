"""Errors raised by the collector.

    CollectorError                 base of everything below; the CLI turns it into a clean message
    ├── ConfigError                bad user input: unknown suite, bad server config, bad arguments
    ├── StoreError                 the SQLite store is locked, corrupt, or from a newer schema
    ├── PolicyError                the LLM side failed (endpoint unreachable, bad response)
    ├── ToolSessionError           an MCP server failed or died during an episode
    └── VerifierError              a verifier spec is invalid (not: the answer is wrong; that is a Verdict)
"""

from __future__ import annotations

__all__ = ["CollectorError", "ConfigError", "PolicyError", "StoreError", "ToolSessionError", "VerifierError"]


class CollectorError(Exception):
    """Base class of the collector's errors."""


class ConfigError(CollectorError):
    """Bad user input; the message names what was wrong and what is accepted."""


class StoreError(CollectorError):
    """The trajectory store cannot be used (locked, corrupt, newer schema)."""


class PolicyError(CollectorError):
    """The policy (LLM backend) failed to produce a completion."""


class ToolSessionError(CollectorError):
    """An MCP server failed, timed out, or died during an episode."""


class VerifierError(CollectorError):
    """A verifier spec is invalid."""
