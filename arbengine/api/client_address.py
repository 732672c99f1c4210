"""Who the client is: the connection's peer, or the address a trusted reverse proxy names.

``X-Forwarded-For`` is written by the client as much as by proxies, so it is
believed only when the connection comes from a configured trusted proxy, and
then only as far as trusted proxies wrote it: reading from the right (the
entry our own proxy appended), every trusted address is a proxy that passed the
request on, and the first untrusted one is the client. Anything further left
was written by that client and proves nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from aiohttp import web

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_WITH_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]|(?P<v4>[0-9.]+))(?::\d{1,5})?$")
IPV6_CLIENT_PREFIX = 64
"""An IPv6 client usually holds a whole /64: limits count per /64, not per address."""


def parse_address(text: str | None) -> IpAddress | None:
    """An address as peers and proxies write it (``1.2.3.4``, ``[::1]:80`` …), or None."""
    if not text:
        return None
    text = text.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        match = _WITH_PORT.match(text)
        if match is None:
            return None
        try:
            address = ipaddress.ip_address(match.group("v6") or match.group("v4"))
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def throttle_key(address: str) -> str:
    """The key attempt limits count under: the address, or its /64 for IPv6."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((parsed, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(parsed) if parsed is not None else address


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client of a connection from ``peer`` carrying these X-Forwarded-For values."""
        client = parse_address(peer)
        if client is None:
            return peer or "unknown"
        if not forwarded_for or not self._is_trusted(client):
            return str(client)
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                # Not written by a trusted proxy: the last trusted hop is all we know.
                break
            client = address
            if not self._is_trusted(address):
                break
        return str(client)

    def of(self, request: web.BaseRequest) -> str:
        return self.resolve(request.remote, request.headers.getall("X-Forwarded-For", []))
