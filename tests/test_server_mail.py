"""corelogin.server.mail: messages, and their delivery to a real SMTP server or an outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corelogin.server.mail import Mailer, MailError, OutboxTransport, SmtpTransport, message
from corelogin.server.mailtemplates import Body
from tests.mailserver import (
    LINK,
    SENDER,
    TO,
    MailServer,
    config,
    link_in,
    send_confirmation,
    smtp_mailer,
    text_of,
)
from tests.netfaults import free_port

# --- Messages --------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["sender", "to", "subject"])
@pytest.mark.parametrize("bad", ["\r", "\n", "\r\nBcc: victim@example.com"])
def test_header_value_with_cr_or_lf_is_refused(header: str, bad: str) -> None:
    fields = {"sender": SENDER, "to": TO, "subject": "Confirm"}
    fields[header] += bad
    with pytest.raises(ValueError, match="CR or LF"):
        message(**fields, body=Body("text"))


@pytest.mark.parametrize("sender", ["nobody", "a@example.org, b@example.org", ""])
def test_message_comes_from_exactly_one_address(sender: str) -> None:
    with pytest.raises(ValueError, match="one email address"):
        message(sender=sender, to=TO, subject="Confirm", body=Body("text"))


@pytest.mark.parametrize(
    ("to", "envelope"),
    [
        ("a@example.org,b@example.org", '"a@example.org,b"@example.org'),
        ("Eve <eve@example.org>", '"Eve <eve"@example.org>'),
    ],
)
def test_message_goes_to_exactly_one_address(to: str, envelope: str) -> None:
    """What looks like a list or a display name is one (quoted) local part: the link can go
    to one mailbox only, never to a stranger's too."""
    msg = message(sender=SENDER, to=to, subject="Confirm", body=Body("text"))
    addresses = msg["To"].addresses
    assert [a.addr_spec for a in addresses] == [envelope]


def test_message_needs_an_address_to_go_to() -> None:
    with pytest.raises(ValueError, match="must be an email address"):
        message(sender=SENDER, to="nobody", subject="Confirm", body=Body("text"))


def test_message_has_date_message_id_and_the_link_verbatim() -> None:
    long_link = LINK + "x" * 120  # longer than a folded line
    msg = message(sender=SENDER, to=TO, subject="Confirm", body=Body(f"Open {long_link}\n"))
    assert msg["Date"]
    assert msg["Message-ID"].endswith("@game.example>")
    assert msg["To"] == TO
    assert (
        long_link.encode() in msg.as_bytes()
    )  # not quoted-printable: an outbox reader can copy it
    assert text_of(msg) == f"Open {long_link}\n"


def test_non_ascii_body_and_subject_survive() -> None:
    msg = message(sender=SENDER, to=TO, subject="Bestätigung ✓", body=Body(f"Grüße {LINK}\n"))
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Bestätigung ✓"
    assert text_of(parsed) == f"Grüße {LINK}\n"


# --- SMTP ------------------------------------------------------------------------------------


async def test_smtp_delivers_to_the_mail_server(mail_server: MailServer) -> None:
    mailer = smtp_mailer(mail_server)
    await send_confirmation(mailer, None, None)
    (msg,) = await mail_server.wait_for_async(1)
    assert msg["From"] == SENDER
    assert msg["To"] == TO
    assert msg["Subject"] == "Confirm"
    assert link_in(msg, "/v1/users/confirm") == LINK
    (received,) = mail_server.received
    assert received.mail_from == "noreply@game.example"
    assert received.rcpt_tos == (TO,)
    assert received.login is None
    assert mailer.sent == 1


