"""Schemathesis against the served OpenAPI document: the gate that keeps it true to the server.

The real reference server runs on a thread; its own ``GET /openapi.json`` is loaded and every
operation in it goes through schemathesis's engine (the one behind ``schemathesis run``) with all
of its checks, in every phase (examples, coverage, fuzzing, stateful), with valid and invalid
inputs alike. The run is seeded and bounded, so it is the same run every time; any server error,
answer that breaks the document, undocumented status, refused valid input or accepted invalid
input fails it. A new endpoint is covered as soon as the document lists it.

The rules that the document writes as regular expressions (new usernames, email addresses, scope
and group) are also checked here against the server's own code, for every Unicode character.

(The engine is used rather than ``schemathesis.pytest.from_fixture``: in schemathesis 4.32 that
reads ``Node._nodeid``, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import contextlib
import itertools
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.core.transport import Response
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import CheckNode

from corelogin.server import ServerConfig, ServerThread
from corelogin.server.openapi import document
from corelogin.server.policy import check_new_username
from corelogin.wire import (
    APP_KEY_HEADER,
    CREATE_FIELDS,
    PATHS,
    ApiError,
    check_params,
    check_scope,
)
from tests.conftest import pg_schema
from tests.helpers import APP_KEY, server_config_for

SEED = 20240607
# Per operation and phase; the coverage phase adds its own boundary and negative cases.
MAX_EXAMPLES = 50

# Every check schemathesis has that can apply to this API; the run fails if one never ran.
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
}


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {APP_KEY_HEADER: APP_KEY},
            "workers": 1,
            "continue-on-failure": True,
            "generation": {
                "mode": "all",  # valid and invalid inputs
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "checks": {
                "enabled": True,
                # schemathesis's list, plus 413: a parameter longer than its maxLength is
                # refused with 806 on a 413 (corelogin.wire.http_status_for), as documented.
                "negative_data_rejection": {
                    "expected-statuses": [
                        *(400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429),
                        "5xx",
                    ],
                },
            },
            # A reset code or an auth token is valid only if the server made it, and the form's
            # two passwords must be equal, which no schema can say: a well-formed code is
            # refused with 615 on a 400, and the form comes back with a 400 (the exceptions).
            "operations": [
                {
                    "include-operation-id": operation,
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", 400, 401, 403, 404, 409, 429],
                        },
                    },
                }
                for operation in (
                    "users.reset_password",
                    "users.login_with_auth_token",
                    "reset.submit",
                )
            ],
        }
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server on each backend: what PostgreSQL cannot store (a NUL, say) must be refused
    as bad input there too, never become a server error."""
    folder = tmp_path_factory.mktemp("schemathesis")
    # The document's password rule is the length only when the server does not judge
    # guessability (min_password_score 0): a generated "00000000" is then a valid password.
    config = attrs.evolve(
        server_config_for(folder / "corelogin.sqlite3"),
        min_password_score=0,
        mail_outbox=str(folder / "outbox"),
    )
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            dsn = request.getfixturevalue("pg_dsn")
            config = attrs.evolve(config, db=stack.enter_context(pg_schema(dsn)))
        with ServerThread(config) as server:
            yield server.url


def _describe(check: CheckNode, response: Response | None) -> str:
    assert check.failure_info is not None
    failure = check.failure_info.failure
    answer = "no response"
    if response is not None:
        answer = f"HTTP {response.status_code} {response.content[:300]!r}"
    return (
        f"{check.name}: {failure.title}\n  {failure.message}\n  -> {answer}\n"
        f"  {check.failure_info.code_sample}"
    )


def test_the_server_keeps_its_document(server_url: str) -> None:
    schema = schemathesis.openapi.from_url(server_url + PATHS["openapi"], config=_config())
    started = time.monotonic()
    cases: Counter[str] = Counter()
    answered: Counter[tuple[str, int]] = Counter()
    checks_run: set[str] = set()
    failures: list[str] = []
    errors: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            cases[event.phase.value] += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    path = interaction.request.uri.removeprefix(server_url)
                    answered[path, interaction.response.status_code] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    checks_run.add(check.name)
                    if check.failure_info is not None:
                        failures.append(_describe(check, recorder.find_response(case_id=case_id)))
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(event))
        elif isinstance(event, events.EngineFinished):
            errors.extend(f"after the run: {failure.title}" for failure in event.failures)
    summary = (
        f"schemathesis {schemathesis.__version__}, seed {SEED}: {sum(cases.values())} cases "
        f"({', '.join(f'{n} {phase}' for phase, n in sorted(cases.items()))}) "
        f"in {time.monotonic() - started:.1f} s"
    )
    print(summary)
    assert not errors, "\n".join(errors)
    assert not failures, "\n\n".join(sorted(set(failures)))
    # The gate is only as good as what it ran: every phase, every check, and real successes
    # (so that the schemas of the answers that matter most were checked too).
    assert set(cases) == {"examples", "coverage", "fuzzing", "stateful"}, summary
    assert all(cases.values()), summary
    assert checks_run >= CHECKS, CHECKS - checks_run
    for path in (PATHS["create"], PATHS["login"], PATHS["health"]):
        assert answered[path, 200], (path, answered)


