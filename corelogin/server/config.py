"""Server configuration: one frozen object, filled from flags, environment and defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["DEFAULT_DB", "ENV_PREFIX", "ServerConfig"]

ENV_PREFIX = "CORELOGIN_"
DEFAULT_DB = "sqlite:///corelogin.sqlite3"

DAY = 24 * 3600


def _non_empty(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class ServerConfig:
    """Everything the reference server needs. The app key comes from here, never from code."""

    app_key: str = attrs.field(repr=False, validator=_non_empty)
    db: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = 10001
    # Policy for new passwords (OWASP: at least 8); longer limits live in corelogin.wire.
    min_password_length: int = 8
    # Hashing threads; None means one per core (DESIGN.md §4).
    hash_workers: int | None = None
    # Cheap hashes for benchmarks only; refused unless set explicitly and logged loudly.
    insecure_fast_hash: bool = False
    session_idle_seconds: int = 7 * DAY
    session_absolute_seconds: int = 30 * DAY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerConfig:
        """Read ``CORELOGIN_KEY``, ``CORELOGIN_DB``, ``CORELOGIN_HOST`` and ``CORELOGIN_PORT``;
        keyword arguments that are not None win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var, convert in (
            ("app_key", "KEY", str),
            ("db", "DB", str),
            ("host", "HOST", str),
            ("port", "PORT", int),
        ):
            raw = env.get(ENV_PREFIX + var)
            if raw:
                values[name] = convert(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "app_key" not in values:
            raise ValueError(f"an app key is required (--key or {ENV_PREFIX}KEY)")
        return cls(**values)
