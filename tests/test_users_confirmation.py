"""Confirmation of a new user's address (issue 8): the mail over a real SMTP server (aiosmtpd),
the /confirm page, resend_confirmation, templates, and what is refused before anything exists."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.wire import APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY, PASSWORD
from tests.mailserver import MailServer, link_in, text_of
from tests.pages import age_codes, assert_safe_page, open_page

SENDER = "noreply@game.example"
SUBJECT = "Confirm your address"
CONFIRMATION = {"from_email": SENDER, "subject": SUBJECT}
DONNA = {
    "username": "Donna",
    "password": PASSWORD,
    "email": "donna@home.example",
    "confirmation": CONFIRMATION,
}


# --- Helpers ---------------------------------------------------------------------------------


async def raw_call(
    server: RunningServer, name: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """A call as raw HTTP (no SDK checks on the way): HTTP status, JSON body, headers."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + PATHS[name],
            json={"scope": "default", **body},
            headers={APP_KEY_HEADER: APP_KEY},
        ) as response,
    ):
        return response.status, await response.json(), response.headers.copy()


def db_path(config: ServerConfig) -> str:
    return config.db.removeprefix("sqlite:///")


async def no_user(server: RunningServer, username: str = "Donna") -> bool:
    return await server.store.find_user("default", username=username) is None


# --- Fixtures --------------------------------------------------------------------------------


async def create_pending(core: corelogin.Core, **params: Any) -> corelogin.User:
    event = await core.users.create({**DONNA, **params})
    assert event.error is None, event
    assert isinstance(event.result, corelogin.User)
    return event.result


# --- The mail and the link -------------------------------------------------------------------


