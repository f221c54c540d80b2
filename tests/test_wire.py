"""Client-side checks (corelogin.wire): answered at once, with the right code, no network."""

from __future__ import annotations

import socket
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest

import corelogin
from corelogin.wire import (
    CALLS,
    EMAIL_MAX_CHARS,
    PASSWORD_MAX_BYTES,
    PATHS,
    USERNAME_MAX_CHARS,
    ApiError,
    check_params,
)

OK = "correct horse battery"


def nested(depth: int) -> dict[str, Any]:
    """A dict nested ``depth`` levels deep: more than json.dumps can recurse through."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: any network use would end in 815, not a check's code."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def offline_core(dead_url: str) -> AsyncIterator[corelogin.Core]:
    async with corelogin.init(dead_url, "key", retries=0) as core:
        yield core


LOGIN_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("no-identity", {"password": OK}, 804),
    ("none-username", {"username": None, "password": OK}, 804),
    ("no-password", {"username": "Donna"}, 804),
    ("empty-username", {"username": "", "password": OK}, 805),
    ("empty-email", {"email": "", "password": OK}, 805),
    ("empty-password", {"username": "Donna", "password": ""}, 805),
    ("int-username", {"username": 42, "password": OK}, 801),
    ("bool-password", {"username": "Donna", "password": True}, 801),
    ("list-email", {"email": ["a@b.c"], "password": OK}, 801),
    ("bytes-password", {"username": "Donna", "password": b"secret"}, 801),
    ("both-identities", {"username": "Donna", "email": "d@b.c", "password": OK}, 801),
    ("long-username", {"username": "u" * (USERNAME_MAX_CHARS + 1), "password": OK}, 806),
    ("long-email", {"email": "e" * (EMAIL_MAX_CHARS - 5) + "@b.com", "password": OK}, 806),
    ("long-password", {"username": "Donna", "password": "p" * (PASSWORD_MAX_BYTES + 1)}, 806),
    # 513 two-byte characters: under 1024 characters, over 1024 bytes.
    ("long-password-bytes", {"username": "Donna", "password": "é" * 513}, 806),
    ("bad-timeout", {"username": "Donna", "password": OK, "timeout": "soon"}, 801),
    ("huge-timeout", {"username": "Donna", "password": OK, "timeout": 10**400}, 801),
    ("surrogate-password", {"username": "Donna", "password": "pass\ud800word"}, 801),
    ("surrogate-username", {"username": "Do\udfffnna", "password": OK}, 801),
    ("zero-timeout", {"username": "Donna", "password": OK, "timeout": 0}, 801),
    ("malformed-email", {"email": "donna", "password": OK}, 704),
]

CREATE_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("no-username", {"password": OK}, 804),
    ("email-only", {"email": "d@b.c", "password": OK}, 804),
    ("int-group", {"username": "Donna", "password": OK, "group": 7}, 801),
    ("list-extra", {"username": "Donna", "password": OK, "extra": [1, 2]}, 801),
    ("extra-not-json", {"username": "Donna", "password": OK, "extra": {"a": object()}}, 801),
    ("extra-too-big", {"username": "Donna", "password": OK, "extra": {"a": "x" * 20000}}, 806),
    ("extra-surrogate", {"username": "Donna", "password": OK, "extra": {"a": "\ud800"}}, 801),
    ("extra-too-deep", {"username": "Donna", "password": OK, "extra": nested(100_000)}, 801),
    ("malformed-email", {"username": "Donna", "password": OK, "email": "donna"}, 704),
    ("extra-nested", {"username": "Donna", "password": OK, "extra": {"a": {"b": 1}}}, 801),
    ("extra-list-value", {"username": "Donna", "password": OK, "extra": {"a": [1]}}, 801),
    ("extra-none-value", {"username": "Donna", "password": OK, "extra": {"a": None}}, 801),
    ("extra-int-key", {"username": "Donna", "password": OK, "extra": {1: "a"}}, 801),
    ("extra-nan", {"username": "Donna", "password": OK, "extra": {"a": float("nan")}}, 801),
    ("extra-inf", {"username": "Donna", "password": OK, "extra": {"a": float("inf")}}, 801),
    ("extra-huge-int", {"username": "Donna", "password": OK, "extra": {"a": 10**400}}, 801),
    ("group-nul", {"username": "Donna", "password": OK, "group": "a\x00b"}, 801),
    ("group-escape", {"username": "Donna", "password": OK, "group": "\x1b[31mred"}, 801),
]


@pytest.mark.parametrize(
    ("call", "params", "status"),
    [("login", p, s) for _, p, s in LOGIN_CASES] + [("create", p, s) for _, p, s in CREATE_CASES],
    ids=[f"login-{n}" for n, _, _ in LOGIN_CASES] + [f"create-{n}" for n, _, _ in CREATE_CASES],
)
async def test_bad_params_answer_at_once_without_the_network(
    offline_core: corelogin.Core, call: str, params: dict[str, Any], status: int
) -> None:
    received: list[corelogin.Event] = []

    request = getattr(offline_core.users, call)(params, received.append)

    assert request.done()  # decided before the call returned: no round trip
    event = await request
    assert event.status == status
    assert event.error
    assert isinstance(event.error, str)
    assert event.result is None
    assert received == [event]


@pytest.mark.parametrize("params", [None, "username=Donna", ["Donna", OK], 42])
async def test_params_that_are_not_a_table_give_801(
    offline_core: corelogin.Core, params: Any
) -> None:
    event = await offline_core.users.login(params)
    assert event.status == 801


def test_limits_are_inclusive() -> None:
    body = check_params(
        "login", {"username": "u" * USERNAME_MAX_CHARS, "password": "p" * PASSWORD_MAX_BYTES}
    )
    assert len(body["username"]) == USERNAME_MAX_CHARS
    email = "e" * (EMAIL_MAX_CHARS - 6) + "@b.com"
    assert check_params("login", {"email": email, "password": "x"})["email"] == email


def test_only_known_keys_are_sent_and_params_are_copied() -> None:
    params = {"username": "Donna", "password": OK, "timeout": 5, "color": "red"}
    body = check_params("login", params)
    assert body == {"username": "Donna", "password": OK}
    body["username"] = "changed"
    assert params["username"] == "Donna"


async def test_unreachable_server_gives_815(offline_core: corelogin.Core) -> None:
    event = await offline_core.users.login({"username": "Donna", "password": OK})
    assert event.status == 815
    assert "cannot connect" in (event.error or "")


def test_listener_must_be_callable(dead_url: str) -> None:
    with corelogin.init(dead_url, "key") as core, pytest.raises(TypeError):
        core.users.login({"username": "Donna", "password": OK}, "not callable")  # type: ignore[arg-type]


@pytest.mark.parametrize("scope", ["def\x00ault", "a\nb", "\x7f"])
def test_a_scope_with_control_characters_is_refused_at_init(dead_url: str, scope: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        corelogin.init(dead_url, "key", scope=scope)


def test_params_given_as_separate_strings_say_params_must_be_a_table(dead_url: str) -> None:
    with corelogin.init(dead_url, "key") as core, pytest.raises(TypeError, match="a table"):
        core.users.login("Donna", "pw")  # type: ignore[arg-type]


def test_the_provider_names_are_on_the_core_too(dead_url: str) -> None:
    with corelogin.init(dead_url, "key") as core:
        assert (core.FACEBOOK, core.GOOGLE, core.APPLE, core.OPENUDID) == (
            corelogin.FACEBOOK,
            corelogin.GOOGLE,
            corelogin.APPLE,
            corelogin.OPENUDID,
        )


def test_a_confirmation_needs_an_email_before_anything_is_sent() -> None:
    confirmation = {"from_email": "noreply@game.example", "subject": "Welcome"}
    params = {"username": "Donna", "password": "pw", "confirmation": confirmation}

    with pytest.raises(ApiError) as refused:
        check_params("create", params)
    body = check_params("create", {**params, "email": "donna@home.example"})

    assert (refused.value.status, refused.value.message) == (
        804,
        "email is required with confirmation",
    )
    assert body["confirmation"] == confirmation


def test_every_call_has_a_path_under_v1_and_a_lua_name() -> None:
    for name, call in CALLS.items():
        assert PATHS[name] == call.path == f"/v1/users/{name}"
        assert "_" not in call.lua_name
        assert call.lua_name.lower() == name.replace("_", "")


def test_the_control_characters_refused_are_exactly_unicodes_category_cc() -> None:
    from corelogin.wire.fields import _CONTROL

    differ = [
        hex(c)
        for c in range(0x110000)
        if (unicodedata.category(chr(c)) == "Cc") != bool(_CONTROL.search(chr(c)))
    ]
    assert differ == []
