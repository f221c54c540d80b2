"""Mail from the server: messages, and their delivery (SMTP or outbox). Their bodies come from
`corelogin.server.mailtemplates`.

Nothing here logs a message body or a password: a body holds a link that is as good as a
password until it is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.errors
import email.policy
import email.utils
import ipaddress
import logging
import os
import re
import secrets
import urllib.parse
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, ClassVar, Final, Literal, Protocol

import aiosmtplib
import attrs

from corelogin.server.config import ServerConfig
from corelogin.server.mailtemplates import Body

__all__ = [
    "MailError",
    "Mailer",
    "OutboxTransport",
    "SmtpTransport",
    "Transport",
    "message",
]

log = logging.getLogger("corelogin.server")

# RFC 5322's hard limit: a body with longer lines cannot go as it is (7bit or 8bit).
_MAX_LINE_BYTES: Final = 998

# --- Messages --------------------------------------------------------------------------------


def _content_transfer_encoding(text: str) -> str | None:
    """7bit or 8bit when every line fits, so a link in an outbox file reads as it is (the
    SMTP client re-encodes 8bit for a server without 8BITMIME); else the library's choice."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) > _MAX_LINE_BYTES:
        return None
    return "7bit" if text.isascii() else "8bit"


def message(*, sender: str, to: str, subject: str, body: Body) -> EmailMessage:
    """A mail from ``sender`` to the one address ``to``; ``body.html`` as an alternative.

    Raises ValueError for a header value with CR or LF (header injection), a ``sender`` that
    is not one address, and a ``to`` that is not exactly one bare address (``a@x.org,b@y.org``
    would mail the link to a stranger too).
    """
    for header, value in (("sender", sender), ("to", to), ("subject", subject)):
        if "\r" in value or "\n" in value:
            raise ValueError(f"{header} must not contain CR or LF")
    try:
        return _compose(sender=sender, to=to, subject=subject, body=body)
    except ValueError:
        raise
    except Exception:  # the email package fails in many ways on odd addresses (AttributeError...)
        raise ValueError("an address of this mail cannot be written in a mail header") from None


def _compose(*, sender: str, to: str, subject: str, body: Body) -> EmailMessage:
    if _one_address(sender) is None:
        raise ValueError("sender must be one email address")
    local, _, domain = to.rpartition("@")
    if not local or not domain:
        raise ValueError("to must be an email address")
    try:
        recipient = Address(username=local, domain=domain)
    except (ValueError, IndexError, email.errors.HeaderParseError):
        raise ValueError("to must be exactly one email address") from None
    # Internationalised addresses need SMTPUTF8 (RFC 6531); a server without it refuses them.
    ascii_only = sender.isascii() and to.isascii()
    msg = EmailMessage(policy=email.policy.SMTP if ascii_only else email.policy.SMTPUTF8)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    # An explicit domain: make_msgid would otherwise ask DNS for this host's name.
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    msg.set_content(body.text, cte=_content_transfer_encoding(body.text))
    if body.html is not None:
        msg.add_alternative(body.html, subtype="html", cte=_content_transfer_encoding(body.html))
    try:  # what cannot be written cannot be sent (an address with a non-ASCII domain)
        msg.as_bytes()
    except (UnicodeError, ValueError, email.errors.MessageError):
        raise ValueError("an address of this mail cannot be written in a mail header") from None
    return msg


def _envelope(header: Any) -> str | None:
    """The one address of a From or To header as the SMTP envelope needs it (quoted where it
    must be: a local part holding a comma stays one address)."""
    addresses: tuple[Any, ...] = getattr(header, "addresses", ())
    return addresses[0].addr_spec if len(addresses) == 1 else None


def _one_address(header: str | None) -> str | None:
    addresses = email.utils.getaddresses([header]) if header else []
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        return None
    return addresses[0][1]


def _masked(address: str) -> str:
    """An address fit for the log: its domain only."""
    return "*@" + address.rpartition("@")[2]