async def test_create_with_confirmation_mails_a_link_that_activates_the_user(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    user = await create_pending(mail_client)
    assert user.confirmation == "pending"
    assert user.active is False

    (received,) = mail_server.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ("donna@home.example",)
    msg = received.message
    assert msg["From"] == SENDER
    assert msg["To"] == "donna@home.example"
    assert msg["Subject"] == SUBJECT
    link = link_in(msg, PATHS["confirm"])
    assert link.startswith(mail_running.url + "/confirm?code=")

    before = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert before.error is None, before
    assert (before.result.active, before.result.confirmation, before.result.validated) == (
        False,
        "pending",
        False,
    )
    assert await mail_running.store.login_events(user.user_id) == []

    page = await open_page(link)
    assert page.status == 200
    assert "confirmed" in page.text.lower()
    assert_safe_page(page)

    after = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert after.error is None, after
    assert (after.result.active, after.result.confirmation, after.result.validated) == (
        True,
        None,
        True,
    )
    assert len(await mail_running.store.login_events(user.user_id)) == 1


async def test_following_the_link_again_is_409_already_used(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    await create_pending(mail_client)
    link = link_in(mail_server.messages[0], PATHS["confirm"])
    assert (await open_page(link)).status == 200

    again = await open_page(link)

    assert again.status == 409
    assert "used" in again.text
    assert_safe_page(again)


@pytest.mark.parametrize(
    "query",
    ["?code=not-a-code-we-ever-made", "?code=", "", "?code=%3Cscript%3Ealert(1)%3C/script%3E"],
    ids=["unknown", "empty", "missing", "markup"],
)
async def test_unknown_code_is_404_and_nothing_is_echoed(
    mail_client: corelogin.Core, mail_running: RunningServer, query: str
) -> None:
    user = await create_pending(mail_client)

    page = await open_page(mail_running.url + PATHS["confirm"] + query)

    assert page.status == 404
    assert "not known" in page.text
    assert "<script>" not in page.text
    assert_safe_page(page)
    stored = await mail_running.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.confirmation == "pending"


async def test_expired_code_is_410_and_the_user_stays_pending(
    mail_client: corelogin.Core,
    mail_running: RunningServer,
    mail_server: MailServer,
    mail_config: ServerConfig,
) -> None:
    user = await create_pending(mail_client)
    link = link_in(mail_server.messages[0], PATHS["confirm"])
    age_codes(mail_config, "confirm")

    page = await open_page(link)

    assert page.status == 410
    assert "expired" in page.text
    assert_safe_page(page)
    login = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert login.result.validated is False
    assert login.result.confirmation == "pending"
    assert await mail_running.store.login_events(user.user_id) == []


async def test_confirmation_ttl_of_the_server_sets_the_codes_lifetime(
    mail_config: ServerConfig, mail_server: MailServer
) -> None:
    config = attrs.evolve(mail_config, confirmation_ttl_seconds=1)
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        await create_pending(core)
        link = link_in(mail_server.messages[0], PATHS["confirm"])
        db = sqlite3.connect(db_path(config))
        try:
            ((created, expires),) = db.execute(
                "SELECT created, expires FROM codes WHERE purpose = 'confirm'"
            ).fetchall()
        finally:
            db.close()
        assert expires - created == pytest.approx(1)
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
        assert (await open_page(link)).status == 410


async def test_one_of_100_concurrent_openings_of_a_link_confirms_the_rest_are_409(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    await create_pending(mail_client)
    link = link_in(mail_server.messages[0], PATHS["confirm"])

    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def open_once() -> int:
            async with http.get(link) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(open_once() for _ in range(100)))

    assert statuses.count(200) == 1
    assert statuses.count(409) == 99


# --- Mail that fails, and resend -------------------------------------------------------------


async def test_refused_mail_leaves_a_failed_user_that_resend_recovers(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    mail_server.refuse()
    user = await create_pending(mail_client)
    assert user.confirmation == "failed"
    assert user.active is False
    assert mail_server.received == []

    login = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert login.error is None, login
    assert (login.result.confirmation, login.result.validated) == ("failed", False)

    mail_server.accept()
    resent = await mail_client.users.resend_confirmation({"user_id": user.user_id})

    assert resent.error is None, resent
    assert resent.status is None
    assert resent.result == user.user_id
    assert isinstance(resent.result, str)
    stored = await mail_running.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.confirmation == "pending"
    (msg,) = await mail_server.wait_for_async(1)
    assert msg["Subject"] == SUBJECT  # the settings of create are kept for the resend
    assert msg["From"] == SENDER
    assert (await open_page(link_in(msg, PATHS["confirm"]))).status == 200
    after = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert after.result.validated is True


async def test_resend_while_mail_still_fails_is_701_and_the_user_stays_failed(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    mail_server.refuse()
    user = await create_pending(mail_client)

    resent = await mail_client.users.resendConfirmation({"user_id": user.user_id})

    assert resent.status == 701
    stored = await mail_running.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.confirmation == "failed"


async def test_resend_makes_the_old_link_stop_working(
    mail_config: ServerConfig, mail_server: MailServer
) -> None:
    config = attrs.evolve(mail_config, resend_interval_seconds=0)
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        user = await create_pending(core)
        resent = await core.users.resend_confirmation({"user_id": user.user_id})
        assert resent.error is None, resent
        first, second = await mail_server.wait_for_async(2)
        old, new = link_in(first, PATHS["confirm"]), link_in(second, PATHS["confirm"])
        assert old != new

        assert (await open_page(old)).status == 404
        assert (await open_page(new)).status == 200
        login = await core.users.login({"username": "Donna", "password": PASSWORD})
        assert login.result.validated is True


async def test_second_resend_within_the_interval_is_829_with_retry_after(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    user = await create_pending(mail_client)

    # The mail of create does not count: a resend right after it goes.
    first = await mail_client.users.resend_confirmation({"user_id": user.user_id})
    assert first.error is None, first
    second = await mail_client.users.resend_confirmation({"user_id": user.user_id})
    status, body, headers = await raw_call(
        mail_running, "resend_confirmation", {"user_id": user.user_id}
    )

    assert second.status == 829
    assert second.result is None
    assert status == 429
    assert body["status"] == 829
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert len(mail_server.received) == 2  # create's and the first resend's
    # The link of the resend that went still works.
    assert (await open_page(link_in(mail_server.messages[1], PATHS["confirm"]))).status == 200


async def test_of_ten_concurrent_resends_one_goes_and_nine_are_829(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    user = await create_pending(mail_client)

    events = await asyncio.gather(
        *(mail_client.users.resend_confirmation({"user_id": user.user_id}) for _ in range(10))
    )

    assert sorted(event.status or 0 for event in events) == [0] + [829] * 9
    (msg,) = (await mail_server.wait_for_async(2))[1:]
    assert (await open_page(link_in(msg, PATHS["confirm"]))).status == 200
    assert len(mail_server.received) == 2


async def test_resends_from_one_client_address_are_limited_across_users(
    mail_config: ServerConfig, mail_server: MailServer
) -> None:
    """One address cannot mail every pending user of a game: resends (and resets) from it
    share mails_per_address_per_minute, whoever they are for."""
    config = attrs.evolve(mail_config, resend_interval_seconds=0, mails_per_address_per_minute=2)
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        users = [
            await create_pending(core, username=name, email=f"{name}@home.example")
            for name in ("ann", "bob", "cy")
        ]
        events = [await core.users.resend_confirmation({"user_id": user.user_id}) for user in users]
        reset = await core.users.send_password_reset({"email": "ann@home.example"})

    assert [event.status for event in events] == [None, None, 829]
    assert reset.status == 829
    assert len(mail_server.received) == 5  # three from create, two resends


async def test_resend_for_a_user_awaiting_no_confirmation_is_614(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    plain = await mail_client.users.create(
        {"username": "Tina", "password": PASSWORD, "email": "tina@home.example"}
    )
    assert plain.error is None, plain
    confirmed = await create_pending(mail_client)
    assert (await open_page(link_in(mail_server.messages[0], PATHS["confirm"]))).status == 200

    for user_id in (plain.result.user_id, confirmed.user_id, "no-such-user-id"):
        event = await mail_client.users.resend_confirmation({"user_id": user_id})
        assert event.status == 614, (user_id, event)
    assert len(mail_server.received) == 1


# --- Refused before anything exists ---------------------------------------------------------


async def test_confirmation_without_an_email_is_804_and_creates_nothing(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    params = {"username": "Donna", "password": PASSWORD, "confirmation": CONFIRMATION}

    event = await mail_client.users.create(params)

    assert event.status == 804
    assert "email" in (event.error or "")
    assert await no_user(mail_running)
    assert mail_server.received == []
    later = await mail_client.users.create({"username": "Donna", "password": PASSWORD})
    assert later.error is None, later


async def test_mail_not_configured_is_702_and_creates_nothing(
    server_config: ServerConfig, mail_server: MailServer
) -> None:
    assert server_config.smtp_url is None
    assert server_config.mail_outbox is None
    async with (
        await start_server(server_config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        event = await core.users.create(DONNA)
        assert event.status == 702
        assert await no_user(mail_running)
        later = await core.users.create({**DONNA, "confirmation": None})
        assert later.error is None, later
    assert mail_server.received == []


async def test_outbox_gets_an_eml_whose_link_confirms(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    outbox = tmp_path / "out"
    config = attrs.evolve(server_config, mail_outbox=str(outbox))
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        user = await create_pending(core)
        assert user.confirmation == "pending"
        (eml,) = outbox.glob("*.eml")
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert msg["To"] == "donna@home.example"
        assert msg["Subject"] == SUBJECT
        assert (await open_page(link_in(msg, PATHS["confirm"]))).status == 200
        login = await core.users.login({"username": "Donna", "password": PASSWORD})
        assert login.result.validated is True


# --- Templates -------------------------------------------------------------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "welcome.txt").write_text(
        "Hi {{ name }}, player {{ number }}!\nConfirm here: {* confirm_link *}\n"
    )
    (directory / "nolink.txt").write_text("Hi {{ name }}, there is no link here.\n")
    (tmp_path / "x").write_text("outside {* confirm_link *}\n")
    return directory


@pytest.fixture
async def templated(
    mail_config: ServerConfig, templates: Path
) -> AsyncIterator[tuple[RunningServer, corelogin.Core]]:
    config = attrs.evolve(mail_config, templates_dir=str(templates))
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        yield mail_running, core


async def test_custom_template_is_filled_from_tpl_keys_and_carries_the_link(
    templated: tuple[RunningServer, corelogin.Core], mail_server: MailServer
) -> None:
    mail_running, core = templated
    confirmation = {
        **CONFIRMATION,
        "email_tpl": "welcome.txt",
        "tpl_keys": {"name": "Donna", "number": 7},
    }

    user = await create_pending(core, confirmation=confirmation)

    (msg,) = mail_server.messages
    text = text_of(msg)
    assert text.startswith("Hi Donna, player 7!\nConfirm here: ")
    link = link_in(msg, PATHS["confirm"])
    assert (await open_page(link)).status == 200
    stored = await mail_running.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.active is True


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/b", "nope.txt", "nolink.txt"],
    ids=["dotdot", "absolute", "subdir", "unknown", "without-link"],
)
async def test_unusable_template_is_801_and_nothing_is_sent_or_created(
    templated: tuple[RunningServer, corelogin.Core], mail_server: MailServer, name: str
) -> None:
    mail_running, core = templated
    confirmation = {**CONFIRMATION, "email_tpl": name, "tpl_keys": {"name": "Donna"}}

    event = await core.users.create({**DONNA, "confirmation": confirmation})
    status, body, _ = await raw_call(
        mail_running, "create", {**DONNA, "confirmation": confirmation}
    )

    assert event.status == 801
    assert (status, body["status"]) == (400, 801)
    assert mail_server.received == []
    assert await no_user(mail_running)


async def test_custom_template_on_a_server_without_templates_dir_is_801(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    event = await mail_client.users.create(
        {**DONNA, "confirmation": {**CONFIRMATION, "email_tpl": "welcome.txt"}}
    )

    assert event.status == 801
    assert mail_server.received == []
    assert await no_user(mail_running)


async def test_template_key_not_given_is_804_and_creates_nothing(
    templated: tuple[RunningServer, corelogin.Core], mail_server: MailServer
) -> None:
    mail_running, core = templated
    confirmation = {**CONFIRMATION, "email_tpl": "welcome.txt", "tpl_keys": {"name": "Donna"}}

    event = await core.users.create({**DONNA, "confirmation": confirmation})

    assert event.status == 804
    assert "number" in (event.error or "")
    assert mail_server.received == []
    assert await no_user(mail_running)


# --- Header injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "confirmation",
    [
        {"from_email": SENDER, "subject": "Hi\r\nBcc: evil@x.org"},
        {"from_email": SENDER, "subject": "Hi\nBcc: evil@x.org"},
        {"from_email": SENDER, "subject": "Hi\rBcc: evil@x.org"},
        {"from_email": SENDER, "subject": "Hi\x85Bcc: evil@x.org"},
        {"from_email": SENDER, "subject": "Hi\u2028Bcc: evil@x.org"},
        {"from_email": "noreply@game.example\r\nBcc: evil@x.org", "subject": SUBJECT},
        {"from_email": "noreply@game.example\nBcc: evil@x.org", "subject": SUBJECT},
        {"from_email": "noreply@game.example,evil@x.org", "subject": SUBJECT},
    ],
    ids=[
        "subject-crlf",
        "subject-lf",
        "subject-cr",
        "subject-nel",
        "subject-line-separator",
        "from-crlf",
        "from-lf",
        "from-two-addresses",
    ],
)
async def test_header_injection_is_refused_by_sdk_and_server_and_nothing_is_sent(
    mail_client: corelogin.Core,
    mail_running: RunningServer,
    mail_server: MailServer,
    confirmation: dict[str, str],
) -> None:
    params = {**DONNA, "confirmation": confirmation}

    event = await mail_client.users.create(params)
    status, body, _ = await raw_call(mail_running, "create", params)

    assert event.status in (801, 704), event
    assert status == 400
    assert body["status"] in (801, 704)
    assert mail_server.received == []
    assert await no_user(mail_running)


# --- The codes and the user's life -----------------------------------------------------------


async def test_the_code_is_kept_only_as_its_hash(
    mail_client: corelogin.Core, mail_server: MailServer, mail_config: ServerConfig
) -> None:
    await create_pending(mail_client)
    code = link_in(mail_server.messages[0], PATHS["confirm"]).partition("?code=")[2]
    assert len(code) >= 43  # 32 random bytes, URL-safe base64

    db = sqlite3.connect(db_path(mail_config))
    try:
        rows = db.execute("SELECT * FROM codes").fetchall()
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert len(rows) == 1
    assert code not in dump
    assert hashlib.sha256(code.encode()).hexdigest() in dump


async def test_a_taken_username_is_600_and_no_mail_is_sent(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    await create_pending(mail_client)
    mail_server.clear()

    event = await mail_client.users.create({**DONNA, "email": "other@home.example"})

    assert event.status == 600
    assert mail_server.received == []


async def test_link_of_a_deleted_user_is_404(
    mail_config: ServerConfig, mail_server: MailServer
) -> None:
    config = attrs.evolve(mail_config, admin_key="test-admin-key")
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY, admin_key="test-admin-key") as core,
    ):
        user = await create_pending(core)
        link = link_in(mail_server.messages[0], PATHS["confirm"])
        deleted = await core.users.delete({"user_id": user.user_id})
        assert deleted.result == 1

        page = await open_page(link)

        assert page.status == 404
        assert await no_user(mail_running)


async def test_changing_the_email_of_a_pending_user_voids_the_old_link(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    user = await create_pending(mail_client)
    old_link = link_in(mail_server.messages[0], PATHS["confirm"])
    login = await mail_client.users.login({"username": "Donna", "password": PASSWORD})
    assert login.error is None, login
    changed = await mail_client.users.update(
        {
            "user_id": user.user_id,
            "update": {"email": "someone.else@x.example", "current_password": PASSWORD},
        }
    )
    assert changed.error is None, changed

    page = await open_page(old_link)

    # The new address was never mailed: the old address's link must not confirm it.
    assert page.status in (404, 410)
    stored = await mail_running.store.get_user("default", user.user_id)
    assert stored is not None
    assert (stored.email, stored.active, stored.confirmation) == (
        "someone.else@x.example",
        False,
        "pending",
    )
    resent = await mail_client.users.resend_confirmation({"user_id": user.user_id})
    assert resent.error is None, resent
    old, second = await mail_server.wait_for_async(2)
    assert old["To"] == "donna@home.example"
    assert second["To"] == "someone.else@x.example"
    assert (await open_page(link_in(second, PATHS["confirm"]))).status == 200


async def test_an_address_the_mail_cannot_carry_is_704_and_creates_nothing(
    mail_client: corelogin.Core, mail_running: RunningServer, mail_server: MailServer
) -> None:
    event = await mail_client.users.create({**DONNA, "email": "tina@[home.example"})

    assert event.status in (704, None), event  # None: the address is taken and mailed
    if event.status is None:
        assert len(mail_server.received) == 1
    else:
        assert mail_server.received == []
        assert await no_user(mail_running)
