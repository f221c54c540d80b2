"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1, on a port the OS picks).

``with MailServer() as mail: ...`` or the `mail_server` fixture. It keeps what it receives,
can refuse messages (550) and can require AUTH (PLAIN/LOGIN, without TLS: for tests only).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Awaitable, Iterator
from email.message import EmailMessage
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from corelogin.server.config import ServerConfig
from corelogin.server.mail import Mailer, message
from corelogin.server.mailtemplates import check_template, render

__all__ = ["MailServer", "Received", "link_in", "mail_server"]

REFUSAL = "550 5.7.1 refused by the test mail server"


@attrs.frozen
class Received:
    """One message as the server got it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    # The user name the client logged in with (None: no AUTH).
    login: str | None = None


class _Controller(Controller):
    """aiosmtpd's Controller on a socket bound before the server starts: the OS picks the port
    and nothing else can take it between picking and listening."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class MailServer:
    """An SMTP server on 127.0.0.1; thread-safe, as it runs on a thread of its own.

    ``auth=(user, password)`` makes it require AUTH before MAIL (plain text, no TLS).
    """

    def __init__(self, *, auth: tuple[str, str] | None = None, ready_timeout: float = 10.0):
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self._refuse: int | None = 0  # messages still to refuse; None: all
        self._reply = REFUSAL
        self.auth = auth
        self.auth_failures = 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        # AUTH is offered without TLS and required by handle_MAIL (aiosmtpd's own
        # auth_required would warn, from the server's thread, at every connection).
        self._controller = _Controller(
            self,
            sock,
            ready_timeout=ready_timeout,
            server_hostname="mail.test",  # else aiosmtpd asks DNS for this host's name
            auth_require_tls=False,
            authenticator=self._authenticate if auth is not None else None,
        )
        self._sock = sock

    @property
    def url(self) -> str:
        """For ``ServerConfig(smtp_url=...)``."""
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> MailServer:
        try:
            self._controller.start()
        except BaseException:
            self._sock.close()
            raise
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # What arrived.

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [item.message for item in self.received]

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until ``count`` messages have arrived; the first ``count``. For threads and
        synchronous tests: it blocks the calling thread (use `wait_for_async` in a loop that
        also runs the sender)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(
                    f"expected {count} mail(s) within {timeout}s, got {len(self._received)}"
                )
            return [item.message for item in self._received[:count]]

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 (the same arguments as wait_for)
    ) -> list[EmailMessage]:
        """`wait_for` without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if len(self._received) >= count:
                    return [item.message for item in self._received[:count]]
                got = len(self._received)
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} mail(s) within {timeout}s, got {got}")
            await asyncio.sleep(0.01)

    # Faults.

    def refuse(self, count: int | None = None, reply: str = REFUSAL) -> None:
        """Answer the next ``count`` messages (None: all, until `accept`) with ``reply``
        (a 550 unless told) at the end of DATA."""
        with self._cond:
            self._refuse = count
            self._reply = reply

    def accept(self) -> None:
        """Stop refusing."""
        self.refuse(0)

    def _take_refusal(self) -> str | None:
        with self._cond:
            if self._refuse is None:
                return self._reply
            if self._refuse > 0:
                self._refuse -= 1
                return self._reply
            return None

    # aiosmtpd's handler hooks (run on the server's thread).

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        ok = isinstance(data, LoginPassword) and (
            data.login.decode(),
            data.password.decode(),
        ) == (self.auth[0], self.auth[1])
        if not ok:
            with self._cond:
                self.auth_failures += 1
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self._take_refusal()
        if refusal is not None:
            return refusal
        raw = envelope.original_content or envelope.content or b""
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        auth_data: object = session.auth_data  # typed None by aiosmtpd, set at AUTH
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        item = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=parsed,
            login=login,
        )
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()
        return "250 2.0.0 OK"


def text_of(msg: EmailMessage) -> str:
    """The message's text: the plain part (else the html part), with ``\n`` line ends (a
    message off the wire has CRLF)."""
    part = msg.get_body(preferencelist=("plain", "html"))
    assert part is not None, "the message has no text body"
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def link_in(msg: EmailMessage, path: str) -> str:
    """The first ``http(s)://...{path}?code=...`` link in the message's text."""
    pattern = rf"https?://[^\s<>\"']*?{re.escape(path)}\?code=[^\s<>\"']+"
    found = re.search(pattern, text_of(msg))
    assert found, f"no link to {path}?code=... in the mail"
    return found.group(0)


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A running `MailServer` (no AUTH); its `url` goes into ``ServerConfig.smtp_url``."""
    with MailServer() as server:
        yield server


# --- For the tests of corelogin.server.mail and mailtemplates ---------------------------

LINK = "http://127.0.0.1:10001/v1/users/confirm?code=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
SENDER = "Corelogin <noreply@game.example>"
TO = "donna@example.org"


def config(**fields: Any) -> ServerConfig:
    return ServerConfig(app_key="test-app-key", **fields)


async def send_confirmation(
    mailer: Mailer,
    templates_dir: str | None,
    name: str | None,
    keys: dict[str, object] | None = None,
) -> None:
    """What the server does for create with an email: check first, then render and send."""
    check_template(templates_dir, name, "confirm_link", keys)
    body = render(templates_dir, name, "confirm_link", LINK, keys)
    await mailer.send(message(sender=SENDER, to=TO, subject="Confirm", body=body))


def smtp_mailer(server: MailServer, **fields: object) -> Mailer:
    mailer = Mailer.from_config(config(smtp_url=server.url, smtp_timeout=5.0, **fields))
    assert mailer is not None
    return mailer
