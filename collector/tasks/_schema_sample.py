"""Sample argument values from a tool's JSON schema (types, enums, bounds, required, $ref, anyOf)."""

from __future__ import annotations

import random
import string
from datetime import date, timedelta
from typing import Any

__all__ = ["SchemaSampleError", "sample_arguments", "sample_value"]

_WORDS = (
    "apple",
    "river",
    "notes",
    "report",
    "summer",
    "garden",
    "python",
    "planet",
    "orange",
    "music",
    "history",
    "ocean",
    "market",
    "winter",
    "energy",
    "castle",
    "forest",
    "signal",
    "travel",
    "coffee",
)
_CITIES = ("Paris", "Tokyo", "Oslo", "Lima", "Cairo", "Toronto", "Sydney", "Madrid", "Berlin", "Nairobi")
_MAX_DEPTH = 4


class SchemaSampleError(ValueError):
    """The schema uses a construct the sampler cannot satisfy."""


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise SchemaSampleError(f"unsupported $ref {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SchemaSampleError(f"unresolvable $ref {ref!r}")
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**node, **extra}
        seen += 1
        if seen > 20:
            raise SchemaSampleError("$ref cycle")
    return schema


def _string_for(name: str, schema: dict[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    key = name.casefold()
    if fmt == "date":
        return (date(2025, 1, 1) + timedelta(days=rng.randrange(365))).isoformat()
    if fmt == "date-time":
        day = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        return f"{day.isoformat()}T{rng.randrange(24):02d}:00:00Z"
    if fmt == "email":
        return f"{rng.choice(_WORDS)}@example.com"
    if fmt in ("uri", "url") or key in ("url", "uri"):
        return f"https://example.com/{rng.choice(_WORDS)}"
    if key in ("location", "city", "place") or "city" in key or "location" in key:
        return rng.choice(_CITIES)
    if "path" in key or key in ("source", "destination", "file", "filename", "directory", "dir"):
        return f"{rng.choice(_WORDS)}/{rng.choice(_WORDS)}.txt"
    if key in ("pattern", "glob"):
        return f"*.{rng.choice(('txt', 'md', 'py', 'json'))}"
    if key in ("code", "source_code"):
        return f"print({rng.randrange(100)} + {rng.randrange(100)})"
    if key in ("command", "cmd"):
        return rng.choice(("ls", "pwd", "echo hello", "date"))
    if key in ("query", "q", "name", "term", "text", "content", "title", "keyword"):
        return " ".join(rng.sample(_WORDS, rng.randint(1, 3)))
    return rng.choice(_WORDS)


def _fit_length(value: str, schema: dict[str, Any], rng: random.Random) -> str:
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    while len(value) < lo:
        value += rng.choice(string.ascii_lowercase)
    if hi is not None and len(value) > int(hi):
        value = value[: int(hi)]
    return value


def _number(schema: dict[str, Any], rng: random.Random, integer: bool) -> int | float:
    lo: float | None = schema.get("minimum")
    hi: float | None = schema.get("maximum")
    if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], (int, float)):
        lo = schema["exclusiveMinimum"] + (1 if integer else 1e-3)
    if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], (int, float)):
        hi = schema["exclusiveMaximum"] - (1 if integer else 1e-3)
    if lo is None:
        lo = 0 if hi is None or hi >= 0 else hi - 100
    if hi is None:
        hi = lo + (20 if integer else 100)
    if lo > hi:
        raise SchemaSampleError(f"empty numeric range [{lo}, {hi}]")
    step = schema.get("multipleOf")
    if integer:
        low, high = int(-(-lo // 1)), int(hi // 1)
        if step:
            choices = [v for v in range(low, min(high, low + 1000) + 1) if v % step == 0]
            if not choices:
                raise SchemaSampleError("no integer fits multipleOf within the bounds")
            return rng.choice(choices)
        return rng.randint(low, high)
    value = round(rng.uniform(float(lo), float(hi)), 2)
    return min(max(value, float(lo)), float(hi))


def sample_value(
    schema: dict[str, Any], rng: random.Random, *, root: dict[str, Any], name: str = "", depth: int = 0
) -> Any:
    """One value that satisfies `schema` (as far as the supported keywords go).

    Raises:
        SchemaSampleError: an unsupported construct, or a depth over 4.
    """
    if depth > _MAX_DEPTH:
        raise SchemaSampleError("schema nested too deeply")
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if isinstance(o, dict) and _resolve(o, root).get("type") != "null"]
            if not options:
                return None
            return sample_value(rng.choice(options), rng, root=root, name=name, depth=depth + 1)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return sample_value(schema["allOf"][0], rng, root=root, name=name, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = rng.choice(kinds) if kinds else "null"
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "string":
        if "pattern" in schema:
            default = schema.get("default")
            if isinstance(default, str):
                return default
            raise SchemaSampleError(f"cannot sample a string for pattern {schema['pattern']!r}")
        return _fit_length(_string_for(name, schema, rng), schema, rng)
    if kind == "integer":
        return _number(schema, rng, integer=True)
    if kind == "number":
        return _number(schema, rng, integer=False)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        count = rng.randint(lo, max(lo, min(hi, lo + 2)))
        items = schema.get("items", {"type": "string"})
        values = [sample_value(items, rng, root=root, name=name, depth=depth + 1) for _ in range(count)]
        if schema.get("uniqueItems"):
            unique = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            if len(unique) < lo:
                raise SchemaSampleError("cannot sample enough unique items")
            values = unique
        return values
    if kind == "object":
        return sample_arguments(schema, rng, root=root, depth=depth + 1, optional_rate=0.3)
    raise SchemaSampleError(f"unsupported type {kind!r}")


def sample_arguments(
    schema: dict[str, Any],
    rng: random.Random,
    *,
    root: dict[str, Any] | None = None,
    depth: int = 0,
    optional_rate: float = 0.4,
) -> dict[str, Any]:
    """Arguments for a tool's `inputSchema`: every required property, and each optional one with probability
    `optional_rate`.

    Args:
        schema: an object schema.
        rng: the random source.
        root: the document `$ref`s resolve against (default: `schema`).
        depth: the nesting depth (internal).
        optional_rate: the chance of including each optional property.

    Returns:
        The arguments.

    Raises:
        SchemaSampleError: the schema uses something the sampler does not support.
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    args: dict[str, Any] = {}
    for name, prop in properties.items():
        if name in required or rng.random() < optional_rate:
            value = sample_value(prop, rng, root=root, name=name, depth=depth)
            if value is None and name not in required:
                continue
            args[name] = value
    return args
