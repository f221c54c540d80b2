r"""What listeners receive: the Event and the objects in its ``result``.

All are frozen attrs classes readable both as attributes and as a mapping, so that
``evt.result.user_id`` and ``evt["result"]["user_id"]`` both work, as a Lua table would.
Secrets (access tokens) are left out of every ``repr``.

`Event` is generic in its result (``Event[Login]``), so that an editor completes
``evt.result.user_id`` and a type checker catches ``evt.result.user_idd``. The small table
results are `TypedDict`\ s: plain dicts at run time, typed keys for the checker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypedDict

import attrs
from typing_extensions import TypeVar

__all__ = ["AuthToken", "Event", "Expired", "Login", "OAuth", "User", "UserId"]

# Defaults to Any: a bare ``Event`` annotation stays valid under ``mypy --strict``.
T_co = TypeVar("T_co", covariant=True, default=Any)


class UserId(TypedDict):
    """The result of ``remove_auth_provider``."""

    user_id: str


class Expired(TypedDict):
    """The result of ``access_token_expired``."""

    expired: bool


class AuthToken(TypedDict):
    """The result of ``create_auth_token``: a one-time token and its expiry (unix seconds)."""

    auth_token: str
    expires: int


class _Table(Mapping[str, Any]):
    """Mapping access over an attrs class's fields."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key in _names(type(self)):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_names(type(self)))

    def __len__(self) -> int:
        return len(_names(type(self)))

    def to_dict(self) -> dict[str, Any]:
        """A plain, recursive copy (secrets included: it is data, not a printout)."""
        return attrs.asdict(self)  # type: ignore[arg-type]


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string or null, got {type(value).__name__}")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected a boolean, got {type(value).__name__}")


def _opt_dict(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(f"expected a table or null, got {type(value).__name__}")


@attrs.frozen(eq=True)
class OAuth(_Table):
    """The provider table of a login through a linked OAuth provider."""

    provider: str
    client_id: str
    access_token: str | None = attrs.field(repr=False)
    access_token_expiry: int | None
    access_token_expired: bool

    @classmethod
    def from_wire(cls, data: Any) -> OAuth | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ValueError("oauth must be a table")
        expiry = data.get("access_token_expiry")
        if expiry is not None and (not isinstance(expiry, int) or isinstance(expiry, bool)):
            raise ValueError("access_token_expiry must be an integer")
        return cls(
            provider=_str(data.get("provider")),
            client_id=_str(data.get("client_id")),
            access_token=_opt_str(data.get("access_token")),
            access_token_expiry=expiry,
            access_token_expired=_bool(data.get("access_token_expired")),
        )


@attrs.frozen(eq=True)
class Login(_Table):
    """The login object of seed 004: exactly these keys."""

    active: bool
    confirmation: str | None
    email: str | None
    group: str | None
    extra: dict[str, Any] | None
    oauth: OAuth | None
    scope: str
    user_id: str
    username: str
    validated: bool

    @classmethod
    def from_wire(cls, data: Any) -> Login:
        """Build from the server's JSON; raises ``ValueError`` on a malformed object."""
        if not isinstance(data, Mapping):
            raise ValueError("login object must be a table")
        return cls(
            active=_bool(data.get("active")),
            confirmation=_opt_str(data.get("confirmation")),
            email=_opt_str(data.get("email")),
            group=_opt_str(data.get("group")),
            extra=_opt_dict(data.get("extra")),
            oauth=OAuth.from_wire(data.get("oauth")),
            scope=_str(data.get("scope")),
            user_id=_str(data.get("user_id")),
            username=_str(data.get("username")),
            validated=_bool(data.get("validated")),
        )

    def updated(self, user: User) -> Login:
        """This login with the record of its user as ``user`` now has it."""
        return attrs.evolve(
            self,
            active=user.active,
            confirmation=user.confirmation,
            email=user.email,
            group=user.group,
            extra=user.extra,
            username=user.username,
            validated=user.active and user.confirmation is None,
        )


@attrs.frozen(eq=True)
class User(_Table):
    """A user record as returned by ``users.create`` (no secrets in it)."""

    user_id: str
    username: str
    email: str | None
    scope: str
    group: str | None
    extra: dict[str, Any] | None
    active: bool
    confirmation: str | None
    created: int

    @classmethod
    def from_wire(cls, data: Any) -> User:
        if not isinstance(data, Mapping):
            raise ValueError("user must be a table")
        created = data.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            raise ValueError("created must be an integer")
        return cls(
            user_id=_str(data.get("user_id")),
            username=_str(data.get("username")),
            email=_opt_str(data.get("email")),
            scope=_str(data.get("scope")),
            group=_opt_str(data.get("group")),
            extra=_opt_dict(data.get("extra")),
            active=_bool(data.get("active")),
            confirmation=_opt_str(data.get("confirmation")),
            created=created,
        )


@attrs.frozen(eq=True)
class Event(_Table, Generic[T_co]):
    """What every listener receives, exactly once per call.

    ``error`` is a message for people and ``status`` a code from DESIGN.md §5 (both None on
    success); ``result`` is the call's answer; ``tt`` the round trip in milliseconds.

    ``result`` is typed as the call's answer (``Event[Login]``) although it is None on an
    error, so that the usual ``if evt.error: ... else: evt.result.user_id`` type-checks.
    """

    name: str
    error: str | None = None
    status: int | None = None
    result: T_co = attrs.field(default=None)
    tt: float = 0.0
    # 829: the seconds the server asked to wait before trying again (its Retry-After). The SDK
    # never retries a call by itself once the server has it.
    retry_after: int | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None
