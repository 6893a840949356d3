"""Secret scrubbing: a tested pattern set that redacts API keys, bearer tokens, private keys and passwords, and the
values of fields named like secrets (`password`, `api_key`, `token`, `secret`, ...) in dicts and in JSON text."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PATTERNS",
    "SECRET_FIELD",
    "SecretPattern",
    "find_secrets",
    "is_secret_key",
    "redaction",
    "scrub_text",
    "scrub_value",
]


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


SECRET_FIELD = "secret_field"
# Field names whose value is a secret whatever it looks like (compared lower-cased, "-" and camelCase as "_").
_SECRET_NAMES = frozenset(
    {
        "password", "passwd", "pwd", "pass", "passphrase", "secret", "secrets", "client_secret", "secret_key",
        "api_key", "apikey", "x_api_key", "access_key", "access_key_id", "secret_access_key", "token", "access_token",
        "auth_token", "refresh_token", "id_token", "session_token", "bearer", "authorization", "proxy_authorization",
        "auth", "credential", "credentials", "private_key", "cookie", "set_cookie", "session", "session_id",
    }
)  # fmt: skip
_SECRET_SUFFIXES = ("_password", "_passwd", "_passphrase", "_secret", "_token", "_api_key", "_apikey", "_private_key")
# "token": "value" in JSON text (a tool result, arguments kept as a string); the value must be quoted
_JSON_FIELD = re.compile(r"""(["'])([A-Za-z][\w.-]{0,63})\1(\s*:\s*)"((?:[^"\\\n]|\\.){4,})(?=")""")


def is_secret_key(name: str) -> bool:
    """Whether a field of this name holds a secret: `password`, `api_key`, `apiKey`, `X-Api-Key`, `github_token`,
    `client_secret`, ... (not `max_tokens`, `token_count` or `secretary`).

    Args:
        name: a dict key or JSON field name.
    """
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).casefold().replace("-", "_").strip("_")
    return snake in _SECRET_NAMES or snake.endswith(_SECRET_SUFFIXES)


def _scrub_json_fields(text: str, counts: Counter[str]) -> str:
    def sub(match: re.Match[str]) -> str:
        value = match.group(4)
        if not is_secret_key(match.group(2)) or value.startswith("[REDACTED:"):
            return match.group(0)
        counts[SECRET_FIELD] += 1
        return f'{match.group(1)}{match.group(2)}{match.group(1)}{match.group(3)}"{redaction(SECRET_FIELD)}'

    return _JSON_FIELD.sub(sub, text)


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
        text: any text (message content, tool arguments, tool results). Besides the patterns, a quoted JSON field
            named like a secret (`"token": "..."`) has its value redacted.

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
    return _scrub_json_fields(text, counts), counts


def scrub_value(value: Any) -> tuple[Any, Counter[str]]:
    """Scrub every string inside a JSON-like value (dicts, lists, strings); other values are returned as they are.

    A string under a key named like a secret (`password`, `api_key`, `token`, `secret`, ... see `is_secret_key`) is
    replaced whole by `[REDACTED:secret_field]`, whatever it looks like.

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
            if isinstance(key, str) and isinstance(item, str) and item and is_secret_key(key):
                if not item.startswith("[REDACTED:"):
                    counts[SECRET_FIELD] += 1
                    item = redaction(SECRET_FIELD)
                out[key] = item
                continue
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
