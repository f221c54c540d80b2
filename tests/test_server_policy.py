"""corelogin.server.policy (issue 8): new passwords must be long enough and not among the most
guessable (zxcvbn); checked by create, update and reset_password, never trimmed or truncated."""

from __future__ import annotations

import urllib.parse
from typing import Any

import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.policy import check_new_password
from corelogin.wire import PASSWORD_MAX_BYTES, PATHS, ApiError, Status
from tests.helpers import APP_KEY, PASSWORD
from tests.mailserver import MailServer, link_in

CONFIG = ServerConfig(app_key=APP_KEY)
COMMON = ["password", "12345678", "abcd1234", "qwertyuiop", "password1"]
PASSPHRASES = ["correct horse battery", "purple monkey dishwasher", "Tr0ub4dor&3"]
TOO_EASY = "too easy to guess"


async def refused(password: str, config: ServerConfig = CONFIG, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await check_new_password(password, config, **kwargs)
    assert caught.value.status == Status.USER_NOT_CREATED
    assert caught.value.http_status == 400
    return caught.value


# --- check_new_password ----------------------------------------------------------------------


@pytest.mark.parametrize("password", COMMON)
async def test_common_passwords_are_601_too_easy_to_guess(password: str) -> None:
    error = await refused(password)

    assert TOO_EASY in error.message
    assert repr(password) not in error.message  # the reason, never the password itself


@pytest.mark.parametrize("password", PASSPHRASES)
async def test_passphrases_pass(password: str) -> None:
    await check_new_password(password, CONFIG, inputs=("Donna", "donna@home.example"))


async def test_the_reason_names_what_makes_it_guessable() -> None:
    error = await refused("qwertyuiop")

    assert "common password" in error.message


async def test_a_name_and_a_year_scores_above_the_minimum_and_passes() -> None:
    # zxcvbn warns that a name is easy to guess, but scores "Donna2024!" 2 (of 4): above the
    # default minimum of 1, so it is taken, with or without the username among the inputs.
    await check_new_password("Donna2024!", CONFIG, inputs=("Donna", None))
    await check_new_password("Donna2024!", CONFIG)
    # A stricter server refuses it, naming the reason zxcvbn gives.
    error = await refused("Donna2024!", attrs.evolve(CONFIG, min_password_score=3))
    assert "names" in error.message.lower()


@pytest.mark.parametrize(
    "password",
    ["Donna_the_Player", "donna.player@home.example"],
    ids=["the-username", "the-email"],
)
async def test_the_users_own_name_or_address_is_too_easy_to_guess(password: str) -> None:
    inputs = ("Donna_the_Player", "donna.player@home.example")

    await check_new_password(password, CONFIG)  # strong enough for a stranger
    error = await refused(password, inputs=inputs)
    assert TOO_EASY in error.message


async def test_min_password_score_zero_turns_the_check_off() -> None:
    config = attrs.evolve(CONFIG, min_password_score=0)

    for password in COMMON:
        await check_new_password(password, config)
    error = await refused("passwor", config)  # the length still counts
    assert "at least 8 characters" in error.message


async def test_min_password_length_applies_before_the_score() -> None:
    config = attrs.evolve(CONFIG, min_password_length=12)

    await check_new_password("correct horse", config)  # 13
    error = await refused("Tr0ub4dor&3", config)  # 11, however strong
    assert "at least 12 characters" in error.message
    error = await refused("passwor", attrs.evolve(CONFIG, min_password_score=0))
    assert "at least 8 characters" in error.message


async def test_length_is_counted_in_characters_not_bytes() -> None:
    error = await refused("\u00e9" * 7)  # 14 bytes, 7 characters

    assert "at least 8 characters" in error.message


async def test_whitespace_is_not_trimmed_before_the_check() -> None:
    # Eight spaces are eight characters (nothing is trimmed), and a very guessable password.
    error = await refused(" " * 8)

    assert TOO_EASY in error.message


async def test_zxcvbn_judges_up_to_72_characters_and_longer_ones_pass() -> None:
    await refused("a" * 72)

    await check_new_password("a" * 73, CONFIG)
    await check_new_password("password" * 128, CONFIG)  # 1024 characters, not run by zxcvbn


# --- Through the SDK and the real server -----------------------------------------------------


async def create(core: corelogin.Core, password: str = PASSWORD, **params: Any) -> corelogin.Event:
    return await core.users.create({"username": "Donna", "password": password, **params})


async def login(core: corelogin.Core, password: str) -> corelogin.Event:
    return await core.users.login({"username": "Donna", "password": password})


@pytest.mark.parametrize("password", ["password", "abcd1234"])
async def test_create_with_a_common_password_is_601_and_creates_nothing(
    mail_client: corelogin.Core, mail_running: RunningServer, password: str
) -> None:
    event = await create(mail_client, password)

    assert event.status == 601
    assert TOO_EASY in (event.error or "")
    assert await mail_running.store.find_user("default", username="Donna") is None


async def test_create_with_the_username_as_password_is_601(mail_client: corelogin.Core) -> None:
    event = await mail_client.users.create(
        {"username": "Donna_the_Player", "password": "Donna_the_Player"}
    )

    assert event.status == 601
    assert TOO_EASY in (event.error or "")


async def test_update_to_a_common_or_own_password_is_601_and_keeps_the_old_one(
    mail_client: corelogin.Core,
) -> None:
    created = await create(mail_client, email="donna.player@home.example")
    assert created.error is None, created
    assert (await login(mail_client, PASSWORD)).error is None

    for password in ("qwertyuiop", "donna.player@home.example"):
        event = await mail_client.users.update(
            {
                "user_id": created.result.user_id,
                "update": {"password": password, "current_password": PASSWORD},
            }
        )
        assert event.status == 601, (password, event)
        assert TOO_EASY in (event.error or "")
    assert (await login(mail_client, PASSWORD)).error is None


async def reset_code(core: corelogin.Core, mail_server: MailServer, email: str) -> str:
    sent = await core.users.send_password_reset({"email": email})
    assert sent.result is True, sent
    (msg,) = await mail_server.wait_for_async(1)
    query = urllib.parse.urlsplit(link_in(msg, PATHS["reset"])).query
    (code,) = urllib.parse.parse_qs(query)["code"]
    return code


async def test_reset_to_a_common_password_is_601_and_keeps_the_old_one(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    assert (await create(mail_client, email="donna@home.example")).error is None
    code = await reset_code(mail_client, mail_server, "donna@home.example")

    event = await mail_client.users.reset_password({"code": code, "password": "password1"})

    assert event.status == 601
    assert TOO_EASY in (event.error or "")
    assert (await login(mail_client, PASSWORD)).error is None


async def test_reset_to_the_users_own_address_is_601_as_in_update(
    mail_client: corelogin.Core, mail_server: MailServer
) -> None:
    email = "donna.player@home.example"
    assert (await create(mail_client, email=email)).error is None
    code = await reset_code(mail_client, mail_server, email)

    event = await mail_client.users.reset_password({"code": code, "password": email})

    assert event.status == 601


async def test_server_with_score_zero_takes_a_common_password_of_the_minimum_length(
    server_config: ServerConfig,
) -> None:
    config = attrs.evolve(server_config, min_password_score=0)
    async with (
        await start_server(config) as mail_running,
        corelogin.init(mail_running.url, APP_KEY) as core,
    ):
        short = await create(core, "passwor")
        taken = await create(core, "password")
        assert short.status == 601
        assert "at least 8 characters" in (short.error or "")
        assert taken.error is None, taken
        assert (await login(core, "password")).error is None


async def test_long_password_is_neither_scored_nor_truncated(mail_client: corelogin.Core) -> None:
    password = "a" * 72 + "b" * 28  # zxcvbn would score the first 72 characters 0

    created = await create(mail_client, password)
    assert created.error is None, created

    assert (await login(mail_client, password)).error is None
    assert (await login(mail_client, password[:72])).status == 603
    assert (await login(mail_client, password[:72] + "c" * 28)).status == 603
    assert (await login(mail_client, password + "b")).status == 603


async def test_password_of_the_largest_size_is_kept_whole(mail_client: corelogin.Core) -> None:
    password = "\u00e9" * (PASSWORD_MAX_BYTES // 2)  # 1024 bytes, 512 characters

    created = await create(mail_client, password)
    assert created.error is None, created

    assert (await login(mail_client, password)).error is None
    assert (await login(mail_client, password[:-1] + "e")).status == 603
    assert (await create(mail_client, password + "e")).status == 806
