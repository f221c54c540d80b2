"""``corelogin migrate``: copy a SQLite database into PostgreSQL, whole or not at all.

Every table of `postgres_schema.TABLES` (users, login events, sessions as hashes, mailed codes,
provider links, failed logins, lockouts, and the admin page's operators, their sessions and the
audit log) is copied as it is, so that users log in with their passwords, saved sessions stay
valid, lockouts go on where they were and operators keep their names, passwords and history.
Why it works the way it does:

- The source is first opened with `SQLiteStore`, which brings an older schema up to date (the
  step ``corelogin serve`` would take on it), so the copy always reads the current tables. A
  file that is missing, or that corelogin never set up (schema version 0), is refused before
  anything writes to it: a typo must not create or alter a database.
- The source is read in one read transaction (one WAL snapshot), so a server still writing to
  it cannot produce a torn copy; what it writes after the snapshot is not copied (stop it for
  the final move).
- The target is opened with `PostgresStore`, which creates its schema if missing; the copy then
  runs in ONE transaction on it, which first locks every table against writers. A target that
  holds rows is refused (nothing changed) unless ``replace``, which deletes them first. Any
  failure (a row the target's constraints refuse, a count that differs) rolls it all back.
- ``login_events.id``, ``failed_logins.id`` and ``audit_log.id`` are copied as they are
  (``lockouts.counted_after`` refers to failed_logins ids, and the audit log is read in id
  order), then their sequences are moved past the highest id the source ever gave (SQLite's
  AUTOINCREMENT counter included), so new rows neither collide nor reuse an id. Sessions are
  copied in rowid order, so the identity PostgreSQL gives them keeps the order the session
  limit evicts by.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import aiosqlite
import asyncpg
import attrs

from corelogin.server.store import is_postgres
from corelogin.server.store.base import StoreError
from corelogin.server.store.postgres_base import Conn
from corelogin.server.store.postgres_schema import TABLES

__all__ = ["Migration", "MigrationError", "TargetNotEmpty", "migrate", "source_path"]

log = logging.getLogger("corelogin.server")

# Seconds one statement on the target may take: a copy of millions of rows takes minutes, far
# more than the store's budget for a request.
STATEMENT_TIMEOUT: Final = 3600.0
# Rows read from SQLite at a time while they stream into COPY.
BATCH: Final = 1000
# Target column types whose values need converting from what SQLite gives.
_CONVERT: Final[Mapping[str, Callable[[Any], Any]]] = {
    "boolean": bool,  # SQLite's 0/1
    "double precision": float,  # a REAL column may give back an int
}


class MigrationError(Exception):
    """The copy was refused or failed: one line for the operator, which says what became of
    the target (as it was, but for a commit cut off on its way)."""


class TargetNotEmpty(MigrationError):
    """The target already holds rows, and ``replace`` was not asked for."""

    def __init__(self, users: int, rows: Mapping[str, int]) -> None:
        self.users = users
        self.rows = dict(rows)
        if users:
            message = f"the target already holds {users} users; --replace deletes them first"
        else:
            held = ", ".join(f"{table} {count}" for table, count in rows.items() if count)
            message = f"the target already holds rows ({held}); --replace deletes them first"
        super().__init__(message)


@attrs.frozen
class Migration:
    """What a migration copied: the rows of each table (verified on the target), and how many
    users the target held before (deleted by ``replace``)."""

    counts: Mapping[str, int]
    replaced_users: int = 0

    def summary(self) -> str:
        """Lines for the operator: one per table, with its count."""
        lines = ["copied and verified (rows per table, equal in source and target):"]
        width = max(map(len, self.counts))
        lines += [f"  {table:<{width}}  {count}" for table, count in self.counts.items()]
        if self.replaced_users:
            lines.append(f"replaced the {self.replaced_users} users the target held")
        return "\n".join(lines) + "\n"


def source_path(url: str) -> str:
    """The file of a SQLite URL (``sqlite:///PATH``, or a plain path); `ValueError` for any
    other URL, an in-memory database, or a file that does not exist."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"--from must be a SQLite database (sqlite:///PATH), not {scheme}://...")
    else:
        path = url
    if not path or path == ":memory:":
        raise ValueError("--from must name a SQLite file (sqlite:///PATH)")
    if not Path(path).is_file():
        raise ValueError(f"--from: no SQLite database at {path}")
    return path


def check_target(url: str) -> None:
    """`ValueError` unless ``url`` is a PostgreSQL URL."""
    if not is_postgres(url):
        raise ValueError("--to must be a PostgreSQL database (postgresql://USER@HOST/DB)")


async def migrate(source: str, target: str, *, replace: bool = False) -> Migration:
    """Copy the SQLite database ``source`` into the PostgreSQL database ``target`` (both URLs).

    Raises `ValueError` for unusable URLs or a missing source, `StoreError` when a database
    cannot be opened, and `MigrationError` (`TargetNotEmpty` among them) when the copy is
    refused or fails. The target's rows are then as they were, unless the connection was lost
    during the commit itself (the message says so).
    """
    from corelogin.server.store.postgres import PostgresStore
    from corelogin.server.store.sqlite import SQLiteStore

    path = source_path(source)
    check_target(target)
    await _check_corelogin_database(path)
    postgres = PostgresStore(target, pool_min=1, pool_max=1)
    await postgres.open()  # StoreError with one line when it cannot
    try:
        sqlite = SQLiteStore(path)
        await sqlite.open()
        try:
            async with postgres.pool.acquire() as conn:
                done = await _copy(sqlite.conn, conn, replace=replace)
        finally:
            await sqlite.close()
    finally:
        await postgres.close()
    log.info("migrate: copied %s", ", ".join(f"{t} {n}" for t, n in done.counts.items()))
    return done


async def _check_corelogin_database(path: str) -> None:
    """Refuse a file corelogin never set up, reading it read-only: opening it with
    `SQLiteStore` would create the tables in it."""
    uri = _read_only_uri(path)
    try:
        async with (
            aiosqlite.connect(uri, uri=True) as db,
            db.execute("PRAGMA user_version") as cur,
        ):
            row = await cur.fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the SQLite database {path}: {exc}") from None
    if row is None or row[0] == 0:
        raise ValueError(f"--from: {path} is not a corelogin database (no schema version)")


def _read_only_uri(path: str) -> str:
    return Path(path).resolve().as_uri() + "?mode=ro"


async def _copy(source: aiosqlite.Connection, target: Conn, *, replace: bool) -> Migration:
    """The copy, in one transaction on ``target`` and one read transaction on ``source``.

    A failure before the commit rolls back (a lost connection rolls back on the server's side
    too); a commit that fails on the way leaves the outcome unknown, and says so.
    """
    transaction = target.transaction()
    try:
        await transaction.start()
        try:
            done = await _fill(source, target, replace=replace)
        except BaseException:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await transaction.rollback()
            raise
    except MigrationError:
        raise
    except _FAILURES as exc:
        raise MigrationError(f"the copy failed, nothing was changed: {_line(exc)}") from exc
    try:
        await transaction.commit()
    except _FAILURES as exc:
        raise MigrationError(
            f"the commit failed ({_line(exc)}): the target may or may not hold the copy; run "
            "the migration again (a complete copy is refused, a missing one is made)"
        ) from exc
    return done


# What the databases raise when a statement fails or the connection is lost.
_FAILURES: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error, OSError)


def _line(exc: BaseException) -> str:
    """The first line of an error's message (PostgreSQL's may add a DETAIL line)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def _fill(source: aiosqlite.Connection, target: Conn, *, replace: bool) -> Migration:
    """In the target's open transaction: lock, check or empty, copy, move the identities on,
    verify."""
    tables = ", ".join(TABLES)
    # Writers (a server already on the target) wait until the commit; readers do not.
    await target.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE", timeout=STATEMENT_TIMEOUT)
    held = await _counts(target)
    if any(held.values()) and not replace:
        raise TargetNotEmpty(held["users"], held)
    for table in reversed(TABLES):  # children first
        await target.execute(f"DELETE FROM {table}", timeout=STATEMENT_TIMEOUT)  # noqa: S608
    converters = await _converters(target)
    counts, highest = await _read_and_copy(source, target, converters)
    for table, high in highest.items():
        if high > 0:
            await target.execute("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)", table, high)
    copied = await _counts(target)
    for table, count in counts.items():
        if copied[table] != count:
            raise MigrationError(
                f"verification failed: {table} has {copied[table]} rows on the target "
                f"but {count} in the source; nothing was changed"
            )
    return Migration(counts=counts, replaced_users=held["users"])


async def _read_and_copy(
    source: aiosqlite.Connection,
    target: Conn,
    converters: Mapping[str, Mapping[int, Callable[[Any], Any]]],
) -> tuple[dict[str, int], dict[str, int]]:
    """Stream every table from one snapshot of ``source`` into ``target``: the source's count
    of each table, and the highest id each table with an ``id`` ever gave."""
    await source.execute("BEGIN")  # deferred: the snapshot starts with the first read
    try:
        counts = {}
        for table in TABLES:
            async with source.execute(f"SELECT count(*) FROM {table}") as cur:  # noqa: S608
                row = await cur.fetchone()
            counts[table] = int(row[0]) if row else 0
        highest = {table: await _highest_id(source, table) for table in TABLES if _has_id(table)}
        for table, columns in TABLES.items():
            try:
                await target.copy_records_to_table(
                    table,
                    records=_rows(source, table, columns, converters.get(table, {})),
                    columns=list(columns),
                    timeout=STATEMENT_TIMEOUT,
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, TypeError) as exc:
                raise MigrationError(
                    f"copying {table} failed, nothing was changed: {_line(exc)}"
                ) from exc
            log.info("migrate: copied %d rows of %s", counts[table], table)
    finally:
        await source.execute("ROLLBACK")  # it only read
    return counts, highest


def _has_id(table: str) -> bool:
    return "id" in TABLES[table]


async def _highest_id(source: aiosqlite.Connection, table: str) -> int:
    """The highest id ``table`` holds or (AUTOINCREMENT) ever gave."""
    async with source.execute(f"SELECT max(id) FROM {table}") as cur:  # noqa: S608
        row = await cur.fetchone()
    high = int(row[0]) if row and row[0] is not None else 0
    async with source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ) as cur:
        has_sequences = await cur.fetchone() is not None
    if has_sequences:
        async with source.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
        ) as cur:
            row = await cur.fetchone()
        if row and row[0] is not None:
            high = max(high, int(row[0]))
    return high


async def _rows(
    source: aiosqlite.Connection,
    table: str,
    columns: tuple[str, ...],
    converters: Mapping[int, Callable[[Any], Any]],
) -> AsyncIterator[tuple[Any, ...]]:
    """The rows of ``table`` in rowid order (the order sessions were opened in), converted
    for the target's column types."""
    sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"  # noqa: S608
    async with source.execute(sql) as cur:
        while batch := await cur.fetchmany(BATCH):
            for row in batch:
                if converters:
                    values = list(row)
                    for index, convert in converters.items():
                        if values[index] is not None:
                            values[index] = convert(values[index])
                    yield tuple(values)
                else:
                    yield tuple(row)


async def _counts(target: Conn) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        sql = f"SELECT count(*) FROM {table}"  # noqa: S608
        counts[table] = int(await target.fetchval(sql, timeout=STATEMENT_TIMEOUT))
    return counts


async def _converters(target: Conn) -> dict[str, dict[int, Callable[[Any], Any]]]:
    """For each table, the positions (in `TABLES`' columns) of the values to convert, as the
    target's catalog gives the column types (its schema is the first of the search path)."""
    rows = await target.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
        list(TABLES),
    )
    types = {(row["table_name"], row["column_name"]): row["data_type"] for row in rows}
    converters: dict[str, dict[int, Callable[[Any], Any]]] = {}
    for table, columns in TABLES.items():
        for index, column in enumerate(columns):
            convert = _CONVERT.get(types.get((table, column), ""))
            if convert is not None:
                converters.setdefault(table, {})[index] = convert
    return converters
