"""Server configuration: one frozen object, filled from flags, environment and defaults."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

__all__ = ["DEFAULT_DB", "ENV_PREFIX", "POLICIES", "ProviderConfig", "ServerConfig"]

ENV_PREFIX = "CORELOGIN_"
DEFAULT_DB = "sqlite:///corelogin.sqlite3"

DAY = 24 * 3600


def _non_empty(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


Policy = Literal["oidc", "token", "introspect", "device", "trust_client_id"]
POLICIES: tuple[Policy, ...] = ("oidc", "token", "introspect", "device", "trust_client_id")


@attrs.frozen
class ProviderConfig:
    """One ``[providers.NAME]`` table: how the server checks a login's proof (docs/oauth.md)."""

    policy: Policy
    # oidc: the id_token's issuer and audiences, and where the provider's keys are.
    issuer: str | None = None
    audiences: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    jwks_url: str | None = None
    jwks_file: str | None = None
    leeway_seconds: float = 60.0
    # introspect: where to ask, in which shape, and as whom.
    introspect_url: str | None = None
    introspect_format: Literal["rfc7662", "facebook"] = "rfc7662"
    client_id: str | None = None
    client_secret: str | None = attrs.field(default=None, repr=False)
    timeout_seconds: float = 5.0
    # oidc and device: the first login of an identity nobody linked creates a user.
    signup: bool = False

    def __attrs_post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        needed = {
            "oidc": ("issuer", "audiences"),
            "introspect": ("introspect_url",),
        }.get(self.policy, ())
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"the {self.policy} policy needs {', '.join(missing)}")
        if self.policy == "oidc" and (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("the oidc policy needs jwks_url or jwks_file (one of them)")
        if self.signup and self.policy not in ("oidc", "device"):
            raise ValueError("signup works with the oidc and device policies only")
        if self.introspect_format == "facebook" and not (self.client_id and self.client_secret):
            raise ValueError("introspect_format = 'facebook' needs client_id and client_secret")


def _addresses(value: str | Sequence[str]) -> tuple[str, ...]:
    """Proxy addresses as networks' text, from a list or from one comma-separated string
    (the environment's form); ValueError names a bad one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in filter(None, (str(item).strip() for item in items)):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"trusted_proxies: {item!r} is not an address or network") from None
    return tuple(networks)


def _providers(tables: Mapping[str, Any]) -> Mapping[str, ProviderConfig]:
    """``[providers.NAME]`` tables as `ProviderConfig`; ValueError names the bad one."""
    if not isinstance(tables, Mapping):
        raise ValueError("providers are tables of the TOML file: [providers.NAME]")
    providers = {}
    for name, table in tables.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(
                f"provider name {name!r}: letters, digits, '_', '.', '-', at most 64 of them"
            )
        if isinstance(table, ProviderConfig):
            providers[name] = table
            continue
        if not isinstance(table, Mapping):
            raise ValueError(f"[providers.{name}] must be a table")
        known = {field.name for field in attrs.fields(ProviderConfig)}
        unknown = sorted(set(table) - known)
        try:
            if unknown:
                raise ValueError(f"unknown keys {', '.join(unknown)}")
            providers[name] = ProviderConfig(**table)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[providers.{name}]: {exc}") from None
    return providers


@attrs.frozen
class ServerConfig:
    """Everything the reference server needs. The app key comes from here, never from code."""

    app_key: str = attrs.field(repr=False, validator=_non_empty)
    db: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = 10001
    # Policy for new passwords (OWASP: at least 8); longer limits live in corelogin.wire.
    min_password_length: int = 8
    # Hashing threads; None means one per core this process may use (DESIGN.md §4).
    hash_workers: int | None = None
    # Hash jobs that may wait for a thread (None: 16 per thread); beyond them, 829 at once.
    hash_queue: int | None = None
    # Hash jobs one account may have at once (a flood aimed at one account cannot fill the
    # queue); beyond them, 829 at once.
    hash_jobs_per_account: int = 4
    # Cheap hashes for benchmarks only; refused unless set explicitly and logged loudly.
    insecure_fast_hash: bool = False
    # Connections (docs/server.md): a request must arrive whole within request_timeout seconds;
    # an idle keep-alive connection is closed after keepalive_timeout; beyond the connection
    # limits a new connection is closed at once.
    request_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    max_connections: int = 4096
    max_connections_per_address: int = 256
    # Sessions (DESIGN.md §4): refused once idle or old beyond these.
    session_idle_seconds: int = attrs.field(default=7 * DAY, validator=attrs.validators.gt(0))
    session_absolute_seconds: int = attrs.field(default=30 * DAY, validator=attrs.validators.gt(0))
    # The admin page's operator sessions (docs/admin.md): ended once idle or old beyond these.
    admin_idle_seconds: int = attrs.field(default=1800, validator=attrs.validators.gt(0))
    admin_absolute_seconds: int = attrs.field(default=12 * 3600, validator=attrs.validators.gt(0))
    # The admin key of trusted back-end code (header X-Corelogin-Admin-Key); None: no admin.
    admin_key: str | None = attrs.field(
        default=None, repr=False, validator=attrs.validators.optional(_non_empty)
    )
    # New passwords: refused when zxcvbn scores them below this (0 turns the check off).
    min_password_score: int = 1
    # Mail (docs/accounts.md): smtp_url sends through SMTP, mail_outbox writes .eml files
    # instead (development); neither: calls that send mail get 702.
    smtp_url: str | None = None
    smtp_password: str | None = attrs.field(default=None, repr=False)
    smtp_timeout: float = 10.0
    mail_outbox: str | None = None
    # Sender of the mails the server writes itself (password reset).
    mail_from: str = "corelogin@localhost"
    # Custom confirmation templates (email_tpl) are bare file names in this directory.
    templates_dir: str | None = None
    # Base of the links in mail; None: http://host:port of this server.
    public_url: str | None = None
    confirmation_ttl_seconds: int = DAY
    reset_ttl_seconds: int = 3600
    # One resend_confirmation per user per this many seconds (829 otherwise).
    resend_interval_seconds: int = 60
    # send_password_reset: one per email address per interval (829 otherwise).
    reset_interval_seconds: int = 60
    # resend_confirmation and send_password_reset together: at most this many per client
    # address per minute (829 otherwise).
    mails_per_address_per_minute: int = 10
    # One-time login tokens (create_auth_token): how long one lives.
    auth_token_ttl_seconds: int = 300
    # Lockout (606): this many failed logins of one identifier within the window lock it for
    # lockout_seconds; 0 turns lockout off.
    lockout_threshold: int = 10
    lockout_window_seconds: int = 900
    lockout_seconds: int = 900
    # Live sessions one user may have (0: no limit); beyond them a login is refused (608,
    # "reject") or ends the oldest session ("evict_oldest").
    max_sessions_per_user: int = 0
    session_limit_policy: Literal["reject", "evict_oldest"] = "reject"
    # Calls per client address and per kind (login, create, resend, reset) in a minute; beyond
    # them 829 with Retry-After; 0 turns the limit off. Players behind one NAT share an address.
    rate_limit_per_minute: int = 600
    # OAuth providers this server accepts, by name ([providers.NAME] in the TOML file); a
    # provider not listed gets 626.
    providers: Mapping[str, ProviderConfig] = attrs.field(factory=dict, converter=_providers)
    # PostgreSQL (db = postgresql://...): connections each server process keeps open, at least
    # and at most; a request waits up to db_timeout_seconds for one, or for a statement.
    db_pool_min: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    db_pool_max: int = attrs.field(default=10, validator=attrs.validators.gt(0))
    db_timeout_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    # Server processes sharing the port (SO_REUSEPORT; PostgreSQL only: docs/deploying.md).
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    # Addresses (or networks, "10.0.0.0/8") of reverse proxies whose X-Forwarded-For is
    # believed, for rate limits and login events; from anyone else the header is ignored.
    trusted_proxies: tuple[str, ...] = attrs.field(default=(), converter=_addresses)

    def link(self, path: str, port: int | None = None) -> str:
        """An absolute link to ``path`` on this server, for mail: under ``public_url``, else
        on ``host`` and ``port`` (the port the server really listens on, when given). Never
        from a request's Host header, which the client chooses."""
        base = self.public_url or f"http://{self.host}:{port or self.port}"
        return base.rstrip("/") + path

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        file: str | None = None,
        **overrides: Any,
    ) -> ServerConfig:
        """Every field from, in order of precedence: ``overrides`` that are not None (the
        flags), ``CORELOGIN_<FIELD>`` variables (``CORELOGIN_KEY`` for ``app_key``), then the
        TOML ``file``, whose keys are the field names; raises ``ValueError`` with one line."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = _read_toml(file) if file else {}
        for field in attrs.fields(cls):
            raw = env.get(ENV_PREFIX + _ENV_NAMES.get(field.name, field.name.upper()))
            if raw:
                values[field.name] = _convert(field, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - {field.name for field in attrs.fields(cls)})
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        if "app_key" not in values:
            raise ValueError(f"an app key is required (--key or {ENV_PREFIX}KEY)")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"bad configuration: {exc}") from None


_ENV_NAMES = {"app_key": "KEY"}


def _convert(field: attrs.Attribute[Any], raw: str) -> Any:
    """An environment variable's text as the field's type."""
    kind = str(field.type)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{field.name.upper()} must be a {kind}: {raw!r}") from None
    return raw


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the configuration file {path} is not valid TOML: {exc}") from None
