"""What a new username or password must be (601 otherwise).

Passwords: at least ``min_password_length`` characters, and not among the most guessable
(OWASP ASVS 6.2.4), as zxcvbn judges with the lists it ships; ``min_password_score = 0`` turns
that off. Never trimmed or truncated (DESIGN.md §4).
"""

from __future__ import annotations

import asyncio
import unicodedata

from corelogin.server.config import ServerConfig
from corelogin.wire import ApiError, Status

__all__ = ["check_new_password", "check_new_username"]

# zxcvbn refuses longer input (its cost grows with the length); a password this long is not
# among the common ones.
_ZXCVBN_MAX_CHARS = 72


def check_new_username(username: str) -> None:
    if username != username.strip() or any(
        unicodedata.category(c).startswith("C") for c in username
    ):
        raise ApiError(
            Status.USER_NOT_CREATED,
            "username must not have control characters or spaces at either end",
        )


async def check_new_password(
    password: str, config: ServerConfig, *, inputs: tuple[str | None, ...] = ()
) -> None:
    """Raise 601 with the reason. ``inputs``: the user's own name and address, which make a
    password as guessable as a common one."""
    if len(password) < config.min_password_length:
        raise ApiError(
            Status.USER_NOT_CREATED,
            f"password must be at least {config.min_password_length} characters",
        )
    if config.min_password_score <= 0 or len(password) > _ZXCVBN_MAX_CHARS:
        return
    given = [text for text in inputs if text]
    score, warning = await asyncio.to_thread(_strength, password, given)
    if score < config.min_password_score:
        why = f" ({warning.rstrip('.')})" if warning else ""
        raise ApiError(
            Status.USER_NOT_CREATED,
            f"password is too easy to guess{why}: choose a longer or less common one",
        )


def _strength(password: str, inputs: list[str]) -> tuple[int, str]:
    from zxcvbn import zxcvbn  # imported on first use: its lists take a moment to load

    result = zxcvbn(password, user_inputs=inputs)
    return int(result["score"]), str(result["feedback"].get("warning") or "")
