"""Checks shared by every mcpgym HTTP app (the gateway, the trajectory viewer): loopback binds, `Host` and `Origin`.

A browser on this machine may open a page of any web site, and that page may make requests to loopback ports. Two
checks keep it from reading what the apps serve:

- **Host** (DNS rebinding): a page whose name the attacker re-resolves to 127.0.0.1 becomes "same origin" with
  the app, but its requests still carry the attacker's name in `Host`. Only loopback names, the bind address and
  names the operator allows are accepted (421 otherwise).
- **Origin**: a cross-site request that carries an `Origin` naming another site is refused (403). Same-origin
  navigations send no `Origin` (or an allowed one) and pass.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HostOriginMiddleware", "HostPolicy", "is_loopback"]

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine.

    True for the name `localhost` and for address literals in 127.0.0.0/8 and ::1 (brackets allowed, IPv4-mapped
    forms included). Any other name is not loopback, even one that starts with "127." (`127.foo.example` may
    resolve anywhere).

    Args:
        host: The bind address, as given to `--host`.

    Returns:
        Whether binding there keeps the server on this machine.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _authority(host: str) -> str:
    """`host` as it appears in a `Host` header: IPv6 literals in brackets, lower case."""
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _compile(patterns: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Patterns ("name", "name:port", "name:*") as (exact values, names accepted with any port or none)."""
    lowered = [p.lower() for p in patterns]
    return frozenset(p for p in lowered if not p.endswith(":*")), frozenset(p[:-2] for p in lowered if p.endswith(":*"))


def _match(value: str, exact: frozenset[str], any_port: frozenset[str]) -> bool:
    """Whether `value` ("name" or "name:port") is in `exact`, or its name is in `any_port` (with a numeric port or none)."""
    if value in exact or value in any_port:
        return True
    name, colon, port = value.rpartition(":")
    return bool(colon) and port.isdigit() and name in any_port


@dataclass(frozen=True)
class HostPolicy:
    """The `Host` and `Origin` values an app accepts.

    Attributes:
        hosts: Accepted `Host` values: "name", "name:port" or "name:*" (any port, or none).
        origins: Accepted `Origin` values, same forms with a scheme ("http://name:*").
    """

    hosts: tuple[str, ...]
    origins: tuple[str, ...]
    _host_sets: tuple[frozenset[str], frozenset[str]] = field(init=False, repr=False, compare=False)
    _origin_sets: tuple[frozenset[str], frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_host_sets", _compile(self.hosts))
        object.__setattr__(self, "_origin_sets", _compile(self.origins))

    @classmethod
    def for_bind(cls, bind_host: str, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of an app bound to `bind_host`: loopback names, the bind address itself, and `allowed_hosts`.

        Args:
            bind_host: The address the server listens on (a wildcard such as 0.0.0.0 adds nothing: name the
                host clients use in `allowed_hosts`).
            allowed_hosts: Extra accepted `Host` values, e.g. "myhost:8765" or "myhost:*".

        Returns:
            The policy.
        """
        names = list(_LOOPBACK_NAMES)
        bind = _authority(bind_host)
        if bind not in _WILDCARD_BINDS and bind not in names:
            names.append(bind)
        hosts = [f"{name}:*" for name in names]
        origins = [f"http://{name}:*" for name in names]
        for extra in allowed_hosts:
            extra = extra.lower()
            hosts.append(extra)
            origins += [f"http://{extra}", f"https://{extra}"]
        return cls(hosts=tuple(hosts), origins=tuple(origins))

    def host_ok(self, host: str | None) -> bool:
        """Whether a request's `Host` header is accepted (a missing one is not)."""
        if not host:
            return False
        return _match(host.lower(), *self._host_sets)

    def origin_ok(self, origin: str | None) -> bool:
        """Whether a request's `Origin` header is accepted (a missing one is: same-origin navigations send none)."""
        if origin is None:
            return True
        return _match(origin.lower(), *self._origin_sets)


class HostOriginMiddleware:
    """Refuses every HTTP request whose `Host` (421) or `Origin` (403) the policy does not accept, on every path."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        """Wrap `app`.

        Args:
            app: The ASGI app to protect.
            policy: The accepted Host and Origin values.
        """
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
        if not self.policy.host_ok(host):
            status = 421
            message = f"Host header {str(host)[:100]!r} is not accepted: use a loopback name or an allowed host"
        elif not self.policy.origin_ok(origin):
            status = 403
            message = f"Origin {str(origin)[:100]!r} is not accepted: cross-site requests are refused"
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "forbidden host" if status == 421 else "forbidden origin", "message": message})
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body.encode()})
