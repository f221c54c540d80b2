"""X-Forwarded-For from trusted proxies (``trusted_proxies``), against the real server: login
events, failed logins and rate limits see the forwarded client; from anybody else, or when the
header is malformed, they see the TCP peer. And `client_address`'s rules on their own."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.proxies import client_address
from corelogin.wire import APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY, PASSWORD

TOO_MANY = 829
USER = {"username": "Donna", "password": PASSWORD}
# The test's "proxy" is 127.0.0.1; 127.0.0.2 (any of 127/8 reaches the server) is a client
# that connects directly.
PROXY = "127.0.0.1"
DIRECT = "127.0.0.2"


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    """Behind a proxy at 127.0.0.1 (and a proxy network that the chain tests use), with a small
    rate limit; cheap hashes: these tests are about addresses."""
    return attrs.evolve(
        server_config,
        trusted_proxies=(PROXY, "10.1.0.0/16"),
        rate_limit_per_minute=3,
        insecure_fast_hash=True,
    )


async def call(
    server: RunningServer,
    name: str,
    body: dict[str, Any],
    *,
    forwarded: str | None = None,
    source: str = PROXY,
) -> tuple[int, dict[str, Any]]:
    """One call as raw HTTP from ``source``, with ``forwarded`` as X-Forwarded-For: (HTTP
    status, the JSON envelope)."""
    headers = {APP_KEY_HEADER: APP_KEY}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(
            server.url + PATHS[name], json={"scope": "default", **body}, headers=headers
        ) as response,
    ):
        return response.status, dict(await response.json())


async def create_user(server: RunningServer) -> str:
    status, envelope = await call(server, "create", USER, forwarded="192.0.2.1")
    assert status == 200, envelope
    return str(envelope["result"]["user_id"])


async def last_login_from(server: RunningServer, user_id: str) -> str | None:
    events = await server.store.login_events(user_id)
    assert events, "no login event was stored"
    return max(events, key=lambda event: event.at).remote


async def test_login_events_and_failed_logins_record_the_forwarded_client(
    server: RunningServer,
) -> None:
    user_id = await create_user(server)

    status, _ = await call(server, "login", USER, forwarded="203.0.113.7")
    assert status == 200
    assert await last_login_from(server, user_id) == "203.0.113.7"

    wrong = {**USER, "password": "not the password at all"}
    status, _ = await call(server, "login", wrong, forwarded="198.51.100.9")
    assert status != 200
    failures = await server.store.failed_logins("default")
    assert [failure.remote for failure in failures] == ["198.51.100.9"]


async def test_a_client_that_connects_directly_cannot_choose_its_address(
    server: RunningServer,
) -> None:
    user_id = await create_user(server)

    status, _ = await call(server, "login", USER, forwarded="203.0.113.7", source=DIRECT)

    assert status == 200
    assert await last_login_from(server, user_id) == DIRECT


async def test_without_trusted_proxies_the_header_is_ignored_and_no_middleware_runs(
    server_config: ServerConfig,
) -> None:
    config = attrs.evolve(server_config, trusted_proxies=())
    async with await start_server(config) as server:
        user_id = await create_user(server)
        status, _ = await call(server, "login", USER, forwarded="203.0.113.7")

        assert status == 200
        assert await last_login_from(server, user_id) == PROXY
        # The envelope's and the admin page's alone: nothing to pay for.
        assert "forwarded" not in {m.__name__ for m in server.app.middlewares}


@pytest.mark.parametrize(
    "forwarded",
    ["not-an-address", "203.0.113.7, garbage", "203.0.113.7,,198.51.100.9", "203.0.113.7:443"],
)
async def test_a_malformed_header_from_a_proxy_falls_back_to_the_proxy(
    server: RunningServer, forwarded: str
) -> None:
    user_id = await create_user(server)

    status, _ = await call(server, "login", USER, forwarded=forwarded)

    assert status == 200
    assert await last_login_from(server, user_id) == PROXY


async def test_rate_limits_count_per_forwarded_client(server: RunningServer) -> None:
    await create_user(server)
    for _ in range(3):
        status, _ = await call(server, "login", USER, forwarded="203.0.113.1")
        assert status == 200

    refused = await call(server, "login", USER, forwarded="203.0.113.1")
    other_client = await call(server, "login", USER, forwarded="203.0.113.2")

    assert refused[1]["status"] == TOO_MANY
    assert other_client[0] == 200  # a budget of its own, though through the same proxy


async def test_a_client_cannot_escape_its_limit_by_forging_the_header(
    server: RunningServer,
) -> None:
    await create_user(server)
    for _ in range(3):
        await call(server, "login", USER, forwarded="203.0.113.1")

    # The client sends "X-Forwarded-For: 198.51.100.99"; the proxy appends the address it saw.
    # A chain of trusted proxies (10.1.x.x) on the way changes nothing either.
    forged = await call(server, "login", USER, forwarded="198.51.100.99, 203.0.113.1")
    chained = await call(
        server, "login", USER, forwarded="198.51.100.98, 203.0.113.1, 10.1.2.3, 10.1.4.5"
    )

    assert forged[1]["status"] == TOO_MANY
    assert chained[1]["status"] == TOO_MANY


NETWORKS = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", " 1.1.1.1 , 203.0.113.7 ", "203.0.113.7"),  # the rightmost untrusted
        ("127.0.0.1", "203.0.113.7, 10.1.9.9", "203.0.113.7"),  # trusted hops are skipped
        ("127.0.0.1", "10.1.0.1, 10.1.0.2", "10.1.0.1"),  # all trusted: the furthest
        ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
        ("::ffff:127.0.0.1", "203.0.113.7", "203.0.113.7"),  # a dual-stack socket's peer
        ("127.0.0.2", "203.0.113.7", "127.0.0.2"),  # not a proxy: the header is the client's
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "unknown", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7, [2001:db8::1]:80", "127.0.0.1"),
    ],
)
def test_client_address_rules(peer: str, forwarded: str, client: str) -> None:
    assert client_address(peer, forwarded, NETWORKS) == client


def test_client_address_without_a_peer_is_none() -> None:
    assert client_address(None, "203.0.113.7", NETWORKS) is None


def test_server_config_reads_proxies_from_a_comma_separated_variable(tmp_path: Path) -> None:
    config = ServerConfig.from_env(
        {"CORELOGIN_KEY": "k", "CORELOGIN_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/24"}
    )
    assert config.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/24")