# --- Delivery --------------------------------------------------------------------------------


class MailError(Exception):
    """A message was not handed over; the text is one line, without secrets."""


_LOCAL_PART: Final = re.compile(r"[^\s<>\"'@,;:()\[\]]+@")


def _one_line(text: str, limit: int = 200) -> str:
    """A reason for the log: one line, short, and addresses by their domain only (a server's
    answer often names the recipient)."""
    line = _LOCAL_PART.sub("*@", " ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Transport(Protocol):
    """Where a `Mailer` hands messages over."""

    @property
    def kind(self) -> str:
        """A short name for the log ("smtp", "outbox")."""
        ...

    async def deliver(self, msg: EmailMessage, sender: str, recipient: str) -> None:
        """Hand ``msg`` over or raise `MailError`."""
        ...


_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class SmtpTransport:
    """An SMTP server; one connection per message. ``tls``: ``"implicit"`` (smtps://),
    ``"starttls"`` (smtp://...?starttls=true) or ``"none"``."""

    host: str
    port: int
    tls: Literal["none", "starttls", "implicit"] = "none"
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    # The whole delivery of one message, from connecting to QUIT.
    timeout: float = 10.0

    kind: ClassVar[str] = "smtp"

    @classmethod
    def from_url(cls, url: str, password: str | None, timeout: float) -> SmtpTransport:
        """``smtp://[user@]host[:port][?starttls=true]`` or ``smtps://[user@]host[:port]``.

        Raises ValueError with one line (the URL itself is never repeated: it may hold a
        password by mistake). The password never comes from the URL.
        """
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError("smtp_url is not a valid URL (or its port is not 1-65535)") from None
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ValueError("smtp_url must start with smtp:// or smtps://")
        if parts.password is not None:
            raise ValueError(
                "smtp_url must not hold a password: set smtp_password "
                "(CORELOGIN_SMTP_PASSWORD) instead"
            )
        host = parts.hostname
        if not host:
            raise ValueError("smtp_url has no host")
        if port == 0:
            raise ValueError("smtp_url's port must be 1-65535")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("smtp_url must not have a path or a fragment")
        starttls = cls._starttls(parts.query)
        if scheme == "smtps" and starttls:
            raise ValueError("smtp_url: smtps:// is TLS from the start; drop ?starttls=true")
        tls: Literal["none", "starttls", "implicit"] = (
            "implicit" if scheme == "smtps" else "starttls" if starttls else "none"
        )
        username = urllib.parse.unquote(parts.username) if parts.username is not None else None
        if username == "":
            raise ValueError("smtp_url has an empty user name")
        if username is not None and not password:
            raise ValueError(
                "smtp_url names a user but smtp_password (CORELOGIN_SMTP_PASSWORD) is not set"
            )
        if username is None and password:
            raise ValueError("smtp_password is set but smtp_url names no user (smtp://USER@host)")
        if username is not None and tls == "none" and not _is_loopback(host):
            raise ValueError(
                "smtp_url would send the SMTP password unencrypted: use smtps:// or ?starttls=true"
            )
        default_port = {"implicit": 465, "starttls": 587, "none": 25}[tls]
        return cls(
            host=host,
            port=port or default_port,
            tls=tls,
            username=username,
            password=password if username is not None else None,
            timeout=timeout,
        )

    @staticmethod
    def _starttls(query: str) -> bool:
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            if not query:
                return False
            raise ValueError("smtp_url has a malformed query") from None
        starttls = False
        for key, value in pairs:
            if key != "starttls":
                raise ValueError(f"smtp_url has an unknown parameter {key!r} (known: starttls)")
            if value.lower() not in _TRUE + _FALSE:
                raise ValueError("smtp_url's starttls must be true or false")
            starttls = value.lower() in _TRUE
        if len(pairs) > 1:
            raise ValueError("smtp_url gives starttls more than once")
        return starttls

    async def deliver(self, msg: EmailMessage, sender: str, recipient: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await aiosmtplib.send(
                    msg,
                    sender=sender,
                    recipients=[recipient],
                    hostname=self.host,
                    port=self.port,
                    username=self.username,
                    password=self.password,
                    use_tls=self.tls == "implicit",
                    start_tls=self.tls == "starttls",
                    timeout=self.timeout,
                )
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"the SMTP server answered {exc.code}: {exc.message}"
            raise MailError(_one_line(reason)) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            raise MailError(f"the SMTP server did not finish within {self.timeout}s") from None
        except aiosmtplib.SMTPException as exc:
            raise MailError(_one_line(f"SMTP failed: {exc}")) from None
        except OSError as exc:
            raise MailError(_one_line(f"SMTP failed: {exc.strerror or exc}")) from None


@attrs.frozen
class OutboxTransport:
    """A directory that gets each message as ``<UTC time>-<random>.eml`` (development).

    The directory is made 0700 if missing and the files are 0600: a mail's link is as good as
    a password. Each file appears whole (written under a dot-name, then renamed).
    """

    directory: str

    kind: ClassVar[str] = "outbox"

    async def deliver(self, msg: EmailMessage, sender: str, recipient: str) -> None:
        data = msg.as_bytes()
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise MailError(f"cannot write to the mail outbox: {reason}") from None

    def _write(self, data: bytes) -> str:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{secrets.token_hex(6)}.eml"
        final = os.path.join(self.directory, name)
        temporary = os.path.join(self.directory, f".{name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return final


class Mailer:
    """Hands messages to the configured transport and counts them (`sent`).

    A Mailer exists only when mail is configured: `from_config` gives None when neither
    ``smtp_url`` nor ``mail_outbox`` is set (`configured` says which), and calls that would
    send mail then answer 702 without creating anything.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.sent = 0  # messages handed over successfully

    @staticmethod
    def configured(config: ServerConfig) -> bool:
        """Whether `from_config` gives a Mailer (mail can be sent) rather than None."""
        return bool(config.smtp_url or config.mail_outbox)

    @classmethod
    def from_config(cls, config: ServerConfig) -> Mailer | None:
        """The mailer ``config`` asks for, or None. Raises ValueError with one line for a bad
        setting (the server reports it at start-up)."""
        if config.smtp_url and config.mail_outbox:
            raise ValueError("set smtp_url or mail_outbox, not both")
        if "\r" in config.mail_from or "\n" in config.mail_from:
            raise ValueError("mail_from must not contain CR or LF")
        if _one_address(config.mail_from) is None:
            raise ValueError("mail_from must be one email address")
        if config.smtp_timeout <= 0:
            raise ValueError("smtp_timeout must be positive")
        transport: Transport
        if config.smtp_url:
            transport = SmtpTransport.from_url(
                config.smtp_url, config.smtp_password, config.smtp_timeout
            )
        elif config.mail_outbox:
            transport = OutboxTransport(config.mail_outbox)
        else:
            return None
        return cls(transport)

    async def send(self, msg: EmailMessage) -> None:
        """Hand ``msg`` over (its From and its one To are the envelope); raises `MailError`."""
        sender, recipient = _envelope(msg["From"]), _envelope(msg["To"])
        if sender is None or recipient is None:
            raise ValueError("a message needs one From and one To address")
        try:
            try:
                await self.transport.deliver(msg, sender, recipient)
            except (MailError, asyncio.CancelledError):
                raise
            except Exception as exc:  # whatever a transport did not foresee: still not sent
                raise MailError(f"{type(exc).__name__} while sending") from exc
        except MailError as exc:
            log.warning(
                "mail to %s not sent (%s): %s", _masked(recipient), self.transport.kind, exc
            )
            raise
        self.sent += 1
        log.info("mail sent to %s (%s)", _masked(recipient), self.transport.kind)
