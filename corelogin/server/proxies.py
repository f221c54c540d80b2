"""The client's address behind a reverse proxy (``trusted_proxies``; docs/deploying.md).

Behind a proxy every connection comes from the proxy, so rate limits, failed logins and login
events would all see one address. The proxy says who its client was in ``X-Forwarded-For``,
but so can anybody else: the header is believed only when the TCP peer is one of the trusted
proxies, and even then only its right-hand end, which the trusted proxies wrote. The client
controls the left-hand end (it may send a header of its own, which the proxy extends), so the
address taken is the rightmost one that is not itself a trusted proxy (OWASP, MDN).

Handlers need not know: the middleware hands them a copy of the request whose ``remote`` is
the client's address. Without trusted proxies the middleware is not installed at all.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["client_address", "forwarded_middleware", "proxy_middlewares"]

log = logging.getLogger("corelogin.server")

FORWARDED_FOR = "X-Forwarded-For"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> Address | None:
    """``text`` as an address, or None; an IPv4 address mapped into IPv6 (a dual-stack
    socket's ``::ffff:10.0.0.1``) as the IPv4 address it is, so that IPv4 networks match it."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded: str, networks: Sequence[Network]) -> str | None:
    """The client's address for a request from ``peer`` that carried ``forwarded`` (the
    X-Forwarded-For values, comma-separated; "" when there were none).

    ``peer`` itself unless it is inside ``networks``; otherwise the rightmost forwarded address
    that is not (the leftmost if every one is: a client inside the proxies' own network). A
    header with anything but addresses in it is ignored: no guess is safer than a wrong one.
    """
    peer_address = None if peer is None else _address(peer)
    if peer_address is None or not forwarded or not _trusted(peer_address, networks):
        return peer
    hops = [_address(item) for item in forwarded.split(",")]
    addresses = [hop for hop in hops if hop is not None]
    if not addresses or len(addresses) != len(hops):
        log.debug("ignored a malformed %s from the proxy %s", FORWARDED_FOR, peer)
        return peer
    for address in reversed(addresses):
        if not _trusted(address, networks):
            return str(address)
    return str(addresses[0])


def forwarded_middleware(trusted_proxies: Sequence[str]) -> Middleware:
    """A middleware that gives the handlers ``request.remote`` = the client's address, as
    `client_address` finds it, for requests from ``trusted_proxies`` (addresses or networks)."""
    networks = tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        values = request.headers.getall(FORWARDED_FOR, ())
        if not values:
            return await handler(request)
        peer = request.remote
        client = client_address(peer, ",".join(values), networks)
        if client is None or client == peer:
            return await handler(request)
        return await handler(request.clone(remote=client))

    return forwarded


def proxy_middlewares(trusted_proxies: Sequence[str]) -> list[Middleware]:
    """The middlewares for ``trusted_proxies``: none when there are none, so that a server not
    behind a proxy pays nothing for the feature."""
    return [forwarded_middleware(trusted_proxies)] if trusted_proxies else []
