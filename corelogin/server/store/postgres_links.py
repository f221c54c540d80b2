"""The PostgreSQL store's links of users to OAuth providers."""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs

from corelogin.server.store.base import (
    DuplicateLinkError,
    DuplicateUserError,
    ProviderLink,
    UserRecord,
)
from corelogin.server.store.postgres_base import GET_USER_BY_ID, Conn, PostgresBase, lock_key
from corelogin.server.store.rows import LINK_COLUMNS, user_from_row

__all__ = ["PostgresLinks"]

_GET_LINK = f"SELECT {LINK_COLUMNS} FROM provider_links WHERE user_id = $1 AND provider = $2"  # noqa: S608
_FIND_LINK = (
    f"SELECT {LINK_COLUMNS} FROM provider_links "  # noqa: S608
    "WHERE scope = $1 AND provider = $2 AND client_id = $3"
)
# First logins of one identity take turns on this lock, wherever they run.
_IDENTITY_LOCK = "SELECT pg_advisory_xact_lock($1)"


class PostgresLinks(PostgresBase):
    """Links: an identity at a provider is linked once per scope (a unique index)."""

    async def add_link(self, link: ProviderLink) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_link(conn, link)
        except asyncpg.ForeignKeyViolationError:
            raise LookupError("the user does not exist") from None
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateLinkError(str(exc)) from None

    async def _insert_link(self, conn: Conn, link: ProviderLink) -> None:
        await conn.execute(
            f"INSERT INTO provider_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",  # noqa: S608
            *attrs.astuple(link),
        )

    async def get_link(self, user_id: str, provider: str) -> ProviderLink | None:
        row = await self._fetchrow(_GET_LINK, user_id, provider)
        return None if row is None else ProviderLink(*row)

    async def update_link(self, user_id: str, provider: str, **changes: Any) -> ProviderLink | None:
        try:
            async with self._transaction() as conn:
                row = await conn.fetchrow(_GET_LINK + " FOR UPDATE", user_id, provider)
                if row is None:
                    return None
                link = attrs.evolve(ProviderLink(*row), **changes)
                await conn.execute(
                    "UPDATE provider_links SET client_id = $1, access_token = $2, "
                    "access_token_expiry = $3 WHERE user_id = $4 AND provider = $5",
                    link.client_id,
                    link.access_token,
                    link.access_token_expiry,
                    user_id,
                    provider,
                )
                return link
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateLinkError(str(exc)) from None

    async def remove_link(self, user_id: str, provider: str) -> bool:
        status = await self._execute(
            "DELETE FROM provider_links WHERE user_id = $1 AND provider = $2", user_id, provider
        )
        return status != "DELETE 0"

    async def find_link(
        self, scope: str, provider: str, client_id: str
    ) -> tuple[UserRecord, ProviderLink] | None:
        async with self._connection() as conn:
            return await self._find_link(conn, scope, provider, client_id)

    async def _find_link(
        self, conn: Conn, scope: str, provider: str, client_id: str
    ) -> tuple[UserRecord, ProviderLink] | None:
        row = await conn.fetchrow(_FIND_LINK, scope, provider, client_id)
        if row is None:
            return None
        link = ProviderLink(*row)
        user = await conn.fetchrow(GET_USER_BY_ID, link.user_id)
        return None if user is None else (user_from_row(user), link)

    async def signup_with_link(
        self, user: UserRecord, link: ProviderLink
    ) -> tuple[UserRecord, ProviderLink]:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    _IDENTITY_LOCK, lock_key("link", link.scope, link.provider, link.client_id)
                )
                found = await self._find_link(conn, link.scope, link.provider, link.client_id)
                if found is not None:
                    return found
                await self._insert_user(conn, user)
                await self._insert_link(conn, link)
                return user, link
        except asyncpg.UniqueViolationError as exc:  # the username (or email) is taken
            raise DuplicateUserError(str(exc)) from None
