"""Secrets never reach the server's log, at any level (DESIGN.md §4; issue 7, item 1).

aiohttp's HTTP parser puts the raw request bytes into the errors it raises, and the server logs
those errors with their traceback; aiosqlite logs every statement with its parameters at DEBUG.
These tests send malformed requests and valid calls carrying known secrets to a real server,
with every logger at DEBUG, and look for the secrets in every record, formatted every way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.http_exceptions
import aiohttp.http_parser
import aiohttp.web_protocol
import pytest

from corelogin.server import ServerConfig, start_server
from corelogin.server.logsafety import LOGGER_NAMES, install, scrub_filter
from corelogin.server.tokens import hash_token

# Distinctive values, so that a match in the log can only be a leak.
APP_KEY = "appkey-5f1c9e2b7a04"
PASSWORD = "pw-8d3e61c0fa92-horse"
WRONG_PASSWORD = "pw-wrong-2b9c47e1d533"
BEARER = "tok-6a0f3d9b8217"
SCOPE = "logsafety"
USERNAME = "Donna"

EVERY_LOGGER = (
    "",
    "aiohttp",
    *LOGGER_NAMES,
    "aiohttp.client",
    "asyncio",
    "aiosqlite",
    "corelogin",
)

# How long to wait for an answer the server may never give (some malformed bodies leave it
# waiting for more); the exchanges run concurrently, so this is paid about once.
ANSWER_TIMEOUT = 3.0


def _body(password: str = PASSWORD) -> bytes:
    return json.dumps({"scope": SCOPE, "username": USERNAME, "password": password}).encode()


BODY = _body()


def _head(
    line: bytes = b"POST /v1/users/login HTTP/1.1",
    *,
    key: bytes = APP_KEY.encode(),
    extra: bytes = b"",
) -> bytes:
    return (
        line
        + b"\r\nHost: localhost\r\nX-Corelogin-Key: "
        + key
        + b"\r\nAuthorization: Bearer "
        + BEARER.encode()
        + b"\r\nContent-Type: application/json\r\n"
        + extra
    )


def _request(
    line: bytes = b"POST /v1/users/login HTTP/1.1",
    *,
    key: bytes = APP_KEY.encode(),
    extra: bytes = b"",
    body: bytes = BODY,
) -> bytes:
    return _head(line, key=key, extra=extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _chunked(body: bytes) -> bytes:
    return _head(extra=b"Transfer-Encoding: chunked\r\n\r\n") + body


PAD = b"A" * 9000  # over aiohttp's 8190-byte limit for a line or a header

# name -> the writes of one connection; each one carries the app key, the password or the
# bearer token, most of them all three.
MALFORMED: dict[str, list[bytes]] = {
    "control character in the app key header": [_request(key=APP_KEY.encode() + b"\x01")],
    "control character after the bearer token": [
        _request(extra=b"X-Token: Bearer " + BEARER.encode() + b"\x01\r\n")
    ],
    "control character in a header name": [
        _request(extra=b"X-Pass\x01word: " + PASSWORD.encode() + b"\r\n")
    ],
    "app key header over 8 KB": [_request(key=APP_KEY.encode() + PAD)],
    "password header over 8 KB": [_request(extra=b"X-Pad: " + PASSWORD.encode() + PAD + b"\r\n")],
    "request line over 8 KB": [
        _request(b"POST /v1/users/login?token=" + BEARER.encode() + b"&pad=" + PAD + b" HTTP/1.1")
    ],
    "malformed request line, then a body": [_request(b"POST /v1/users/login HTTP/1.1 junk")],
    "malformed request line carrying the token": [
        _request(b"POST /v1/users/login?token=" + BEARER.encode() + b" HTTP/9.Z")
    ],
    "NUL in the request target": [
        _request(b"GET /v1/users/login?token=" + BEARER.encode() + b"\x00 HTTP/1.1")
    ],
    "invalid method, first request": [_request(b"P@ST /v1/users/login HTTP/1.1")],
    "invalid method after a good request": [
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
        + _request(b"P@ST /v1/users/login HTTP/1.1")
    ],
    "body longer than Content-Length, read as the next request": [
        _head() + b"Content-Length: 2\r\n\r\n{}" + BODY + b"\r\n\r\n"
    ],
    "bad chunk size": [_chunked(b"zz\r\n" + BODY + b"\r\n0\r\n\r\n")],
    "bad chunk after a good one": [
        _chunked(b'5\r\n{"sco\r\n'),
        b"zz" + BODY + b"\r\n0\r\n\r\n",
    ],
    "chunk size over the body": [_chunked(b"fffffffffffffffffff\r\n" + BODY + b"\r\n0\r\n\r\n")],
    "Content-Length and Transfer-Encoding": [
        _request(extra=b"Transfer-Encoding: chunked\r\n", body=b"5\r\nabcde\r\n0\r\n\r\n" + BODY)
    ],
    "invalid Content-Length": [
        _head(extra=b"X-Secret: " + PASSWORD.encode() + b"\r\n")
        + b"Content-Length: 1"
        + PASSWORD.encode()
        + b"\r\n\r\n"
        + BODY
    ],
    "obsolete header folding": [
        _request(extra=b"X-Fold: start\r\n " + PASSWORD.encode() + b"\r\n")
    ],
    "bare LF in headers": [
        b"POST /v1/users/login HTTP/1.1\nX-Corelogin-Key: " + APP_KEY.encode() + b"\r\n\r\n" + BODY
    ],
    "non-HTTP bytes": [
        b"\x16\x03\x01\x02\x00" + APP_KEY.encode() + PASSWORD.encode() + b"\r\n\r\n"
    ],
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "corelogin.sqlite3"


@pytest.fixture
def server_config(db_path: Path) -> ServerConfig:
    return ServerConfig(app_key=APP_KEY, db=f"sqlite:///{db_path}", port=0)


@pytest.fixture(params=["c", "python"])
def http_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """aiohttp's C parser (the default) and its pure-Python one (no extensions, PyPy): their
    errors quote the raw bytes differently."""
    if request.param == "c":
        parser = getattr(aiohttp.http_parser, "HttpRequestParserC", None)
        if parser is None:
            pytest.skip("aiohttp's C parser is not available")
    else:
        parser = aiohttp.http_parser.HttpRequestParserPy
    monkeypatch.setattr(aiohttp.web_protocol, "HttpRequestParser", parser)
    return str(request.param)


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in EVERY_LOGGER:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def exchange(url: str, *writes: bytes) -> bytes:
    """Write raw bytes on one connection and read until the server closes it (or gives up)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = b""
    try:
        for data in writes:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.05)
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while chunk := await reader.read(65536):
                answer += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answer


