"""Plain data between the run_tests judge and the solution's process: a tagged format and length-prefixed frames.

Stdlib-only, like the judge (`judge.py`), which loads it in the sandbox. The decoder builds nothing but None, bool,
int, float, complex, str, bytes, and lists, tuples, dicts, sets and frozensets of them (not pickle, whose loads runs
code, nor marshal, which is not meant for hostile input); the encoder refuses anything else, subclasses included.
"""

from __future__ import annotations

import os
import struct
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_MESSAGE", "PLAIN", "WireError", "decode", "encode", "recv", "send"]

MAX_MESSAGE = 16 * 1024 * 1024  # bytes of one call or reply
MAX_DEPTH = 100  # nesting of containers
PLAIN = (
    "run_tests can check only plain data: None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, "
    "sets and frozensets of them (no subclasses, no other objects)"
)

_LEN = struct.Struct("<I")
_FLOAT = struct.Struct("<d")
_COMPLEX = struct.Struct("<dd")
_read, _write = os.read, os.write  # bound now: the solution may replace os.read and os.write in its process
_unpack_len, _pack_len = _LEN.unpack_from, _LEN.pack


class WireError(ValueError):
    """A value that is not plain data, or bytes that are not a well-formed encoding of one."""


# ---------------------------------------------------------------- plain data on the wire

_CONTAINER_TAGS: dict[Any, bytes] = {list: b"l", tuple: b"t", set: b"S", frozenset: b"z"}
_BASES = (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)


def _what(value: Any) -> str:
    """What a value is, for a message: "a generator object", "a F (a subclass of float)"."""
    kind = type(value)
    name = getattr(kind, "__name__", "?")
    for base in _BASES:
        if issubclass(kind, base):
            return f"a {name} (a subclass of {base.__name__})"
    return f"a {name} object"


def encode(value: Any, limit: int = MAX_MESSAGE) -> bytes:
    """Encode plain data (see the module docstring).

    Raises:
        WireError: The value holds something else (the message says what), nests deeper than `MAX_DEPTH` (or
            contains itself), or encodes to more than `limit` bytes.
    """
    out = bytearray()
    _encode(value, out, 0, limit)
    return bytes(out)


def _encode(value: Any, out: bytearray, depth: int, limit: int) -> None:
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out += b"s" + _pack_len(len(data)) + data
    elif kind is int:
        size = (value.bit_length() + 8) // 8
        out += b"i" + _pack_len(size) + value.to_bytes(size, "little", signed=True)
    elif value is None:
        out += b"N"
    elif kind is bool:
        out += b"T" if value else b"F"
    elif kind is float:
        out += b"f" + _FLOAT.pack(value)
    elif kind is list or kind is tuple or kind is set or kind is frozenset or kind is dict:
        if depth >= MAX_DEPTH:
            raise WireError(f"data nested more than {MAX_DEPTH} levels deep (or containing itself)")
        if kind is dict:
            out += b"d" + _pack_len(len(value))
            for key, item in value.items():
                _encode(key, out, depth + 1, limit)
                _encode(item, out, depth + 1, limit)
        else:
            out += _CONTAINER_TAGS[kind] + _pack_len(len(value))
            for item in value:
                _encode(item, out, depth + 1, limit)
    elif kind is bytes:
        out += b"b" + _pack_len(len(value)) + value
    elif kind is complex:
        out += b"c" + _COMPLEX.pack(value.real, value.imag)
    else:
        raise WireError(_what(value))
    if len(out) > limit:
        raise WireError(f"data of more than {limit} bytes")


def decode(data: bytes) -> Any:
    """Decode `encode`'s bytes; builds nothing but plain data.

    Raises:
        WireError: Malformed, truncated or trailing bytes, nesting deeper than `MAX_DEPTH`, or an unhashable set
            element or dict key.
    """
    try:
        value, end = _decode(data, 0, 0)
    except (IndexError, struct.error, UnicodeDecodeError, TypeError) as exc:
        raise WireError(f"malformed data ({type(exc).__name__})") from None
    if end != len(data):
        raise WireError("malformed data (trailing bytes)")
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    tag = data[pos]
    pos += 1
    if tag in b"sib":
        (size,) = _unpack_len(data, pos)
        pos += 4
        end = pos + size
        if end > len(data):
            raise WireError("malformed data (truncated)")
        chunk = data[pos:end]
        if tag == 115:  # s
            return chunk.decode("utf-8", "surrogatepass"), end
        if tag == 105:  # i
            return int.from_bytes(chunk, "little", signed=True), end
        return bytes(chunk), end
    if tag == 78:  # N
        return None, pos
    if tag == 84:  # T
        return True, pos
    if tag == 70:  # F
        return False, pos
    if tag == 102:  # f
        return _FLOAT.unpack_from(data, pos)[0], pos + 8
    if tag == 99:  # c
        real, imag = _COMPLEX.unpack_from(data, pos)
        return complex(real, imag), pos + 16
    if tag in b"ltSzd":
        if depth >= MAX_DEPTH:
            raise WireError(f"malformed data (nested more than {MAX_DEPTH} levels deep)")
        (count,) = _unpack_len(data, pos)
        pos += 4
        if count > len(data) - pos:
            raise WireError("malformed data (truncated)")
        items = []
        for _ in range(count * 2 if tag == 100 else count):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        if tag == 108:  # l
            return items, pos
        if tag == 116:  # t
            return tuple(items), pos
        if tag == 100:  # d
            return dict(zip(items[0::2], items[1::2])), pos
        return (set(items) if tag == 83 else frozenset(items)), pos
    raise WireError(f"malformed data (unknown tag {tag})")


def send(fd: int, payload: bytes) -> None:
    """Write one length-prefixed message."""
    data = memoryview(_pack_len(len(payload)) + payload)
    while data:
        data = data[_write(fd, data) :]


def recv(fd: int, cap: int = MAX_MESSAGE) -> bytes:
    """One message; EOFError when the other end is gone; WireError when it is longer than `cap`."""
    head = _read_exactly(fd, 4)
    (size,) = _unpack_len(head)
    if size > cap:
        raise WireError(f"a reply of {size} bytes (more than {cap})")
    return _read_exactly(fd, size)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = _read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
