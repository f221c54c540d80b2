"""``core.users``: the user calls, snake_case and by their Lua names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from blinker import NamedSignal

from corelogin import signals
from corelogin.models import Login, User
from corelogin.wire import PATHS

if TYPE_CHECKING:
    from corelogin.client import Core
    from corelogin.request import Listener, Request

__all__ = ["NULL", "CallSpec", "Users"]


class _Null:
    """``core.users.NULL``: in ``update``, removes a key from ``extra``."""

    _instance: _Null | None = None

    def __new__(cls) -> _Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = _Null()


@attrs.frozen
class CallSpec:
    """How one call is sent, read and announced."""

    name: str
    parse: Callable[[Any], Any]
    success: NamedSignal | None = None
    failure: NamedSignal | None = None
    # A successful answer carries a session for the Core to keep.
    opens_session: bool = False

    @property
    def path(self) -> str:
        return PATHS[self.name]


CREATE: Final = CallSpec("create", User.from_wire, success=signals.user_created)
LOGIN: Final = CallSpec(
    "login",
    Login.from_wire,
    success=signals.login,
    failure=signals.login_failed,
    opens_session=True,
)


class Users:
    """The ``core.users`` namespace. Every method returns a `Request` at once; the listener
    gets the Event later, exactly once."""

    NULL: Final = NULL

    def __init__(self, core: Core) -> None:
        self._core = core

    def create(self, params: Mapping[str, Any], listener: Listener | None = None) -> Request:
        """Register a user: ``username``, ``password``, optional ``email``, ``group``, ``extra``.

        The result is a `User`.
        """
        return self._core._call(CREATE, params, listener)

    def login(self, params: Mapping[str, Any], listener: Listener | None = None) -> Request:
        """Log in with ``username`` or ``email`` and ``password``; the result is a `Login`."""
        return self._core._call(LOGIN, params, listener)

    @property
    def logged_in_user(self) -> Login | None:
        """The login object of the last successful login, or None."""
        return self._core._logged_in_user
