"""The pages behind mailed links in a real Chromium: the reset form is styled under its strict
Content-Security-Policy (no violation logged), works without JavaScript, and sets the password
the SDK then logs in with."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

import corelogin
from corelogin.server import ServerConfig, ServerThread
from tests.browser import console_errors, screenshot
from tests.helpers import APP_KEY, PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

NEW_PASSWORD = "a brand new secret phrase"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def mail_server_thread(server_config: ServerConfig, outbox: Path) -> Iterator[ServerThread]:
    config = attrs.evolve(server_config, mail_outbox=str(outbox))
    with ServerThread(config) as running:
        yield running


def reset_link(outbox: Path, timeout: float = 10) -> str:
    """The link of the one reset mail in the outbox (the mail is sent in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = sorted(outbox.glob("*.eml")) if outbox.exists() else []
        if mails:
            message = email.message_from_bytes(mails[-1].read_bytes())
            body = message.get_payload(decode=True)
            assert isinstance(body, bytes)
            return next(w for w in body.decode().split() if "/reset?code=" in w)
        time.sleep(0.05)
    raise AssertionError("no reset mail")


def test_the_reset_form_works_in_a_browser_under_its_csp(
    mail_server_thread: ServerThread, outbox: Path, page: Page
) -> None:
    # Sync Playwright runs an event loop on this thread: listeners go to an SDK thread.
    with corelogin.init(mail_server_thread.url, APP_KEY, deliver="thread") as core:
        made = core.users.create(
            {"username": "Donna", "password": PASSWORD, "email": "donna@example.com"}
        ).result(30)
        assert made.error is None
        asked = core.users.send_password_reset({"email": "donna@example.com"}).result(30)
        assert asked.error is None
        link = reset_link(outbox)

        page.goto(link)
        # The style sheet is allowed by its hash: the page is laid out by it.
        assert page.eval_on_selector("main", "m => getComputedStyle(m).maxWidth") == "448px"
        screenshot(page, "reset-form")
        page.fill("#password", NEW_PASSWORD)
        page.fill("#again", NEW_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        screenshot(page, "reset-done")
        heading = page.text_content("h1")

        login = core.users.login({"username": "Donna", "password": NEW_PASSWORD}).result(30)
    assert "changed" in (heading or "").lower()
    assert login.error is None
    assert console_errors(page) == []
