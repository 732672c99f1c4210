"""The client's address: the peer, or the right-most address no trusted proxy wrote."""

from __future__ import annotations

import pytest

from arbengine.api.client_address import ClientAddresses, throttle_key

TRUSTING = ClientAddresses(["127.0.0.1", "10.0.0.0/8", "2001:db8:ff::/48"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # No proxy is trusted by default: the header is whatever the client wrote.
        ("203.0.113.5", ["192.0.2.1"], "203.0.113.5"),
        # A trusted peer: the entry it appended is the client.
        ("127.0.0.1", ["192.0.2.1"], "192.0.2.1"),
        # Trusted hops are skipped from the right; the client's own entries are not believed.
        ("127.0.0.1", ["6.6.6.6, 192.0.2.1, 10.0.0.7"], "192.0.2.1"),
        ("127.0.0.1", ["6.6.6.6, 192.0.2.1", "10.0.0.7"], "192.0.2.1"),
        # Garbage where a trusted proxy should have written: the last trusted hop is the client.
        ("127.0.0.1", ["192.0.2.1, nonsense, 10.0.0.7"], "10.0.0.7"),
        # Only trusted hops: the furthest one.
        ("127.0.0.1", ["10.0.0.8, 10.0.0.7"], "10.0.0.8"),
        # Ports, brackets and IPv4-mapped IPv6 peers are understood.
        ("::ffff:127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("127.0.0.1", ["192.0.2.1:8080"], "192.0.2.1"),
        # No header: the peer.
        ("127.0.0.1", [], "127.0.0.1"),
    ],
)
def test_resolve(peer: str, forwarded: list[str], client: str) -> None:
    trusting = TRUSTING if peer != "203.0.113.5" else ClientAddresses([])
    assert trusting.resolve(peer, forwarded) == client


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert TRUSTING.resolve("203.0.113.5", ["10.0.0.7"]) == "203.0.113.5"


def test_ipv6_clients_are_limited_per_64_and_ipv4_per_address() -> None:
    assert throttle_key("2001:db8:1:2:aaaa::1") == throttle_key("2001:db8:1:2:bbbb::9")
    assert throttle_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert throttle_key("2001:db8:1:3::1") != throttle_key("2001:db8:1:2::1")
    assert throttle_key("192.0.2.1") == "192.0.2.1"
