"""Outbound HTTP for the web backend: host allow-list, refusal of private destinations, checked redirects.

Every hop (the first request and each redirect) is checked before any connection is made: the scheme must be
http or https, the host must be allowed, and every address the host resolves to must be public (not private,
loopback, link-local, shared, reserved or multicast). IPv6 forms that embed an IPv4 address (IPv4-mapped,
IPv4-compatible, SIIT, NAT64 64:ff9b::/96, 6to4, Teredo) are judged by the IPv4 address they embed; site-local
fec0::/10 and the local-use NAT64 prefix 64:ff9b:1::/48 are always refused. The request then goes to the
checked address itself (the Host header and TLS server name keep the original name), so a second DNS answer
cannot swap in a private address between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

import httpx

from mcp_servers.errors import BackendError, BackendTimeoutError, ToolInputError

__all__ = ["DestinationPolicy", "FetchResult", "check_destination", "guarded_get"]

_REDIRECTS = {301, 302, 303, 307, 308}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DestinationPolicy:
    """Which destinations outbound requests may reach.

    Attributes:
        allowed_hosts: Host names that may be contacted; ``"*.example.org"`` also matches subdomains, ``"*"``
            matches any host (private addresses stay refused).
        allow_private: Exempt every destination from the private-address refusal (tests, trusted networks).
        allow_private_hosts: ``"host"`` or ``"host:port"`` entries exempt from the private-address refusal
            (e.g. a self-hosted SearXNG on ``localhost:8888``).
    """

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    allow_private_hosts: tuple[str, ...] = field(default_factory=tuple)

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` is on the allow-list."""
        host = host.lower().rstrip(".")
        for entry in self.allowed_hosts:
            entry = entry.lower().rstrip(".")
            if entry == "*" or entry == host or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False

    def private_exempt(self, host: str, port: int) -> bool:
        """Whether ``host:port`` may resolve to a private address."""
        if self.allow_private:
            return True
        host = host.lower()
        return host in self.allow_private_hosts or f"{host}:{port}" in self.allow_private_hosts


@dataclass(frozen=True)
class FetchResult:
    """The final response of a guarded GET, after redirects."""

    url: str
    status_code: int
    content_type: str
    body: bytes
    truncated: bool


# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at (or is translated to).
_IPV4_TAIL_PREFIXES = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # SIIT IPv4-translated (RFC 6145)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated; :: and ::1 fall here too and stay refused)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
)
# Never public, whatever they embed: site-local (deprecated, RFC 3879) and the local-use NAT64 prefix (RFC 8215),
# whose IPv4 position depends on the operator's prefix length.
_REFUSED_V6 = (ipaddress.IPv6Network("fec0::/10"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _is_public(ip: IPAddress) -> bool:
    """Whether `ip` may be contacted: global and not multicast; for an IPv6 form that embeds IPv4, so is the IPv4.

    The forms whose last 32 bits are the IPv4 destination are judged by that address alone (Python calls most of
    them global, whatever they embed). 6to4 and Teredo (server and client, the client stored inverted) must pass
    both as IPv6 and as IPv4.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in prefix for prefix in _REFUSED_V6) or ip.is_multicast:
            return False
        if any(ip in prefix for prefix in _IPV4_TAIL_PREFIXES):
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        embedded = [ip.sixtofour] if ip.sixtofour is not None else list(ip.teredo or ())
        if not all(_is_public(v4) for v4 in embedded):
            return False
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise BackendError(f"host {host!r} could not be resolved") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check_destination(url: httpx.URL, policy: DestinationPolicy) -> IPAddress:
    """Check one destination and return the address to connect to.

    Args:
        url: The destination.
        policy: The destination policy.

    Returns:
        The (first) checked address of the host.

    Raises:
        ToolInputError: The scheme is not http/https, the host is not allowed, or it resolves to a
            private, loopback or link-local address.
        BackendError: The host name cannot be resolved.
    """
    if url.scheme not in ("http", "https"):
        raise ToolInputError(f"destination {url} refused: only http and https URLs are accepted")
    host = url.host
    if not host:
        raise ToolInputError(f"destination {url} refused: the URL has no host")
    if not policy.host_allowed(host):
        allowed = ", ".join(policy.allowed_hosts) or "none"
        raise ToolInputError(
            f"destination {url} refused: host {host!r} is not on the allow-list "
            f"(allowed: {allowed}; set MCPGYM_SEARCH__ALLOWED_HOSTS)"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not addresses:
        raise BackendError(f"host {host!r} has no address")
    if not policy.private_exempt(host, port):
        for address in addresses:
            if not _is_public(address):
                raise ToolInputError(
                    f"destination {url} refused: {host!r} resolves to {address}, a private, loopback, link-local "
                    "or reserved address"
                )
    return addresses[0]


async def guarded_get(
    client: httpx.AsyncClient,
    url: str,
    policy: DestinationPolicy,
    *,
    params: dict[str, str | int] | None = None,
    max_redirects: int = 5,
    max_bytes: int = 2_000_000,
) -> FetchResult:
    """GET a URL, checking it and every redirect target against ``policy`` before connecting.

    Args:
        client: An httpx client; it must not follow redirects itself.
        url: The URL.
        policy: The destination policy.
        params: Query parameters for the first request.
        max_redirects: Redirects followed at most.
        max_bytes: The body is cut after this many bytes (``truncated`` is then true).

    Returns:
        The final response.

    Raises:
        ToolInputError: A destination is refused, or there were too many redirects.
        BackendTimeoutError: The server did not answer in time.
        BackendError: The connection failed.
    """
    current = httpx.URL(url, params=params) if params else httpx.URL(url)
    for _hop in range(max_redirects + 1):
        address = await check_destination(current, policy)
        target = current.copy_with(host=str(address))
        headers = {"Host": current.netloc.decode("ascii"), "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": current.host} if current.scheme == "https" else {}
        request = client.build_request("GET", target, headers=headers, extensions=extensions)
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            raise BackendTimeoutError(f"{current.host} did not answer in time") from None
        except httpx.TransportError as exc:
            raise BackendError(f"request to {current.host} failed ({type(exc).__name__})") from None
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                current = current.join(response.headers["location"])
                continue
            body = bytearray()
            truncated = False
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    del body[max_bytes:]
                    truncated = True
                    break
            return FetchResult(
                url=str(current),
                status_code=response.status_code,
                content_type=response.headers.get("content-type", ""),
                body=bytes(body),
                truncated=truncated,
            )
        finally:
            await response.aclose()
    raise ToolInputError(f"{url}: more than {max_redirects} redirects")
