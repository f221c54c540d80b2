"""corelogin.server.mail: templates, messages, and delivery to a real SMTP server or an outbox."""

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
from typing import Any

import pytest

from corelogin.server.config import ServerConfig
from corelogin.server.mail import (
    Body,
    Mailer,
    MailError,
    OutboxTransport,
    SmtpTransport,
    check_template,
    message,
    render,
)
from corelogin.wire import ApiError, Status
from tests.mailserver import MailServer, link_in, text_of
from tests.netfaults import free_port

LINK = "http://127.0.0.1:10001/v1/users/confirm?code=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
SENDER = "Corelogin <noreply@game.example>"
TO = "donna@example.org"


def config(**fields: Any) -> ServerConfig:
    return ServerConfig(app_key="test-app-key", **fields)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "welcome.txt").write_text(
        "Hi {{ name }}! You are player {{ number }}.\nConfirm here: {*confirm_link*}\n"
    )
    (directory / "welcome.html").write_text(
        "<p>Hi {{ name }}!</p>\n<p><a href='{* confirm_link *}'>Confirm</a></p>\n"
    )
    return directory


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


# --- Templates -------------------------------------------------------------------------------


def test_default_confirm_template_renders_the_link() -> None:
    body = render(None, None, "confirm_link", LINK)
    assert LINK in body.text
    assert "{*" not in body.text
    assert "{{" not in body.text
    assert body.html is None


def test_default_reset_template_renders_the_link() -> None:
    body = render(None, None, "reset_link", LINK)
    assert LINK in body.text
    assert "password" in body.text
    check_template(None, None, "reset_link")


def test_custom_template_is_filled_from_tpl_keys(templates: Path) -> None:
    check_template(str(templates), "welcome.txt", "confirm_link")
    body = render(
        str(templates), "welcome.txt", "confirm_link", LINK, {"name": "Donna", "number": 7}
    )
    assert body.text == f"Hi Donna! You are player 7.\nConfirm here: {LINK}\n"
    assert body.html is None


def test_template_needing_a_key_the_caller_did_not_give_is_804(templates: Path) -> None:
    with pytest.raises(ApiError) as rendered:
        render(str(templates), "welcome.txt", "confirm_link", LINK, {"name": "Donna"})
    assert rendered.value.status == Status.MISSING
    assert "number" in rendered.value.message
    # check_template with the keys finds it before anything exists.
    with pytest.raises(ApiError) as checked:
        check_template(str(templates), "welcome.txt", "confirm_link", {})
    assert checked.value.status == Status.MISSING
    assert "name" in checked.value.message


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/b", ".hidden", "x\\y", "..", "a..b", "a\0b", "", "dir/"],
)
async def test_names_with_a_path_are_refused_with_801_and_nothing_is_sent(
    mail_server: MailServer, templates: Path, name: str
) -> None:
    (templates / ".hidden").write_text("{* confirm_link *}")
    mailer = smtp_mailer(mail_server)
    with pytest.raises(ApiError) as caught:
        await send_confirmation(mailer, str(templates), name)
    assert caught.value.status == Status.WRONG_TYPE
    assert "bare file name" in caught.value.message
    with pytest.raises(ApiError):
        render(str(templates), name, "confirm_link", LINK)
    assert mail_server.received == []
    assert mailer.sent == 0


def test_unknown_template_is_801(templates: Path) -> None:
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "nope.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "nope.txt" in caught.value.message


def test_a_directory_is_not_a_template(templates: Path) -> None:
    (templates / "sub.txt").mkdir()
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "sub.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE


def test_custom_template_without_a_templates_dir_is_801() -> None:
    with pytest.raises(ApiError) as caught:
        check_template(None, "welcome.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "templates directory" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "Hello, no link here.\n",
        "Jinja syntax is not the placeholder: {{ confirm_link }}\n",
        "Another link is not this one: {* reset_link *}\n",
    ],
)
def test_template_without_the_confirm_link_placeholder_is_801(templates: Path, source: str) -> None:
    (templates / "bad.txt").write_text(source)
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "bad.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "{* confirm_link *}" in caught.value.message


def test_placeholder_allows_spaces_inside(templates: Path) -> None:
    (templates / "spaced.txt").write_text("a {*   confirm_link\t*} b {*confirm_link*}\n")
    assert render(str(templates), "spaced.txt", "confirm_link", LINK).text == (
        f"a {LINK} b {LINK}\n"
    )


def test_template_jinja_cannot_parse_is_801(templates: Path) -> None:
    (templates / "broken.txt").write_text("{* confirm_link *}\n{% for x in %}\n")
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "broken.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "not a valid template" in caught.value.message


def test_template_that_is_not_utf8_is_801(templates: Path) -> None:
    (templates / "latin1.txt").write_bytes("{* confirm_link *} caf\xe9".encode("latin-1"))
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "latin1.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE


