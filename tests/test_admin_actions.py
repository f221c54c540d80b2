"""What an operator does to a user on the admin page (issue 12), seen through the SDK: each
action's effect, its audit entry, and a 403 that changes nothing for a form without its CSRF
token or from another site."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.admin.actions import ACTIONS
from corelogin.server.store import ProviderLink
from tests.adminpage import (
    OPERATOR,
    Browser,
    add_operator,
    both_backends,  # noqa: F401 (the server_config fixture: SQLite and PostgreSQL)
    signed_in,
)
from tests.helpers import APP_KEY, PASSWORD, make_user

CONFIRMATION = {"from_email": "noreply@game.example", "subject": "Confirm your address"}
_SESSION_ID = re.compile(r'name="session" value="([^"]+)"')


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
async def running(server_config: ServerConfig, outbox: Path) -> AsyncIterator[RunningServer]:
    """A server that mails into `outbox` and locks an identifier after 3 failed logins."""
    config = attrs.evolve(server_config, mail_outbox=str(outbox), lockout_threshold=3)
    async with await start_server(config) as server:
        yield server


@pytest.fixture
async def sdk(running: RunningServer) -> AsyncIterator[corelogin.Core]:
    async with corelogin.init(running.url, APP_KEY, session_store=None) as core:
        yield core


@pytest.fixture
async def operator(running: RunningServer) -> AsyncIterator[Browser]:
    browser = await signed_in(running)
    async with browser:
        yield browser


def mail_count(outbox: Path) -> int:
    return len(list(outbox.glob("*.eml")))


async def act(
    browser: Browser, user_id: str, action: str, scope: str = "default", **fields: str
) -> str:
    """Post the action's form as the user page has it; the page it redirects to."""
    path = f"/admin/users/{user_id}"
    csrf = await browser.csrf(path, scope=scope)
    answer = await browser.post(f"{path}/{action}", {"csrf": csrf, "scope": scope, **fields})
    assert answer.status == 303, answer.text
    return answer.location


async def login(core: corelogin.Core, username: str = "Donna") -> corelogin.Event:
    return await core.users.login({"username": username, "password": PASSWORD})


async def own_record_status(core: corelogin.Core) -> int | None:
    assert core.users.logged_in_user is not None
    return (await core.users.get({"user_id": core.users.logged_in_user.user_id})).status


async def audited(server: RunningServer, user_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (entry.operator, entry.action, entry.scope)
        for entry in await server.store.audit_log(target=user_id)
    ]


# -- each action ------------------------------------------------------------------------------


async def test_deactivate_then_activate(
    running: RunningServer, sdk: corelogin.Core, operator: Browser
) -> None:
    user = await make_user(sdk, "Donna")
    assert (await login(sdk)).error is None
    location = await act(operator, user.user_id, "deactivate")
    assert location == f"/admin/users/{user.user_id}?scope=default&done=deactivate"
    page = await operator.get(location)
    assert "The user was deactivated" in page.text
    assert await own_record_status(sdk) == 609  # the session ended
    deactivated = await login(sdk)
    assert deactivated.error is None
    assert deactivated.result.validated is False

    await act(operator, user.user_id, "activate")
    assert (await login(sdk)).result.validated is True
    assert await audited(running, user.user_id) == [
        (OPERATOR, "activate", "default"),
        (OPERATOR, "deactivate", "default"),
    ]


async def test_change_group(running: RunningServer, sdk: corelogin.Core, operator: Browser) -> None:
    user = await make_user(sdk, "Donna", group="players")
    await act(operator, user.user_id, "group", group="moderators")
    assert (await login(sdk)).result.group == "moderators"
    entry = (await running.store.audit_log(target=user.user_id))[0]
    assert (entry.action, entry.detail) == ("group", "'players' -> 'moderators'")
    # A group the API would refuse is refused here, changing nothing.
    refused = await act(operator, user.user_id, "group", group="x" * 65)
    assert refused.endswith("error=bad_group")
    assert (await login(sdk)).result.group == "moderators"
    assert len(await running.store.audit_log(target=user.user_id)) == 1


async def test_resend_confirmation(
    running: RunningServer, sdk: corelogin.Core, operator: Browser, outbox: Path
) -> None:
    user = await make_user(sdk, "Donna", email="donna@home.example", confirmation=CONFIRMATION)
    assert mail_count(outbox) == 1
    assert (await act(operator, user.user_id, "resend")).endswith("done=resend")
    assert mail_count(outbox) == 2
    again = await act(operator, user.user_id, "resend")  # within resend_interval_seconds
    assert again.endswith("error=resent_recently")
    page = await operator.get(again)
    assert "A confirmation was sent a moment ago" in page.text
    assert mail_count(outbox) == 2
    assert await audited(running, user.user_id) == [(OPERATOR, "resend", "default")]


async def test_unlock(running: RunningServer, sdk: corelogin.Core, operator: Browser) -> None:
    user = await make_user(sdk, "Donna")
    for _ in range(3):
        await sdk.users.login({"username": "Donna", "password": "not the password"})
    assert (await login(sdk)).status == 606
    page = await operator.get(f"/admin/users/{user.user_id}")
    assert "username: until" in page.text
    await act(operator, user.user_id, "unlock")
    assert (await login(sdk)).error is None


