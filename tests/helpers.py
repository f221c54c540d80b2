"""Helpers shared by the tests."""

from __future__ import annotations

import corelogin

APP_KEY = "test-app-key"
PASSWORD = "correct horse battery"


async def make_user(
    core: corelogin.Core, username: str = "Donna", **params: object
) -> corelogin.User:
    """Create a user through the SDK and return it (fails the test on an error event)."""
    event = await core.users.create({"username": username, "password": PASSWORD, **params})
    assert event.error is None, event
    user = event.result
    assert isinstance(user, corelogin.User)
    return user
