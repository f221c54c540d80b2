"""The SQLite store's links of users to OAuth providers."""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
import attrs

from corelogin.server.store.base import (
    DuplicateLinkError,
    DuplicateUserError,
    ProviderLink,
    UserRecord,
)
from corelogin.server.store.rows import LINK_COLUMNS, user_from_row
from corelogin.server.store.sqlite_base import GET_USER_BY_ID, SQLiteBase

__all__ = ["SQLiteLinks"]


class SQLiteLinks(SQLiteBase):
    """Links: an identity at a provider is linked once per scope."""

    # -- provider links ----------------------------------------------------------------

    async def add_link(self, link: ProviderLink) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_link(conn, link)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise LookupError("the user does not exist") from None
            raise DuplicateLinkError(str(exc)) from None

    async def _insert_link(self, conn: aiosqlite.Connection, link: ProviderLink) -> None:
        await conn.execute(
            f"INSERT INTO provider_links ({LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            attrs.astuple(link),
        )

    async def get_link(self, user_id: str, provider: str) -> ProviderLink | None:
        row = await self._fetchone(
            f"SELECT {LINK_COLUMNS} FROM provider_links WHERE user_id = ? AND provider = ?",  # noqa: S608
            (user_id, provider),
        )
        return None if row is None else ProviderLink(*row)

    async def update_link(self, user_id: str, provider: str, **changes: Any) -> ProviderLink | None:
        try:
            async with self._transaction():
                link = await self.get_link(user_id, provider)
                if link is None:
                    return None
                link = attrs.evolve(link, **changes)
                await self.conn.execute(
                    "UPDATE provider_links SET client_id = ?, access_token = ?, "
                    "access_token_expiry = ? WHERE user_id = ? AND provider = ?",
                    (
                        link.client_id,
                        link.access_token,
                        link.access_token_expiry,
                        user_id,
                        provider,
                    ),
                )
                return link
        except sqlite3.IntegrityError as exc:
            raise DuplicateLinkError(str(exc)) from None

    async def remove_link(self, user_id: str, provider: str) -> bool:
        async with self._transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM provider_links WHERE user_id = ? AND provider = ?",
                (user_id, provider),
            )
            return cur.rowcount > 0

    async def find_link(
        self, scope: str, provider: str, client_id: str
    ) -> tuple[UserRecord, ProviderLink] | None:
        row = await self._fetchone(
            f"SELECT {LINK_COLUMNS} FROM provider_links "  # noqa: S608
            "WHERE scope = ? AND provider = ? AND client_id = ?",
            (scope, provider, client_id),
        )
        if row is None:
            return None
        link = ProviderLink(*row)
        user = await self._fetchone(GET_USER_BY_ID, (link.user_id,))
        return None if user is None else (user_from_row(user), link)

    async def signup_with_link(
        self, user: UserRecord, link: ProviderLink
    ) -> tuple[UserRecord, ProviderLink]:
        try:
            async with self._transaction() as conn:
                found = await self.find_link(link.scope, link.provider, link.client_id)
                if found is not None:
                    return found
                await self._insert_user(conn, user)
                await self._insert_link(conn, link)
                return user, link
        except sqlite3.IntegrityError as exc:  # the username (or email) is taken
            raise DuplicateUserError(str(exc)) from None
