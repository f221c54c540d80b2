"""``core.users``: the user calls, snake_case and by their Lua names.

What a call sends and may answer is declared once, in `corelogin.wire.CALLS`; this module adds
what only the SDK needs: how its result is read and which signals announce it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from blinker import NamedSignal

from corelogin import signals
from corelogin.models import AuthToken, Expired, Login, OAuth, User, UserId
from corelogin.wire import CALLS, NULL, Call

if TYPE_CHECKING:
    from corelogin.client import Core
    from corelogin.request import Listener, Request

__all__ = ["NULL", "SPECS", "CallSpec", "Users"]


def _exactly(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if type(value) is not kind:  # bool is an int, and 1 is not True
            raise ValueError(f"expected a {kind.__name__}, got {type(value).__name__}")
        return value

    return parse


def _table(key: str, kind: type) -> Callable[[Any], Any]:
    """A result that is a table of one key (``{"user_id": ...}``, ``{"expired": ...}``)."""
    check = _exactly(kind)

    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or set(value) != {key}:
            raise ValueError(f"expected a table with the key {key!r}")
        return {key: check(value[key])}

    return parse


def _auth_token(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) != {"auth_token", "expires"}:
        raise ValueError("expected a table of auth_token and expires")
    return {
        "auth_token": _exactly(str)(value["auth_token"]),
        "expires": _exactly(int)(value["expires"]),
    }


def _provider_table(value: Any) -> OAuth:
    table = OAuth.from_wire(value)
    if table is None:
        raise ValueError("expected a provider table")
    return table


_PARSERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "User": User.from_wire,
    "Login": Login.from_wire,
    "OAuth": _provider_table,
    "UserId": _table("user_id", str),
    "Expired": _table("expired", bool),
    "AuthToken": _auth_token,
    "integer": _exactly(int),
    "string": _exactly(str),
    "boolean": _exactly(bool),
    "flag": _exactly(bool),
}

# The signal each call sends on success and on failure.
_SIGNALS: Final[Mapping[str, tuple[NamedSignal | None, NamedSignal | None]]] = {
    "create": (signals.user_created, None),
    "login": (signals.login, signals.login_failed),
    "login_with_auth_token": (signals.login, signals.login_failed),
    "restore": (signals.session_restored, None),
    # Local state is cleared whether or not the server could be told: announced either way.
    "logout": (signals.logout, signals.logout),
    "update": (signals.user_updated, None),
    "delete": (signals.user_deleted, None),
}


@attrs.frozen
class CallSpec:
    """How one call is sent, read and announced. (What every call reads is a plain attribute:
    this is on the path of every call.)"""

    call: Call
    parse: Callable[[Any], Any]
    success: NamedSignal | None = None
    failure: NamedSignal | None = None
    name: str = attrs.field(init=False, default=attrs.Factory(lambda s: s.call.name, True))
    path: str = attrs.field(init=False, default=attrs.Factory(lambda s: s.call.path, True))
    # A successful answer carries a new session for the Core to keep.
    opens_session: bool = attrs.field(
        init=False,
        default=attrs.Factory(lambda s: s.call.result == "Login" and s.call.access == "app", True),
    )
    # Sent with the session or the admin key; may change the logged-in user.
    about_a_user: bool = attrs.field(
        init=False, default=attrs.Factory(lambda s: s.call.access in ("user", "admin"), True)
    )


SPECS: Final[Mapping[str, CallSpec]] = {
    name: CallSpec(call, _PARSERS[call.result], *_SIGNALS.get(name, (None, None)))
    for name, call in CALLS.items()
}


class Users:
    """The ``core.users`` namespace. Every method returns a `Request` at once; the listener
    gets the Event later, exactly once. Each call is also reachable by its Lua name."""

    NULL: Final = NULL

    def __init__(self, core: Core) -> None:
        self._core = core

    def _call(self, name: str, params: Any, listener: Listener[Any] | None) -> Request[Any]:
        return self._core._call(SPECS[name], params, listener)

    def create(
        self, params: Mapping[str, Any], listener: Listener[User] | None = None
    ) -> Request[User]:
        """Register a user: ``username``, ``password``, optional ``email``, ``group``,
        ``extra`` and ``confirmation`` (``{"from_email", "subject", "email_tpl"?,
        "tpl_keys"?}``: the user stays inactive until the mailed link is followed).

        The result is a `User`.
        """
        return self._call("create", params, listener)

    def login(
        self, params: Mapping[str, Any], listener: Listener[Login] | None = None
    ) -> Request[Login]:
        """Log in with ``username`` or ``email`` and ``password``; the result is a `Login`."""
        return self._call("login", params, listener)

    def get(
        self, params: Mapping[str, Any], listener: Listener[User] | None = None
    ) -> Request[User]:
        """``{"user_id"}`` → the `User` (your own, or any with the admin key)."""
        return self._call("get", params, listener)

    def update(
        self, params: Mapping[str, Any], listener: Listener[User] | None = None
    ) -> Request[User]:
        """``{"user_id", "update": {...}}`` → the updated `User`.

        ``update`` may hold ``username``, ``password``, ``email``, ``extra`` (merged key by key;
        `NULL` removes a key), and with the admin key ``group`` and ``active``. A new password
        or email of your own needs ``current_password``.
        """
        return self._call("update", params, listener)

    def delete(
        self, params: Mapping[str, Any], listener: Listener[int] | None = None
    ) -> Request[int]:
        """``{"user_id"}`` → 1, or 0 when there was no such user (admin key)."""
        return self._call("delete", params, listener)

    def resend_confirmation(
        self, params: Mapping[str, Any], listener: Listener[str] | None = None
    ) -> Request[str]:
        """``{"user_id"}`` of a user awaiting confirmation → its ``user_id``; mails a new
        link, and the old ones stop working."""
        return self._call("resend_confirmation", params, listener)

    def send_password_reset(
        self, params: Mapping[str, Any], listener: Listener[bool] | None = None
    ) -> Request[bool]:
        """``{"email"}`` → True, whether or not the address is known; mails a reset link."""
        return self._call("send_password_reset", params, listener)

    def reset_password(
        self, params: Mapping[str, Any], listener: Listener[bool] | None = None
    ) -> Request[bool]:
        """``{"code", "password"}`` → True; every session of the user ends."""
        return self._call("reset_password", params, listener)

    # -- sessions --------------------------------------------------------------------------

    def login_with_auth_token(
        self, params: Mapping[str, Any], listener: Listener[Login] | None = None
    ) -> Request[Login]:
        """``{"auth_token", "stay_logged_in"?}`` (a token from `create_auth_token`, used once)
        → a `Login`, as `login` gives."""
        return self._call("login_with_auth_token", params, listener)

    def create_auth_token(
        self, params: Mapping[str, Any], listener: Listener[AuthToken] | None = None
    ) -> Request[AuthToken]:
        """``{"user_id"}`` → ``{"auth_token", "expires"}`` (admin key only: back-end code
        mints it for a game client to log in with)."""
        return self._call("create_auth_token", params, listener)

    def restore(self, listener: Listener[Login] | None = None) -> Request[Login]:
        """Log in again with the session saved by a ``stay_logged_in`` login (no password):
        the `Login`; 609 when the server no longer knows it (the saved copy is cleared), 804
        when nothing is saved."""
        return self._core._session_call(SPECS["restore"], listener, saved=True)

    def is_valid_login(self, listener: Listener[bool] | None = None) -> Request[bool]:
        """True when the current (else the saved) session is live; False when there is none."""
        return self._core._session_call(SPECS["is_valid_login"], listener, saved=True)

    def logout(
        self, listener: Listener[bool] | None = None, clear_saved: bool = True
    ) -> Request[bool]:
        """End the session on the server. The local state (``logged_in_user``, and the saved
        copy when ``clear_saved``) is cleared at once, even if the server cannot be reached."""
        return self._core._logout(SPECS["logout"], listener, clear_saved=clear_saved)

    @property
    def has_saved_login(self) -> bool:
        """A session is saved for this server and scope (no network)."""
        return self._core._saved_token() is not None

    # -- OAuth providers (Coronium's OAuth API); the provider table is an `OAuth` ----------

    def add_auth_provider(
        self, params: Mapping[str, Any], listener: Listener[OAuth] | None = None
    ) -> Request[OAuth]:
        """``{"user_id", "provider", "auth": {"client_id", "access_token"?,
        "access_token_expiry"?, "id_token"?}}`` → the provider table."""
        return self._call("add_auth_provider", params, listener)

    def get_auth_provider(
        self, params: Mapping[str, Any], listener: Listener[OAuth] | None = None
    ) -> Request[OAuth]:
        """``{"user_id", "provider"}`` → the provider table."""
        return self._call("get_auth_provider", params, listener)

    def update_auth_provider(
        self, params: Mapping[str, Any], listener: Listener[OAuth] | None = None
    ) -> Request[OAuth]:
        """``{"user_id", "provider", "update": {...}}`` → the provider table."""
        return self._call("update_auth_provider", params, listener)

    def remove_auth_provider(
        self, params: Mapping[str, Any], listener: Listener[UserId] | None = None
    ) -> Request[UserId]:
        """``{"user_id", "provider"}`` → ``{"user_id": ...}``."""
        return self._call("remove_auth_provider", params, listener)

    def access_token_expired(
        self, params: Mapping[str, Any], listener: Listener[Expired] | None = None
    ) -> Request[Expired]:
        """``{"user_id", "provider"}`` → ``{"expired": bool}`` (by the server's clock)."""
        return self._call("access_token_expired", params, listener)

    def update_token_expiry(
        self, params: Mapping[str, Any], listener: Listener[OAuth] | None = None
    ) -> Request[OAuth]:
        """``{"user_id", "provider", "expiry", "token"?}`` (unix seconds) → the provider
        table."""
        return self._call("update_token_expiry", params, listener)

    # Lua names (a test checks there is one for every call of corelogin.wire.CALLS).
    resendConfirmation = resend_confirmation
    sendPasswordReset = send_password_reset
    resetPassword = reset_password
    addAuthProvider = add_auth_provider
    getAuthProvider = get_auth_provider
    updateAuthProvider = update_auth_provider
    removeAuthProvider = remove_auth_provider
    accessTokenExpired = access_token_expired
    updateTokenExpiry = update_token_expiry
    loginWithAuthToken = login_with_auth_token
    createAuthToken = create_auth_token
    isValidLogin = is_valid_login

    @property
    def logged_in_user(self) -> Login | None:
        """The login object of the last successful login, or None."""
        return self._core._logged_in_user
