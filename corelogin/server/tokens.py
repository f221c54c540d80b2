"""Secrets the server hands out (session tokens, the codes of mailed links): made with
`secrets`, kept only as their SHA-256 (DESIGN.md §4)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from corelogin.server.store import CodeRecord
from corelogin.server.store.base import Purpose

__all__ = ["hash_token", "new_code", "new_token"]


def new_token() -> str:
    """32 random bytes, URL-safe: a session token or the code of a link."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps instead of a token (a fast hash is right: the token is random)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_code(
    user_id: str,
    purpose: Purpose,
    now: float,
    ttl: float,
    *,
    counted: bool = False,
    mail: dict[str, Any] | None = None,
) -> tuple[str, CodeRecord]:
    """A one-time code for a link: the code to mail, and the record to store."""
    code = new_token()
    record = CodeRecord(
        code_hash=hash_token(code),
        user_id=user_id,
        purpose=purpose,
        created=now,
        expires=now + ttl,
        counted=counted,
        mail=mail,
    )
    return code, record