# --- the patterns of the document against the server's own checks ---------------------------


def _request_properties(path: str) -> dict[str, Any]:
    body = document()["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    properties: dict[str, Any] = body["schema"]["properties"]
    return properties


def _accepted(check: Callable[[str], object], text: str) -> bool:
    try:
        check(text)
    except ApiError:
        return False
    return True


def _new_username(text: str) -> None:
    CREATE_FIELDS[0].check(text)  # type, empty, length
    check_new_username(text)


def _email(text: str) -> None:
    check_params("login", {"email": text, "password": "pw"})


def _judges() -> list[tuple[str, Any, Callable[[str], object], Callable[[str], list[str]]]]:
    create, login = _request_properties(PATHS["create"]), _request_properties(PATHS["login"])
    group = CREATE_FIELDS[3]
    assert group.name == "group"
    return [
        ("username", create["username"], _new_username, lambda c: [c, f"a{c}b"]),
        ("email", login["email"], _email, lambda c: [f"a{c}b@example.org"]),
        ("scope", create["scope"], check_scope, lambda c: [c]),
        ("group", create["group"], group.check, lambda c: [c]),
    ]


def _characters() -> list[str]:
    """Every character of the BMP; beyond it (where a character's kind changes only with its
    category) every one whose category differs from that of its neighbour. Not surrogates: they
    are not text, and JSON read from a UTF-8 body cannot hold one."""
    chars = [chr(cp) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    previous = unicodedata.category(chr(0xFFFF))
    for cp in range(0x10000, 0x110000):
        category = unicodedata.category(chr(cp))
        if category != previous:
            chars += [chr(cp - 1), chr(cp)]
        previous = category
    return chars


def test_every_kind_of_character_is_judged_as_the_server_does() -> None:
    """Each pattern's character classes hold exactly the characters the server takes."""
    chars = _characters()
    wrong: list[str] = []
    for name, schema, check, texts in _judges():
        valid = jsonschema_rs.validator_for(schema).is_valid
        for char in chars:
            for text in texts(char):
                if valid(text) != _accepted(check, text):
                    wrong.append(f"{name} {text!r}: document {valid(text)}")
    assert not wrong, f"{len(wrong)} disagreements, e.g. {wrong[:10]}"


def test_every_short_shape_is_judged_as_the_server_does() -> None:
    """The structure of each rule (where an @, a dot or a space may stand), on every string of
    up to 7 of those characters and a letter."""
    shapes = ["".join(chars) for n in range(8) for chars in itertools.product("a.@ ", repeat=n)]
    wrong = [
        f"{name} {text!r}"
        for name, schema, check, _ in _judges()
        for valid in [jsonschema_rs.validator_for(schema).is_valid]
        for text in shapes
        if valid(text) != _accepted(check, text)
    ]
    assert not wrong, f"{len(wrong)} disagreements, e.g. {wrong[:10]}"


_TRICKY = st.sampled_from(
    [
        *"a.@ -\t\n\r",
        *"\x00\x1f\x7f\x85\xa0\u200b\u2028\u3000\u0378\ue000\ufeff\xe9\U0001f600\U000e0001",
    ]
)


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(st.lists(st.text(_TRICKY, max_size=10), min_size=1, max_size=4).map("".join))
def test_whole_values_are_judged_as_the_server_does(text: str) -> None:
    """Mixtures of the characters each rule singles out, and of others."""
    for name, schema, check, _ in _judges():
        valid = jsonschema_rs.validator_for(schema).is_valid(text)
        assert valid == _accepted(check, text), (name, text, valid)


def test_the_password_minimum_is_the_servers() -> None:
    def minimum(doc: dict[str, Any]) -> int:
        body = doc["paths"][PATHS["create"]]["post"]["requestBody"]
        return int(
            body["content"]["application/json"]["schema"]["properties"]["password"]["minLength"]
        )

    assert minimum(document()) == ServerConfig(app_key=APP_KEY).min_password_length
    assert minimum(document(min_password_length=12)) == 12