def test_symlink_out_of_the_templates_dir_is_801(tmp_path: Path, templates: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret {* confirm_link *}\n")
    (templates / "escape.txt").symlink_to(outside)
    (templates / "loop.txt").symlink_to(templates / "loop.txt")
    for name in ("escape.txt", "loop.txt"):
        with pytest.raises(ApiError) as caught:
            check_template(str(templates), name, "confirm_link")
        assert caught.value.status == Status.WRONG_TYPE
        with pytest.raises(ApiError):
            render(str(templates), name, "confirm_link", LINK)


def test_symlink_inside_the_templates_dir_is_followed(templates: Path) -> None:
    (templates / "alias.txt").symlink_to("welcome.txt")
    body = render(str(templates), "alias.txt", "confirm_link", LINK, {"name": "D", "number": 1})
    assert LINK in body.text


def test_symlink_into_a_subdirectory_of_the_templates_dir_is_followed(templates: Path) -> None:
    (templates / "shared").mkdir()
    (templates / "shared" / "base.txt").write_text("shared {* confirm_link *}")
    (templates / "linked.txt").symlink_to(templates / "shared" / "base.txt")
    assert render(str(templates), "linked.txt", "confirm_link", LINK).text == f"shared {LINK}"


def test_tpl_keys_are_data_never_template_code(templates: Path) -> None:
    keys = {"name": "{{ 7*7 }}", "number": "{% for x in range(3) %}x{% endfor %}{* confirm_link *}"}
    check_template(str(templates), "welcome.txt", "confirm_link", keys)
    text = render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    assert "Hi {{ 7*7 }}!" in text
    assert "49" not in text
    assert "player {% for x in range(3) %}x{% endfor %}{* confirm_link *}." in text


def test_a_tpl_key_named_like_the_link_cannot_replace_it(templates: Path) -> None:
    keys = {"name": "D", "number": 1, "confirm_link": "https://evil.example/phish"}
    text = render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    assert LINK in text
    assert "evil" not in text


def test_tpl_keys_must_be_flat(templates: Path) -> None:
    with pytest.raises(ApiError) as caught:
        render(str(templates), "welcome.txt", "confirm_link", LINK, {"name": {"a": 1}})
    assert caught.value.status == Status.WRONG_TYPE


def test_html_template_escapes_keys_and_has_a_text_alternative(templates: Path) -> None:
    keys = {"name": "<script>alert(1)</script>", "number": 1}
    body = render(str(templates), "welcome.html", "confirm_link", LINK, keys)
    assert body.html is not None
    assert "<script>" not in body.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body.html
    assert LINK in body.text  # the default confirmation text
    msg = message(sender=SENDER, to=TO, subject="Confirm", body=body)
    html = msg.get_body(preferencelist=("html",))
    plain = msg.get_body(preferencelist=("plain",))
    assert html is not None
    assert plain is not None
    assert "&lt;script&gt;" in html.get_content()
    assert LINK in plain.get_content()


def test_text_template_is_not_escaped(templates: Path) -> None:
    keys = {"name": "Tom & <Jerry>", "number": 1}
    assert (
        "Hi Tom & <Jerry>!"
        in render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    )


def test_sandbox_refuses_unsafe_attributes(templates: Path) -> None:
    (templates / "sneaky.txt").write_text(
        "{{ name.__class__.__mro__[1].__subclasses__() }} {* confirm_link *}"
    )
    with pytest.raises(ApiError) as caught:
        render(str(templates), "sneaky.txt", "confirm_link", LINK, {"name": "x"})
    assert caught.value.status == Status.WRONG_TYPE


def test_template_failing_at_run_time_is_801(templates: Path) -> None:
    (templates / "divide.txt").write_text("{{ 1 / 0 }} {* confirm_link *}")
    with pytest.raises(ApiError) as caught:
        render(str(templates), "divide.txt", "confirm_link", LINK)
    assert caught.value.status == Status.WRONG_TYPE
    assert "ZeroDivisionError" in caught.value.message


def test_edited_template_is_used_at_the_next_render(templates: Path) -> None:
    path = templates / "edit.txt"
    path.write_text("one {* confirm_link *}")
    assert render(str(templates), "edit.txt", "confirm_link", LINK).text == f"one {LINK}"
    path.write_text("two {* confirm_link *}")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert render(str(templates), "edit.txt", "confirm_link", LINK).text == f"two {LINK}"


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


async def test_smtp_delivers_custom_html_with_both_parts(
    mail_server: MailServer, templates: Path
) -> None:
    mailer = smtp_mailer(mail_server)
    await send_confirmation(mailer, str(templates), "welcome.html", {"name": "Donna", "number": 3})
    (msg,) = mail_server.wait_for(1)
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "Hi Donna!" in html.get_content()
    assert link_in(msg, "/v1/users/confirm") == LINK


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
