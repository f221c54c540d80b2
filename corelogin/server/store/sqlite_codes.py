"""The SQLite store's one-time codes (the links in mail), each used at most once."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from corelogin.server.store.base import CodeRecord, CodeState, UserRecord
from corelogin.server.store.rows import USER_COLUMNS, code_state, user_from_row
from corelogin.server.store.sqlite_base import SQLiteBase

__all__ = ["SQLiteCodes"]


class SQLiteCodes(SQLiteBase):
    """Codes of confirmation and reset links."""

    async def set_confirmation(self, user_id: str, state: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE users SET confirmation = ? WHERE user_id = ? AND confirmation IS NOT NULL",
                (state, user_id),
            )

    async def _insert_code(self, conn: aiosqlite.Connection, code: CodeRecord) -> None:
        await conn.execute(
            "INSERT INTO codes (code_hash, user_id, purpose, created, expires, counted, mail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                code.code_hash,
                code.user_id,
                code.purpose,
                code.created,
                code.expires,
                int(code.counted),
                None if code.mail is None else json.dumps(code.mail),
            ),
        )

    async def replace_code(self, code: CodeRecord, *, min_interval: float = 0) -> bool:
        async with self._transaction() as conn:
            if code.counted:
                row = await self._fetchone(
                    "SELECT max(created) FROM codes WHERE user_id = ? AND purpose = ? "
                    "AND counted = 1",
                    (code.user_id, code.purpose),
                )
                if row[0] is not None and code.created - row[0] < min_interval:
                    return False
            await conn.execute(
                "DELETE FROM codes WHERE user_id = ? AND purpose = ?", (code.user_id, code.purpose)
            )
            await self._insert_code(conn, code)
            return True

    async def confirmation_settings(self, user_id: str) -> dict[str, Any] | None:
        row = await self._fetchone(
            "SELECT mail FROM codes WHERE user_id = ? AND purpose = 'confirm' "
            "ORDER BY created DESC LIMIT 1",
            (user_id,),
        )
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    async def code_user(self, code_hash: str) -> UserRecord | None:
        row = await self._fetchone(
            f"SELECT {USER_COLUMNS} FROM users WHERE user_id = "  # noqa: S608
            "(SELECT user_id FROM codes WHERE code_hash = ?)",
            (code_hash,),
        )
        return None if row is None else user_from_row(row)

    async def peek_code(self, code_hash: str, purpose: str, now: float) -> CodeState:
        row = await self._fetchone(
            "SELECT used, expires FROM codes WHERE code_hash = ? AND purpose = ?",
            (code_hash, purpose),
        )
        return code_state(row, now)

    async def use_code(
        self, code_hash: str, purpose: str, now: float, *, password_hash: str | None = None
    ) -> CodeState:
        async with self._transaction() as conn:
            row = await self._fetchone(
                "SELECT used, expires, user_id FROM codes WHERE code_hash = ? AND purpose = ?",
                (code_hash, purpose),
            )
            state = code_state(row, now)
            if state is not CodeState.VALID:
                return state
            user_id = row[2]
            await conn.execute("UPDATE codes SET used = ? WHERE code_hash = ?", (now, code_hash))
            if purpose == "confirm":
                await conn.execute(
                    "UPDATE users SET active = 1, confirmation = NULL WHERE user_id = ?",
                    (user_id,),
                )
            elif password_hash is not None:
                await conn.execute(
                    "UPDATE users SET password_hash = ? WHERE user_id = ?",
                    (password_hash, user_id),
                )
                await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            return state
