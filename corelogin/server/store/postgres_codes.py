"""The PostgreSQL store's one-time codes (the links in mail, one-time login tokens), each used
at most once however many instances try at the same time."""

from __future__ import annotations

import json
from typing import Any

from corelogin.server.store.base import CodeRecord, CodeState, UserRecord
from corelogin.server.store.postgres_base import Conn, PostgresBase
from corelogin.server.store.rows import USER_COLUMNS, code_state, user_from_row

__all__ = ["PostgresCodes"]


class PostgresCodes(PostgresBase):
    """Codes of confirmation and reset links, and one-time login tokens."""

    async def set_confirmation(self, user_id: str, state: str) -> None:
        await self._execute(
            "UPDATE users SET confirmation = $1 WHERE user_id = $2 AND confirmation IS NOT NULL",
            state,
            user_id,
        )

    async def _insert_code(self, conn: Conn, code: CodeRecord) -> None:
        await conn.execute(
            "INSERT INTO codes (code_hash, user_id, purpose, created, expires, counted, mail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            code.code_hash,
            code.user_id,
            code.purpose,
            code.created,
            code.expires,
            code.counted,
            None if code.mail is None else json.dumps(code.mail),
        )

    async def replace_code(self, code: CodeRecord, *, min_interval: float = 0) -> bool:
        async with self._transaction() as conn:
            # The user's row lock makes concurrent replacements (and their interval) take turns.
            await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", code.user_id)
            if code.counted:
                last = await conn.fetchval(
                    "SELECT max(created) FROM codes WHERE user_id = $1 AND purpose = $2 "
                    "AND counted",
                    code.user_id,
                    code.purpose,
                )
                if last is not None and code.created - last < min_interval:
                    return False
            await conn.execute(
                "DELETE FROM codes WHERE user_id = $1 AND purpose = $2", code.user_id, code.purpose
            )
            await self._insert_code(conn, code)
            return True

    async def confirmation_settings(self, user_id: str) -> dict[str, Any] | None:
        mail = await self._fetchval(
            "SELECT mail FROM codes WHERE user_id = $1 AND purpose = 'confirm' "
            "ORDER BY created DESC LIMIT 1",
            user_id,
        )
        return None if mail is None else dict(json.loads(mail))

    async def code_user(self, code_hash: str) -> UserRecord | None:
        row = await self._fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE user_id = "  # noqa: S608
            "(SELECT user_id FROM codes WHERE code_hash = $1)",
            code_hash,
        )
        return None if row is None else user_from_row(row)

    async def peek_code(self, code_hash: str, purpose: str, now: float) -> CodeState:
        row = await self._fetchrow(
            "SELECT used, expires FROM codes WHERE code_hash = $1 AND purpose = $2",
            code_hash,
            purpose,
        )
        return code_state(row, now)

    async def use_code(
        self, code_hash: str, purpose: str, now: float, *, password_hash: str | None = None
    ) -> CodeState:
        async with self._transaction() as conn:
            # The user's row first, as the other writes of a user's codes lock it first
            # (update_user, replace_code, delete_user): in the other order, two of them could
            # each hold what the other waits for, and one would fail as a deadlock.
            await conn.execute(
                "SELECT 1 FROM users WHERE user_id = "
                "(SELECT user_id FROM codes WHERE code_hash = $1) FOR UPDATE",
                code_hash,
            )
            # One UPDATE decides: of concurrent uses, one finds the code unused and marks it.
            user_id = await conn.fetchval(
                "UPDATE codes SET used = $3 WHERE code_hash = $1 AND purpose = $2 "
                "AND used IS NULL AND expires > $3 RETURNING user_id",
                code_hash,
                purpose,
                now,
            )
            if user_id is None:
                row = await conn.fetchrow(
                    "SELECT used, expires FROM codes WHERE code_hash = $1 AND purpose = $2",
                    code_hash,
                    purpose,
                )
                return code_state(row, now)
            if purpose == "confirm":
                await conn.execute(
                    "UPDATE users SET active = TRUE, confirmation = NULL WHERE user_id = $1",
                    user_id,
                )
            elif password_hash is not None:
                await conn.execute(
                    "UPDATE users SET password_hash = $1 WHERE user_id = $2",
                    password_hash,
                    user_id,
                )
                await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
            return CodeState.VALID