async def test_revoke_all_sessions(
    running: RunningServer, sdk: corelogin.Core, operator: Browser
) -> None:
    user = await make_user(sdk, "Donna")
    await login(sdk)
    await act(operator, user.user_id, "revoke_sessions")
    assert await own_record_status(sdk) == 609
    assert await audited(running, user.user_id) == [(OPERATOR, "revoke_sessions", "default")]


async def test_revoke_one_session(
    running: RunningServer, sdk: corelogin.Core, operator: Browser
) -> None:
    user = await make_user(sdk, "Donna")
    await login(sdk)
    async with corelogin.init(running.url, APP_KEY, session_store=None) as other:
        await login(other)
        page = await operator.get(f"/admin/users/{user.user_id}")
        ids = _SESSION_ID.findall(page.text)
        assert len(ids) == 2
        sessions = await running.store.user_sessions(user.user_id)
        for session in sessions:  # no token hash on the page
            assert session.token_hash not in page.text
        # The newest first: the other Core's.
        await act(operator, user.user_id, "revoke_session", session=ids[0])
        assert await own_record_status(other) == 609
        assert await own_record_status(sdk) is None
        gone = await act(operator, user.user_id, "revoke_session", session=ids[0])
        assert gone.endswith("error=no_session")
    assert [a for _, a, _ in await audited(running, user.user_id)] == ["revoke_session"]


async def test_delete_has_a_confirmation_step(
    running: RunningServer, sdk: corelogin.Core, operator: Browser
) -> None:
    user = await make_user(sdk, "Donna")
    page = await operator.get(f"/admin/users/{user.user_id}/delete", scope="default")
    assert page.status == 200
    assert "Delete for good" in page.text
    csrf = page.csrf()
    path = f"/admin/users/{user.user_id}/delete"
    # Without the confirmation page's field: back to that page, nothing deleted.
    unconfirmed = await operator.post(path, {"csrf": csrf, "scope": "default"})
    assert unconfirmed.status == 303
    assert unconfirmed.location == f"{path}?scope=default"
    assert (await login(sdk)).error is None
    answer = await operator.post(path, {"csrf": csrf, "scope": "default", "confirm": "yes"})
    assert (answer.status, answer.location) == (303, "/admin/users?scope=default&done=delete")
    assert (await login(sdk)).status == 603
    assert (await operator.get(f"/admin/users/{user.user_id}")).status == 404
    entry = (await running.store.audit_log(target=user.user_id))[0]
    assert (entry.operator, entry.action, entry.detail) == (OPERATOR, "delete", "username 'Donna'")


async def test_actions_on_a_user_of_another_scope_or_none_are_404(
    running: RunningServer, sdk: corelogin.Core, operator: Browser
) -> None:
    user = await make_user(sdk, "Donna")
    csrf = await operator.csrf()
    for user_id, scope in ((user.user_id, "other"), ("nobody", "default")):
        answer = await operator.post(
            f"/admin/users/{user_id}/deactivate", {"csrf": csrf, "scope": scope}
        )
        assert answer.status == 404
    unknown = await operator.post(
        f"/admin/users/{user.user_id}/promote", {"csrf": csrf, "scope": "default"}
    )
    assert unknown.status == 404
    assert (await login(sdk)).result.validated is True


# -- CSRF: 403, nothing changed ---------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("forgery", ["no token", "another operator's token", "another site"])
async def test_a_forged_action_is_refused_and_changes_nothing(
    running: RunningServer,
    sdk: corelogin.Core,
    operator: Browser,
    outbox: Path,
    action: str,
    forgery: str,
) -> None:
    user = await make_user(
        sdk, "Donna", email="donna@home.example", group="players", confirmation=CONFIRMATION
    )
    assert (await login(sdk)).error is None
    for _ in range(3):  # locked
        await sdk.users.login({"username": "Donna", "password": "not the password"})
    await running.store.add_link(
        ProviderLink(user.user_id, "default", "game", "donna-at-game", created=1.0)
    )
    before = await running.store.get_user("default", user.user_id)
    sessions = await running.store.user_sessions(user.user_id)
    page = await operator.get(f"/admin/users/{user.user_id}")
    session_id = _SESSION_ID.findall(page.text)[0]
    form = {"scope": "default", "group": "admins", "session": session_id, "confirm": "yes"}
    headers = {}
    if forgery == "another operator's token":
        await add_operator(running, "otto")
        async with Browser(running) as otto:
            await otto.sign_in("otto")
            form["csrf"] = await otto.csrf()
    elif forgery == "another site":
        form["csrf"] = page.csrf()
        headers = {"Origin": "https://evil.example"}

    answer = await operator.post(f"/admin/users/{user.user_id}/{action}", form, headers=headers)

    assert answer.status == 403
    assert "This form has expired" in answer.text
    assert await running.store.get_user("default", user.user_id) == before
    assert await running.store.user_sessions(user.user_id) == sessions
    assert await own_record_status(sdk) is None
    assert mail_count(outbox) == 1
    assert await running.store.locked_until("default", "donna", time.time()) is not None
    assert await audited(running, user.user_id) == []
