"""corelogin quick start.

Starts the reference server in-process on a temporary SQLite file, with mail written to an
outbox directory. Through the SDK it creates a user who must confirm their address, logs in
before and after following the link found in the outbox, logs in by email, shows failed logins,
and reads and updates the user with the session; each event is printed the way the Lua examples
of Coronium Core do (``evt.error``, ``evt.status``, ``evt.result.user_id``).

    python samples/quickstart.py
"""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import corelogin
from corelogin.server import ServerConfig, ServerThread

PASSWORD = "correct horse battery staple"
SHOWN = ("user_id", "username", "email", "active", "confirmation", "validated", "extra")


def lua(value: Any) -> str:
    """Show a value as Lua's print would."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def on_event(evt: corelogin.Event) -> None:
    """The listener: called once per call, on this thread, when core.wait() runs it."""
    print(f"-- {evt.name} ({evt.tt:.0f} ms)")
    if evt.error:
        print(f"   evt.error  = {evt.error}")
        print(f"   evt.status = {evt.status}")
        return
    for key in SHOWN:
        if key in evt.result:  # a login object has "validated"; a user record has not
            print(f"   evt.result.{key} = {lua(evt.result[key])}")


def confirmation_link(outbox: Path) -> str:
    """The link in the newest mail of the outbox (what the user would click)."""
    newest = max(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime)
    mail = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
    print(f"-- mail to {mail['To']}: {mail['Subject']!r} ({newest.name})")
    body = mail.get_body()
    assert body is not None, "the mail has no body"
    match = re.search(r"\S+/confirm\?code=\S+", str(body.get_content()))
    assert match, "no confirmation link in the mail"
    return match.group(0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Path(tmp) / "outbox"
        config = ServerConfig(
            app_key=secrets.token_urlsafe(16),
            db=f"sqlite:///{tmp}/quickstart.sqlite3",
            port=0,
            mail_outbox=str(outbox),  # development mail: each message is an .eml file here
        )
        with ServerThread(config) as server:
            print(f"reference server on {server.url}, SQLite and outbox in {tmp}")
            with corelogin.init(server=server.url, key=config.app_key, scope="default") as core:

                def call(method: Any, params: dict[str, Any]) -> None:
                    method(params, on_event)
                    core.wait()  # runs the listener here, like Corona between frames

                donna = {"username": "Donna", "password": PASSWORD}
                confirmation = {"from_email": "noreply@game.example", "subject": "Welcome!"}
                call(
                    core.users.create,
                    {**donna, "email": "tina@home.com", "confirmation": confirmation},
                )
                call(core.users.login, donna)  # active false, confirmation pending
                link = confirmation_link(outbox)
                print(f"   confirmation link: {link}")
                with urllib.request.urlopen(link) as page:  # noqa: S310 (our own server)
                    print(f"-- followed it: HTTP {page.status}")
                call(core.users.login, donna)  # now validated
                call(core.users.login, {"email": "Tina@Home.com", "password": PASSWORD})
                call(core.users.login, {"username": "Donna", "password": "1234"})
                call(core.users.login, {"username": "Donna"})
                user = core.users.logged_in_user
                assert user is not None
                call(core.users.update, {"user_id": user.user_id, "update": {"extra": {"lv": 2}}})
                call(core.users.get, {"user_id": user.user_id})
                print(f"logged in as {user.username}")


if __name__ == "__main__":
    main()
