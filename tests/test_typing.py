"""Typed Events: the SDK's annotations follow the call table, and mypy catches user mistakes."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

import corelogin
import corelogin.users
from corelogin.users import Users
from corelogin.wire import CALLS

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e .[dev])")

ROOT = Path(__file__).resolve().parent.parent

# The Python type of each result kind of the call table.
RESULT_TYPES: dict[str, object] = {
    "User": corelogin.User,
    "Login": corelogin.Login,
    "integer": int,
    "string": str,
    "boolean": bool,
    "flag": bool,
    "OAuth": corelogin.OAuth,
    "UserId": corelogin.UserId,
    "Expired": corelogin.Expired,
    "AuthToken": corelogin.AuthToken,
}

MISTAKES = """\
import corelogin
from corelogin import Event, Login, User

core = corelogin.init("http://127.0.0.1:1", "key")


def on_login(evt: Event[Login]) -> None:
    if evt.error:
        return
    print(evt.result.user_idd)  # line 10: a typo


def on_user(evt: Event[User]) -> None:
    print(evt.result.created)


def on_anything(evt: Event) -> None:  # a bare Event is Event[Any]: still fine
    print(evt.result)


core.users.login({}, on_login)
core.users.login({}, on_user)  # line 22: the listener of another call
core.users.login({}, on_anything)
core.users.login({}, lambda evt: print(evt.result.usernam))  # line 24: inferred, a typo


async def main() -> None:
    created = await core.users.create({})
    print(created.result.validated)  # line 29: a User has no "validated"
    token = await core.users.create_auth_token({})
    print(token.result["expire"])  # line 31: no such key
    valid: bool = (await core.users.is_valid_login()).result
    print(valid, core.users.login({}).result(1).result.user_id)
"""


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_method_is_typed_with_its_calls_result(name: str) -> None:
    # users.py imports these two for the type checker only.
    names = {**vars(corelogin.users), "Listener": corelogin.Listener, "Request": corelogin.Request}
    hints = typing.get_type_hints(getattr(Users, name), names)
    expected = RESULT_TYPES[CALLS[name].result]
    assert hints["return"] == corelogin.Request[expected]  # type: ignore[valid-type]
    listener = hints["listener"]
    assert corelogin.Listener[expected] in typing.get_args(listener)  # type: ignore[valid-type]


def test_mypy_strict_accepts_the_typed_sample_and_catches_each_mistake(tmp_path: Path) -> None:
    mistakes = tmp_path / "mistakes.py"
    mistakes.write_text(MISTAKES)
    out, err, _status = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            "--no-pretty",
            str(ROOT / "samples" / "typed_client.py"),
            str(mistakes),
        ]
    )
    assert err == ""
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not [line for line in errors if "typed_client.py" in line], out
    found = {int(line.split(":")[1]): line.split(": error: ")[1] for line in errors}
    assert set(found) == {10, 22, 24, 29, 31}, out
    assert '"Login" has no attribute "user_idd"' in found[10]
    assert '"Callable[[Event[User]], None]"' in found[22]
    assert '"Login" has no attribute "usernam"' in found[24]
    assert '"User" has no attribute "validated"' in found[29]
    assert '"AuthToken" has no key "expire"' in found[31]