async def call(url: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A well-formed call, sent as raw bytes (no client library logging on the way)."""
    data = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"X-Corelogin-Key: {APP_KEY}\r\nAuthorization: Bearer {BEARER}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    answer = await exchange(url, request)
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


def texts(record: logging.LogRecord) -> Iterator[str]:
    """Everything a handler could print for a record."""
    yield record.getMessage()
    yield str(record.msg)
    yield repr(record.args)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    yield formatter.format(record)  # the message, the traceback and the stack
    if record.exc_info and record.exc_info[1] is not None:
        yield formatter.formatException(record.exc_info)
        yield repr(record.exc_info[1])
    yield record.exc_text or ""
    yield record.stack_info or ""


def leaks(records: list[logging.LogRecord], secrets: dict[str, str]) -> list[str]:
    """One line per leaking record and secret: where it is, and the record's message."""
    found = []
    for record in records:
        every_text = "\n".join(texts(record))
        for what, secret in secrets.items():
            if secret in every_text:
                found.append(
                    f"{what} in {record.name} {record.levelname} {record.getMessage()!r:.200}"
                )
    return found


def password_hash_parts(db_path: Path) -> dict[str, str]:
    """The stored argon2 hash: the whole PHC string, its salt and its digest."""
    with sqlite3.connect(db_path) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users").fetchone()
    conn.close()
    salt, digest = stored.rsplit("$", 2)[-2:]
    return {"password hash": stored, "password hash salt": salt, "password hash digest": digest}


async def test_no_secret_in_any_log_record(
    server_config: ServerConfig,
    db_path: Path,
    http_parser: str,
    debug_everywhere: pytest.LogCaptureFixture,
) -> None:
    caplog = debug_everywhere
    async with await start_server(server_config) as server:
        status, created = await call(
            server.url,
            "/v1/users/create",
            {"scope": SCOPE, "username": USERNAME, "password": PASSWORD},
        )
        assert status == 200, created
        status, logged_in = await call(
            server.url,
            "/v1/users/login",
            {"scope": SCOPE, "username": USERNAME, "password": PASSWORD},
        )
        assert status == 200, logged_in
        token = logged_in["session"]["token"]
        status, refused = await call(
            server.url,
            "/v1/users/login",
            {"scope": SCOPE, "username": USERNAME, "password": WRONG_PASSWORD},
        )
        assert status != 200, refused

        answers = await asyncio.gather(*(exchange(server.url, *w) for w in MALFORMED.values()))
    # The server is stopped: aiosqlite's worker thread has logged its last statement.

    assert any(a.startswith(b"HTTP/1.") and b" 400 " in a[:20] for a in answers)
    secrets = {
        "app key": APP_KEY,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "bearer token": BEARER,
        "session token": token,
        "session token hash": hash_token(token),
        **password_hash_parts(db_path),
    }
    records = list(caplog.records)
    found = leaks(records, secrets)
    assert not found, f"{len(found)} leaks:\n" + "\n".join(found)

    # The records are still there, only cleaned: parser errors by their class, statements by
    # their SQL text.
    rejected = [
        r for r in records if r.name == "aiohttp.server" and "HTTP parser" in r.getMessage()
    ]
    assert rejected, [r.getMessage() for r in records if r.name == "aiohttp.server"]
    assert all(r.exc_info is None and r.exc_text is None for r in rejected)
    statements = [r.getMessage() for r in records if r.name == "aiosqlite"]
    assert any("INSERT INTO sessions" in s for s in statements), statements[:20]


async def test_install_is_idempotent(server_config: ServerConfig) -> None:
    install()
    async with await start_server(server_config), await start_server(server_config):
        pass
    for name in LOGGER_NAMES:
        assert logging.getLogger(name).filters.count(scrub_filter) == 1, name
    # The client's logger is left alone.
    assert scrub_filter not in logging.getLogger("aiohttp.client").filters


def _record(
    name: str, msg: str, *args: object, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = None if exc is None else (type(exc), exc, exc.__traceback__)
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_sqlite_statements_keep_their_text_and_lose_their_parameters() -> None:
    def execute(sql: str, parameters: object) -> None: ...

    record = _record(
        "aiosqlite", "executing %s", functools.partial(execute, "SELECT ? = ?", (PASSWORD, BEARER))
    )
    assert scrub_filter.filter(record)
    message = record.getMessage()
    assert "SELECT ? = ?" in message
    assert PASSWORD not in message
    assert BEARER not in repr(record.args)


def test_parser_errors_in_other_records_are_summarised() -> None:
    cause = aiohttp.http_exceptions.BadHttpMessage(f"Invalid header value char: {PASSWORD}")
    try:
        raise aiohttp.web_protocol.RequestPayloadError(f"payload {PASSWORD}") from cause
    except aiohttp.web_protocol.RequestPayloadError as exc:
        record = _record("corelogin.server", "unexpected error: %s", exc, exc=exc)
    assert scrub_filter.filter(record)
    assert leaks([record], {"password": PASSWORD}) == []
    assert "RequestPayloadError" in record.getMessage()
    assert "BadHttpMessage" in record.getMessage()


def test_other_records_are_untouched() -> None:
    exc = ValueError("a bug")
    record = _record("corelogin.server", "unexpected error in %s", "/v1/users/login", exc=exc)
    assert scrub_filter.filter(record)
    assert record.getMessage() == "unexpected error in /v1/users/login"
    assert record.exc_info is not None
    assert record.exc_info[1] is exc
