"""Event and the result objects: Lua-table access, immutability, secrets kept out of repr."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from corelogin import Event, Login, OAuth, User

LOGIN: dict[str, Any] = {
    "active": True,
    "confirmation": "pending",
    "email": "tina@home.com",
    "group": "players",
    "extra": {"level": 3},
    "oauth": {
        "provider": "facebook",
        "client_id": "fb-id-1234abcd",
        "access_token": "SECRET-ACCESS-TOKEN",
        "access_token_expiry": 1900000000,
        "access_token_expired": False,
    },
    "scope": "default",
    "user_id": "0b7b4b7e-0000-4000-8000-000000000000",
    "username": "Tina",
    "validated": False,
}


def test_event_reads_as_attributes_and_as_a_mapping() -> None:
    event = Event("login", error="invalid", status=603, tt=12.5)
    assert event.error == event["error"] == "invalid"
    assert event.get("status") == 603
    assert dict(event) == {
        "name": "login",
        "error": "invalid",
        "status": 603,
        "result": None,
        "tt": 12.5,
        "retry_after": None,
    }
    assert event.is_error is True
    assert Event("login", result=1).is_error is False
    with pytest.raises(KeyError):
        event["nope"]


def test_event_is_immutable() -> None:
    event = Event("login")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.error = "changed"  # type: ignore[misc]


def test_login_round_trips_and_hides_the_access_token() -> None:
    login = Login.from_wire(LOGIN)
    assert login.to_dict() == LOGIN
    assert login.oauth is not None
    assert login.oauth.access_token == "SECRET-ACCESS-TOKEN"
    assert login["oauth"]["client_id"] == "fb-id-1234abcd"
    printed = repr(Event("login", result=login))
    assert "SECRET-ACCESS-TOKEN" not in printed
    assert "fb-id-1234abcd" in printed


@pytest.mark.parametrize(
    "change",
    [
        {"active": "yes"},
        {"user_id": None},
        {"extra": [1]},
        {"oauth": "facebook"},
        {"oauth": {**LOGIN["oauth"], "access_token_expiry": "soon"}},
    ],
)
def test_malformed_login_objects_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Login.from_wire({**LOGIN, **change})


def test_user_from_wire_checks_created() -> None:
    data = {
        "user_id": "u",
        "username": "Tina",
        "email": None,
        "scope": "default",
        "group": None,
        "extra": None,
        "active": True,
        "confirmation": None,
        "created": 1700000000,
    }
    assert User.from_wire(data).to_dict() == data
    with pytest.raises(ValueError):
        User.from_wire({**data, "created": "yesterday"})
    assert OAuth.from_wire(None) is None
