"""The admin page (/admin/) in a real headless Chromium: sign-in, a forged cross-site form,
the users list's search and filters, one user's actions (each checked through the SDK),
escaping, and a phone-wide screen. Every page is laid out under its strict CSP with nothing
refused (no console error), and screenshotted into test-artifacts/.

``CORELOGIN_SAVE_DOC_SCREENSHOT=1`` also saves docs/admin-users.png (shown by the README)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import corelogin
from corelogin.cli import main
from corelogin.server import ServerConfig, ServerThread
from tests.adminpage import OPERATOR, OPERATOR_PASSWORD
from tests.browser import console_errors, screenshot
from tests.helpers import APP_KEY, PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DOC_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "admin-users.png"
NASTY = "<script>alert(1)</script>\"'"
EMAIL = "\"><script>alert('e')</script>@x.example"
ROWS = "table.users tbody tr"
REFUSED = "Failed to load resource: the server responded with a status of {} ({})"


@pytest.fixture
def admin(server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    """The server, with an operator made by ``corelogin admin add`` (on a thread of its own:
    the command runs a loop, and sync Playwright has one on the test's thread)."""
    monkeypatch.setenv("CORELOGIN_ADMIN_PASSWORD", OPERATOR_PASSWORD)
    monkeypatch.delenv("CORELOGIN_DB", raising=False)
    with ServerThread(server_config) as running:
        with ThreadPoolExecutor(1) as pool:
            added = pool.submit(main, ["admin", "add", OPERATOR, "--db", server_config.db])
            assert added.result(60) == 0
        yield running


@pytest.fixture
def sdk(admin: ServerThread) -> Iterator[corelogin.Core]:
    # Listeners on an SDK thread: sync Playwright runs an event loop on this one.
    with corelogin.init(admin.url, APP_KEY, deliver="thread", session_store=None) as core:
        yield core


def make_user(sdk: corelogin.Core, username: str, **params: Any) -> corelogin.User:
    event = sdk.users.create({"username": username, "password": PASSWORD, **params}).result(30)
    assert event.error is None, event
    assert isinstance(event.result, corelogin.User)
    return event.result


def login(sdk: corelogin.Core, username: str) -> corelogin.Event:
    return sdk.users.login({"username": username, "password": PASSWORD}).result(30)


def sign_in(page: Page, url: str, password: str = OPERATOR_PASSWORD) -> None:
    page.goto(f"{url}/admin/")
    page.get_by_label("Operator name").fill(OPERATOR)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def flash(page: Page) -> str:
    return (page.text_content("p.flash") or "").strip()


def usernames(page: Page) -> list[str]:
    return [name.strip() for name in page.locator(f"{ROWS} td:first-child a").all_text_contents()]


def styled(page: Page) -> bool:
    """The style sheet was loaded and applied (CSP allows 'self')."""
    return bool(
        page.evaluate(
            "document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0"
        )
    )


# -- 1. sign-in -------------------------------------------------------------------------------


def test_sign_in_lands_on_the_dashboard_and_a_wrong_password_does_not(
    admin: ServerThread, page: Page
) -> None:
    sign_in(page, admin.url, "not the password at all")
    assert flash(page) == "Wrong name or password."
    # The refusal is a 401, which Chromium logs; nothing else may be.
    assert console_errors(page) == [REFUSED.format(401, "Unauthorized")]
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.get_by_role("button", name="Sign out").count() == 0
    page.goto(f"{admin.url}/admin/users")  # still signed out: the form again
    assert page.get_by_role("heading", name="Sign in").is_visible()
    screenshot(page, "admin-sign-in")

    sign_in(page, admin.url)
    assert page.url == f"{admin.url}/admin/"
    assert (page.text_content("h1") or "").startswith("Today")
    assert page.text_content(".operator") == OPERATOR
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert page.locator("ul.figures li").count() == 5
    assert styled(page)
    screenshot(page, "admin-dashboard")
    assert console_errors(page)[1:] == []


# -- 2. a form from another site --------------------------------------------------------------


class _Forger(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def forger() -> Iterator[tuple[str, type[_Forger]]]:
    """A page of another origin (another port of 127.0.0.1): its URL and its handler class,
    whose ``html`` the test sets."""
    handler = type("Forger", (_Forger,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_form_from_another_site_is_refused_and_changes_nothing(
    admin: ServerThread, sdk: corelogin.Core, page: Page, forger: tuple[str, type[_Forger]]
) -> None:
    user = make_user(sdk, "Donna")
    sign_in(page, admin.url)
    assert page.text_content(".operator") == OPERATOR
    target = f"{admin.url}/admin/users/{user.user_id}/deactivate"
    url, handler = forger
    handler.html = (
        f'<!doctype html><form method="post" action="{target}">'
        '<input type="hidden" name="scope" value="default">'
        "<button>Win a prize</button></form>"
    ).encode()

    page.goto(url)
    with page.expect_response(target) as answered:
        page.get_by_role("button", name="Win a prize").click()
    page.wait_for_load_state()
    assert answered.value.status == 403
    assert "did not come from this page" in (page.text_content("p.flash") or "")
    screenshot(page, "admin-forged-form")
    assert console_errors(page) == [REFUSED.format(403, "Forbidden")]

    event = login(sdk, "Donna")
    assert event.error is None
    assert event.result.active is True
    assert event.result.validated is True
    page.goto(f"{admin.url}/admin/users/{user.user_id}?scope=default")
    assert page.locator("dt:text-is('Active') + dd").text_content() == "yes"
    assert page.get_by_role("button", name="Deactivate").is_visible()


# -- 3. the users list ------------------------------------------------------------------------


def test_search_and_filters_on_the_users_list(
    admin: ServerThread, sdk: corelogin.Core, page: Page
) -> None:
    for name, group in [("alice", "red"), ("bob", "blue"), ("carol", "red"), ("dave", "blue")]:
        make_user(sdk, name, email=f"{name}@game.example", group=group)
    assert login(sdk, "bob").error is None
    sign_in(page, admin.url)
    page.get_by_role("link", name="Users").click()
    page.wait_for_load_state()
    assert sorted(usernames(page)) == ["alice", "bob", "carol", "dave"]
    assert styled(page)
    screenshot(page, "admin-users")
    if os.environ.get("CORELOGIN_SAVE_DOC_SCREENSHOT") == "1":
        page.screenshot(path=str(DOC_SCREENSHOT), full_page=True)

    page.get_by_label("Search").fill("carol@game")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert usernames(page) == ["carol"]
    assert page.get_by_label("Search").input_value() == "carol@game"  # the form keeps it
    assert "q=carol%40game" in page.url

    page.get_by_label("Search").fill("")
    page.get_by_label("Group").fill("red")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert sorted(usernames(page)) == ["alice", "carol"]
    screenshot(page, "admin-users-group")

    page.get_by_label("Group").fill("")
    page.get_by_label("Search").fill("nobody-like-this")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert page.locator(ROWS).count() == 0
    assert page.get_by_text("No users.").is_visible()
    assert console_errors(page) == []


# -- 4. one user and the actions --------------------------------------------------------------


def act(page: Page, button: str) -> str:
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return flash(page)


def test_the_user_page_and_its_actions(
    admin: ServerThread, sdk: corelogin.Core, page: Page
) -> None:
    user = make_user(sdk, "Donna", email="donna@game.example", group="players")
    assert login(sdk, "Donna").error is None
    sign_in(page, admin.url)
    page.goto(f"{admin.url}/admin/users")
    page.get_by_role("link", name="Donna").click()
    page.wait_for_load_state()
    assert page.text_content("h1") == "Donna"
    assert page.locator("dd code").first.text_content() == user.user_id
    assert page.locator("dt:text-is('Group') + dd").text_content() == "players"
    assert page.get_by_role("button", name="End", exact=True).count() == 1  # one session
    screenshot(page, "admin-user")
    assert console_errors(page) == []

    assert act(page, "End all sessions") == "All the user's sessions were ended."
    assert sdk.users.get({"user_id": user.user_id}).result(30).status == 609

    assert act(page, "Deactivate") == "The user was deactivated and their sessions ended."
    assert page.locator("dt:text-is('Active') + dd").text_content() == "no"
    deactivated = login(sdk, "Donna")
    assert deactivated.error is None
    assert deactivated.result.validated is False

    page.get_by_role("link", name="Delete…").click()
    page.wait_for_load_state()
    assert page.text_content("h1") == "Delete Donna?"
    screenshot(page, "admin-delete")
    assert login(sdk, "Donna").error is None  # nothing deleted by showing the question
    assert act(page, "Delete for good") == "The user was deleted."
    assert login(sdk, "Donna").status == 603
    page.goto(f"{admin.url}/admin/users")
    assert usernames(page) == []
    assert console_errors(page) == []


# -- 5. escaping ------------------------------------------------------------------------------


def test_what_users_typed_is_shown_as_text(
    admin: ServerThread, sdk: corelogin.Core, page: Page
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    user = make_user(sdk, NASTY, email=EMAIL, group="<i>g</i>\"'", extra={"note": NASTY})
    sign_in(page, admin.url)
    page.goto(f"{admin.url}/admin/users")
    assert usernames(page) == [NASTY]
    assert page.locator(f"{ROWS} script").count() == 0
    page.goto(f"{admin.url}/admin/users/{user.user_id}?scope=default")
    assert page.text_content("h1") == NASTY
    assert json.loads(page.text_content("pre.extra") or "") == {"note": NASTY}
    assert page.locator("dt:text-is('Email') + dd").text_content() == EMAIL
    assert page.locator("dt:text-is('Group') + dd").text_content() == "<i>g</i>\"'"
    assert page.locator("main script, main i").count() == 0
    screenshot(page, "admin-user-escaped")
    page.get_by_role("link", name="Delete…").click()
    page.wait_for_load_state()
    assert page.text_content("h1") == f"Delete {NASTY}?"
    assert dialogs == []
    assert console_errors(page) == []


# -- 6. a phone -------------------------------------------------------------------------------


def test_the_users_list_fits_a_phone(
    admin: ServerThread, sdk: corelogin.Core, browser: Browser
) -> None:
    for name in ["alice", "bob", "a-rather-long-username-for-a-phone"]:
        make_user(sdk, name, email=f"{name}@a-long-domain-name.game.example", group="players")
    context = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, admin.url)
        page.goto(f"{admin.url}/admin/users")
        assert len(usernames(page)) == 3
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.get_by_role("button", name="Show").is_visible()
        screenshot(page, "admin-users-phone")
        page.goto(f"{admin.url}/admin/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "admin-dashboard-phone")
        assert errors == []
    finally:
        context.close()