async def test_log_names_the_domain_only_never_the_address_or_link(
    mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = smtp_mailer(mail_server)
    with caplog.at_level(logging.INFO, logger="corelogin.server"):
        await send_confirmation(mailer, None, None)
        mail_server.refuse()
        with pytest.raises(MailError):
            await send_confirmation(mailer, None, None)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "mail sent to *@example.org" in text
    assert "not sent" in text
    assert "donna" not in text
    assert "code=" not in text
    assert LINK not in text


async def test_smtp_refusal_is_a_mail_error(mail_server: MailServer) -> None:
    mailer = smtp_mailer(mail_server)
    mail_server.refuse(1)
    with pytest.raises(MailError, match="550"):
        await send_confirmation(mailer, None, None)
    assert mailer.sent == 0
    await send_confirmation(mailer, None, None)  # only the first was refused
    assert mailer.sent == 1
    assert len(mail_server.received) == 1


async def test_mail_error_names_the_recipient_by_domain_only(mail_server: MailServer) -> None:
    mailer = smtp_mailer(mail_server)
    mail_server.refuse(1, reply=f"550 5.1.1 <{TO}>: Recipient address\trejected")
    with pytest.raises(MailError) as caught:
        await send_confirmation(mailer, None, None)
    assert str(caught.value) == (
        "the SMTP server answered 550: 5.1.1 <*@example.org>: Recipient address rejected"
    )


async def test_nothing_listening_is_a_mail_error_at_once() -> None:
    mailer = Mailer.from_config(config(smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_timeout=3))
    assert mailer is not None
    started = time.monotonic()
    with pytest.raises(MailError):
        await send_confirmation(mailer, None, None)
    assert time.monotonic() - started < 2
    assert mailer.sent == 0


@pytest.fixture
async def silent_smtp() -> AsyncIterator[int]:
    """A TCP server that accepts and never says a word (no SMTP greeting)."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_server_that_never_answers_is_a_mail_error_after_smtp_timeout(
    silent_smtp: int,
) -> None:
    mailer = Mailer.from_config(
        config(smtp_url=f"smtp://127.0.0.1:{silent_smtp}", smtp_timeout=0.5)
    )
    assert mailer is not None
    started = time.monotonic()
    with pytest.raises(MailError, match=r"did not finish within 0\.5s"):
        await send_confirmation(mailer, None, None)
    assert time.monotonic() - started < 2


async def test_smtp_logs_in_with_the_url_user_and_smtp_password() -> None:
    with MailServer(auth=("no@reply", "s3cret-pw")) as server:
        url = f"smtp://no%40reply@127.0.0.1:{server.port}"
        mailer = Mailer.from_config(config(smtp_url=url, smtp_password="s3cret-pw"))
        assert mailer is not None
        await send_confirmation(mailer, None, None)
        (received,) = server.received
        assert received.login == "no@reply"

        wrong = Mailer.from_config(config(smtp_url=url, smtp_password="wrong-pw"))
        assert wrong is not None
        with pytest.raises(MailError, match="535") as caught:
            await send_confirmation(wrong, None, None)
        assert "wrong-pw" not in str(caught.value)
        assert server.auth_failures >= 1  # the client may try more than one mechanism
        assert len(server.received) == 1


async def test_mail_server_requiring_auth_refuses_a_mailer_without_it() -> None:
    with MailServer(auth=("user", "pw")) as server:
        mailer = smtp_mailer(server)
        with pytest.raises(MailError, match="530"):
            await send_confirmation(mailer, None, None)
        assert server.received == []


# --- Configuration ---------------------------------------------------------------------------


def test_no_mail_configured_gives_no_mailer(tmp_path: Path) -> None:
    assert Mailer.from_config(config()) is None
    assert not Mailer.configured(config())
    assert Mailer.configured(config(mail_outbox=str(tmp_path)))
    assert Mailer.configured(config(smtp_url="smtp://localhost"))


def test_password_in_smtp_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError, match="smtp_password") as caught:
        Mailer.from_config(config(smtp_url="smtps://user:hunter2@mail.example.com"))
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "fields", "reason"),
    [
        ("http://mail.example.com", {}, "smtp:// or smtps://"),
        ("mail.example.com:25", {}, "smtp:// or smtps://"),
        ("smtp://", {}, "no host"),
        ("smtp://:25", {}, "no host"),
        ("smtp://mail.example.com:99999", {}, "port"),
        ("smtp://mail.example.com:x", {}, "port"),
        ("smtp://mail.example.com:0", {}, "port"),
        ("smtp://mail.example.com?tls=1", {}, "unknown parameter 'tls'"),
        ("smtp://mail.example.com?starttls=maybe", {}, "true or false"),
        ("smtp://mail.example.com?starttls=1&starttls=0", {}, "more than once"),
        ("smtps://mail.example.com?starttls=true", {}, "drop ?starttls"),
        ("smtp://mail.example.com/path", {}, "path"),
        ("smtp://u@mail.example.com", {}, "smtp_password"),
        ("smtp://mail.example.com", {"smtp_password": "pw"}, "names no user"),
        ("smtp://u@mail.example.com", {"smtp_password": "pw"}, "unencrypted"),
        ("smtp://mail.example.com", {"mail_outbox": "outbox"}, "not both"),
        ("smtp://mail.example.com", {"mail_from": "not an address"}, "mail_from"),
        ("smtp://mail.example.com", {"smtp_timeout": 0.0}, "smtp_timeout"),
    ],
)
def test_bad_mail_settings_are_one_line_value_errors(
    url: str, fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$") as caught:
        Mailer.from_config(config(smtp_url=url, **fields))
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "username"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, "none", None),
        ("smtp://Mail.Example.com:2525?starttls=false", "mail.example.com", 2525, "none", None),
        ("smtp://u@mail.example.com?starttls=true", "mail.example.com", 587, "starttls", "u"),
        ("smtps://a%2Bb%40c@mail.example.com", "mail.example.com", 465, "implicit", "a+b@c"),
        ("smtp://u@[::1]:26/", "::1", 26, "none", "u"),
        ("smtp://u@localhost", "localhost", 25, "none", "u"),
    ],
)
def test_smtp_url_forms(url: str, host: str, port: int, tls: str, username: str | None) -> None:
    password = "pw" if username else None
    mailer = Mailer.from_config(config(smtp_url=url, smtp_password=password, smtp_timeout=3.0))
    assert mailer is not None
    transport = mailer.transport
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.tls) == (host, port, tls)
    assert transport.username == username
    assert transport.password == password
    assert transport.timeout == 3.0
    assert "pw" not in repr(transport)


# --- Outbox ----------------------------------------------------------------------------------


async def test_outbox_writes_a_private_parseable_eml(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    mailer = Mailer.from_config(config(mail_outbox=str(outbox)))
    assert mailer is not None
    assert isinstance(mailer.transport, OutboxTransport)
    await send_confirmation(mailer, None, None)
    await send_confirmation(mailer, None, None)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    files = sorted(os.listdir(outbox))
    assert len(files) == 2
    assert all(name.endswith(".eml") and not name.startswith(".") for name in files)
    for name in files:
        path = outbox / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg["To"] == TO
        assert link_in(msg, "/v1/users/confirm") == LINK
    assert mailer.sent == 2


async def test_outbox_that_cannot_be_written_is_a_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    mailer = Mailer.from_config(config(mail_outbox=str(blocker / "outbox")))
    assert mailer is not None
    with pytest.raises(MailError, match="mail outbox"):
        await send_confirmation(mailer, None, None)
    assert mailer.sent == 0
