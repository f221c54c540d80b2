"""Keeping secrets out of the server's log, at every level (DESIGN.md §4).

Two libraries under the server log what a request or a statement carried:

- aiohttp's HTTP parser puts the raw request bytes (headers with the app key or a bearer token, a
  body with a password) into the errors it raises (`HttpProcessingError`: ``BadHttpMessage``,
  ``LineTooLong``, ``BadHttpMethod`` ...; and ``RequestPayloadError`` when a body goes bad while a
  handler reads it). The server logs those errors, message and traceback, at ERROR (DEBUG for a
  bad method).
- aiosqlite logs every call at DEBUG with the statement's parameters: password hashes, session
  token hashes.

`install` puts one `logging.Filter` on the loggers that emit those records (`LOGGER_NAMES`: the
server's aiohttp loggers, aiosqlite, and the server's own logger). A filter on a logger runs when
the record is made, before any handler (and so any formatter) sees it, and whichever handlers the
application configures. The rules do not try to recognise secrets:

- a record that carries a parser error (as its exception, in the exception's chain, or among its
  arguments) keeps the logger's own message and level, but loses its traceback; the error is
  named by its class and HTTP status only ("... [HTTP parser rejected the request: BadHttpMessage,
  HTTP 400; request bytes not logged]"). Other records of these loggers are left as they are.
- an aiosqlite record keeps the SQL text of a statement and drops its parameters, and names any
  other argument by its type; an exception is named by its class (and sqlite's own message, which
  names tables and columns, never values).

Installing is idempotent and touches only the loggers named here: nothing else in the process,
the client's ``aiohttp.client`` logger included, is affected.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

__all__ = ["LOGGER_NAMES", "ScrubFilter", "install", "scrub_filter"]

# The loggers the filter goes on. A filter on a logger sees only the records made by that very
# logger (not its children's), so each emitting logger is named.
AIOHTTP_LOGGERS: Final = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")
SQLITE_LOGGERS: Final = ("aiosqlite",)
SERVER_LOGGERS: Final = ("corelogin.server",)
LOGGER_NAMES: Final = AIOHTTP_LOGGERS + SQLITE_LOGGERS + SERVER_LOGGERS

# Exceptions whose text is made of request bytes.
PARSER_ERRORS: Final = (HttpProcessingError, RequestPayloadError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:  # contexts can loop
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def _args(record: logging.LogRecord) -> list[object]:
    args = record.args
    if isinstance(args, Mapping):
        return list(args.values())
    return list(args or ())


def _exceptions(record: logging.LogRecord) -> list[BaseException]:
    """Every exception a record carries (exc_info, message, arguments), each once, with its
    causes and contexts."""
    roots = [record.exc_info[1] if record.exc_info else None, record.msg, *_args(record)]
    found: dict[int, BaseException] = {}
    for root in roots:
        if isinstance(root, BaseException):
            for exc in _chain(root):
                found.setdefault(id(exc), exc)
    return list(found.values())


def _map_args(record: logging.LogRecord, change: Callable[[object], object]) -> None:
    args = record.args
    if isinstance(args, Mapping):
        record.args = {key: change(value) for key, value in args.items()}
    elif args:
        record.args = tuple(change(arg) for arg in args)


def _finish(record: logging.LogRecord, msg: str, note: str) -> None:
    """Set the message to ``msg [note]`` and drop the traceback (and its cached text)."""
    if record.args:
        note = note.replace("%", "%%")  # msg is a %-format for the arguments
    record.msg = f"{msg} [{note}]"
    record.exc_info = None
    record.exc_text = None


def _scrub_parser_error(record: logging.LogRecord, exceptions: list[BaseException]) -> None:
    names = " from ".join(type(e).__name__ for e in exceptions)
    codes = sorted({e.code for e in exceptions if isinstance(e, HttpProcessingError) and e.code})
    status = "".join(f", HTTP {code}" for code in codes)
    # The errors' own text, should it have been put into an argument or the message.
    texts = {
        text
        for e in exceptions
        for text in (str(e), repr(e), getattr(e, "message", ""))
        if isinstance(text, str) and text.strip()
    }

    def safe(arg: object) -> object:
        if isinstance(arg, BaseException):
            return type(arg).__name__
        if isinstance(arg, bytes | bytearray | memoryview):
            return f"<{len(arg)} bytes>"
        if isinstance(arg, str) and any(text in arg for text in texts):
            return "<request bytes>"
        return arg

    _map_args(record, safe)
    msg = record.msg if isinstance(record.msg, str) else str(record.msg)
    if isinstance(record.msg, BaseException) or any(text in msg for text in texts):
        msg, record.args = "request rejected", ()
    note = f"HTTP parser rejected the request: {names}{status}; request bytes not logged"
    _finish(record, msg, note)


def _describe_db_exception(exc: BaseException) -> str:
    # sqlite's own messages name tables, columns and constraints, never bound values.
    if isinstance(exc, sqlite3.Error):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _describe_db_arg(arg: object) -> str:
    if isinstance(arg, functools.partial):
        name = getattr(arg.func, "__name__", type(arg.func).__name__)
        parts = []
        if arg.args and isinstance(arg.args[0], str):
            parts.append(repr(arg.args[0]))  # the SQL text; values go as parameters
        values = [a for a in arg.args[len(parts) :] if not (isinstance(a, tuple | list) and not a)]
        if values or arg.keywords:
            parts.append("<parameters not logged>")
        return f"{name}({', '.join(parts)})"
    if isinstance(arg, BaseException):
        return _describe_db_exception(arg)
    if callable(arg):
        return str(getattr(arg, "__qualname__", type(arg).__name__))
    return f"<{type(arg).__name__}>"


def _scrub_sqlite(record: logging.LogRecord) -> None:
    _map_args(record, _describe_db_arg)
    if not isinstance(record.msg, str):
        record.msg, record.args = _describe_db_arg(record.msg), ()
    if record.exc_info and record.exc_info[1] is not None:
        _finish(record, record.msg, _describe_db_exception(record.exc_info[1]))
    record.exc_info = None
    record.exc_text = None


class ScrubFilter(logging.Filter):
    """Cleans records in place (see the module's documentation); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.name in SQLITE_LOGGERS:
                _scrub_sqlite(record)
            else:
                exceptions = _exceptions(record)
                if any(isinstance(e, PARSER_ERRORS) for e in exceptions):
                    _scrub_parser_error(record, exceptions)
        except Exception:
            # A record that cannot be cleaned is not logged as it is.
            record.msg, record.args = "log record withheld: it could not be cleaned of secrets", ()
            record.exc_info = record.exc_text = None
        return True


scrub_filter: Final = ScrubFilter()


def install() -> None:
    """Put `scrub_filter` on the loggers of `LOGGER_NAMES` (once, however often called)."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if scrub_filter not in logger.filters:
            logger.addFilter(scrub_filter)
