"""Secret scrubbing: a tested pattern set that redacts API keys, bearer tokens, private keys and passwords."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["PATTERNS", "SecretPattern", "find_secrets", "redaction", "scrub_text", "scrub_value"]


@dataclass(frozen=True)
class SecretPattern:
    """One kind of secret. When `group` is set, only that group is redacted (the key name stays readable)."""

    kind: str
    regex: re.Pattern[str]
    group: int = 0


def _p(kind: str, pattern: str, group: int = 0, flags: int = 0) -> SecretPattern:
    return SecretPattern(kind, re.compile(pattern, flags), group)


# Order matters: specific shapes first, generic "password = ..." assignments last.
PATTERNS: tuple[SecretPattern, ...] = (
    _p(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    _p("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    _p("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    _p("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    _p("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    _p("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _p("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    _p("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    _p("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    _p("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    _p("bearer_token", r"\b(?:Bearer|Token)\s+([A-Za-z0-9._~+/\-]{16,}=*)", group=1, flags=re.IGNORECASE),
    _p("url_credentials", r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:([^\s/@]+)@", group=1, flags=re.IGNORECASE),
    _p(
        "password",
        r"""(?:password|passwd|pwd|passphrase|secret|secret_key|api_key|apikey|access_token|auth_token|client_secret)"""
        r"""["']?\s*[:=]\s*["']?([^\s"',;()\[\]{}<>]{4,})(?![(\w])""",
        group=1,
        flags=re.IGNORECASE,
    ),
)


def redaction(kind: str) -> str:
    """The placeholder written in place of a secret of `kind`."""
    return f"[REDACTED:{kind}]"


def find_secrets(text: str) -> Counter[str]:
    """Count the secrets in `text` by kind, without changing it."""
    _, counts = scrub_text(text)
    return counts


def scrub_text(text: str) -> tuple[str, Counter[str]]:
    """Redact every secret in `text`.

    Args:
        text: any text (message content, tool arguments, tool results).

    Returns:
        The scrubbed text and the number of secrets redacted, by kind.
    """
    counts: Counter[str] = Counter()
    for pattern in PATTERNS:

        def _sub(match: re.Match[str], pattern: SecretPattern = pattern) -> str:
            value = match.group(pattern.group)
            if value.startswith("[REDACTED:"):
                return match.group(0)
            counts[pattern.kind] += 1
            if pattern.group == 0:
                return redaction(pattern.kind)
            start, end = match.span(pattern.group)
            whole_start = match.start(0)
            full = match.group(0)
            return full[: start - whole_start] + redaction(pattern.kind) + full[end - whole_start :]

        text = pattern.regex.sub(_sub, text)
    return text, counts


def scrub_value(value: Any) -> tuple[Any, Counter[str]]:
    """Scrub every string inside a JSON-like value (dicts, lists, strings); other values are returned as they are.

    Args:
        value: a message, a list of messages, tool arguments...

    Returns:
        A scrubbed copy and the counts by kind.
    """
    counts: Counter[str] = Counter()
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key], found = scrub_value(item)
            counts.update(found)
        return out, counts
    if isinstance(value, list):
        items = []
        for item in value:
            cleaned, found = scrub_value(item)
            items.append(cleaned)
            counts.update(found)
        return items, counts
    return value, counts
