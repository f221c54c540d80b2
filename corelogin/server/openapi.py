"""The OpenAPI document of the server, built from the wire contract so that it cannot drift.

Served at ``GET /openapi.json``; a copy is kept in the repository as ``docs/openapi.json``
(``corelogin openapi > docs/openapi.json`` writes it, and a test checks that it is current).
tests/test_server_schemathesis.py runs schemathesis against the served document, so that what it
says about every request and answer is checked against the real server.

Rules that are code rather than numbers (the shape of an email, what a new username may hold)
are written here as patterns; that test also checks each pattern against the function that
enforces its rule, character by character.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from typing import Any

import attrs

from corelogin import __version__
from corelogin.server.config import ServerConfig
from corelogin.wire import (
    APP_KEY_HEADER,
    CREATE_FIELDS,
    LOGIN_FIELDS,
    MAX_BODY_BYTES,
    PATHS,
    SCOPE,
    Field,
    Status,
    http_status_for,
)

__all__ = [
    "DEFAULT_MIN_PASSWORD_LENGTH",
    "document",
    "dumps",
    "email_pattern",
    "new_username_patterns",
    "printable_pattern",
]


def _config_default(name: str) -> Any:
    """A ServerConfig field's own default, so that the document cannot disagree with it."""
    return getattr(attrs.fields(ServerConfig), name).default


DEFAULT_MIN_PASSWORD_LENGTH: int = _config_default("min_password_length")


_SPECIAL_IN_CLASS = frozenset("\\]^-[")


def _class(code_points: list[int]) -> str:
    """The inside of a regex character class holding exactly ``code_points`` (ascending), as
    ranges of the characters themselves: no \\u or \\x escapes, whose spelling beyond the BMP
    differs between ECMA-262 and Python, so that both read the class alike."""

    def char(cp: int) -> str:
        return "\\" + chr(cp) if chr(cp) in _SPECIAL_IN_CLASS else chr(cp)

    out: list[str] = []
    i = 0
    while i < len(code_points):
        j = i
        while j + 1 < len(code_points) and code_points[j + 1] == code_points[j] + 1:
            j += 1
        first, last = code_points[i], code_points[j]
        if first == last:
            out.append(char(first))
        elif last == first + 1:
            out.append(char(first) + char(last))
        else:
            out.append(f"{char(first)}-{char(last)}")
        i = j + 1
    return "".join(out)


@functools.cache
def _scan() -> dict[str, list[int]]:
    """The code points of each kind the rules below name, from the server's own Unicode tables.
    Surrogates are left out: they are not text (the server refuses them with 801), and a pattern
    holding one could not be handed to a validator that works in UTF-8."""
    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    category = [unicodedata.category(chr(cp)) for cp in points]
    space = [cp for cp in points if chr(cp).isspace()]
    return {
        "space": space,
        # corelogin.wire._check_email_shape: whitespace, C0 controls and DEL.
        "email_bad": sorted({*space, *range(32), 127}),
        # corelogin.server.users._check_new_username: nothing of Unicode category C.
        "text": [cp for cp, cat in zip(points, category, strict=True) if cat[0] != "C"],
        # corelogin.wire.Field.check for printable fields: no category Cc.
        "control": [cp for cp, cat in zip(points, category, strict=True) if cat == "Cc"],
    }


@functools.cache
def printable_pattern() -> str:
    """Scope and group: no control character (category Cc)."""
    return f"^[^{_class(_scan()['control'])}]*$"


@functools.cache
def new_username_patterns() -> tuple[str, str, str]:
    """A new username: nothing of category C (control, format, private use or unassigned in the
    server's Unicode), and no whitespace as its first or last character. The first pattern
    lists the characters allowed rather than those refused: generators draw from it far faster
    (and the list is shorter)."""
    kinds = _scan()
    space = _class(kinds["space"])
    return f"^[{_class(kinds['text'])}]*$", f"^[^{space}]", f"[^{space}]$"


@functools.cache
def email_pattern() -> str:
    """corelogin.wire._check_email_shape: something before the last @; after it, a domain with a
    dot that is neither its first nor its last character once dots at its ends are set aside;
    no whitespace or control character anywhere."""
    bad = _class(_scan()["email_bad"])
    domain = f"[^{bad}@]*[^{bad}@.]\\.+[^{bad}@.][^{bad}@]*"
    return f"^[^{bad}]+@{domain}$"


_EXTRA_VALUES = {"type": ["string", "number", "boolean"]}


def _schema(field: Field, *, nullable: bool, rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema of one parameter, from its declaration in corelogin.wire, with ``rule`` (more
    keywords and a ``description`` of them) added for a call that checks more. An optional
    parameter may also be null: the server takes null as not given."""
    schema: dict[str, Any]
    notes: list[str] = []
    if field.kind is dict:
        schema = {"type": "object", "additionalProperties": _EXTRA_VALUES}
        notes.append(
            "a flat table: string keys; string, finite number or boolean values (801 otherwise)"
        )
        notes.append(f"at most {field.max_bytes} bytes as JSON (806 otherwise)")
    else:
        schema = {"type": "string", "minLength": 1}
        if field.max_chars is not None:
            schema["maxLength"] = field.max_chars
        if field.max_bytes is not None:
            # A character is at least one byte: the byte limit bounds the length too.
            schema.setdefault("maxLength", field.max_bytes)
            notes.append(f"at most {field.max_bytes} bytes of UTF-8 (806 otherwise), never trimmed")
        if field.printable:
            schema["pattern"] = printable_pattern()
            notes.append("no control characters (801 otherwise)")
        if field.name == "email":
            schema["pattern"] = email_pattern()
            notes.append(
                "an address: something, @, then a domain with a dot inside it; no whitespace or "
                "control characters (704 otherwise)"
            )
    if rule is not None:
        schema.update({key: value for key, value in rule.items() if key != "description"})
        notes.append(rule["description"])
    if nullable:
        schema["type"] = [schema["type"], "null"]
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


_STRICT_JSON = (
    f"A JSON object (Content-Type application/json, 415 otherwise) of at most {MAX_BODY_BYTES} "
    "bytes (413 otherwise). Strict JSON: no NaN or Infinity, no number too large to be finite, "
    "no key twice (801 otherwise). Keys not listed are ignored."
)


def _body(
    fields: tuple[Field, ...],
    example: dict[str, Any],
    rules: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    rules = rules or {}
    properties = {
        field.name: _schema(field, nullable=not field.required, rule=rules.get(field.name))
        for field in (SCOPE, *fields)
    }
    required = [field.name for field in (SCOPE, *fields) if field.required]
    schema = {"type": "object", "properties": properties, "required": required, **extra}
    return {
        "required": True,
        "description": _STRICT_JSON,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_schema(codes: list[Status]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"properties": {"status": {"enum": [int(c) for c in codes]}}},
        ]
    }


def _describe(codes: list[Status]) -> str:
    return "; ".join(f"{int(c)} {c.name.lower().replace('_', ' ')}" for c in codes)


def _errors(*codes: Status) -> dict[str, Any]:
    """One response per HTTP status, listing the corelogin codes it carries."""
    by_http: dict[int, list[Status]] = {}
    for code in (Status.BAD_APP_KEY, Status.WRONG_TYPE, *codes, Status.SERVER_ERROR):
        by_http.setdefault(http_status_for(code), []).append(code)
    # A body that is not application/json: 801 on a 415.
    by_http[415] = [Status.WRONG_TYPE]
    responses: dict[str, Any] = {
        str(http): {
            "description": _describe(cs),
            "content": {"application/json": {"schema": _error_schema(cs)}},
        }
        for http, cs in by_http.items()
    }
    responses["415"]["description"] = "801 the body is not application/json"
    if Status.TOO_MANY_REQUESTS in codes:
        responses["429"]["headers"] = {
            "Retry-After": {
                "description": "seconds to wait",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return dict(sorted(responses.items()))


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


_EXAMPLE = {"scope": "default", "username": "Donna", "password": "correct horse"}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_EXTRA = {"type": ["object", "null"], "additionalProperties": _EXTRA_VALUES}


def document(min_password_length: int = DEFAULT_MIN_PASSWORD_LENGTH) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint, for a server whose new passwords must have at
    least ``min_password_length`` characters."""
    login = _object(
        {
            "active": _BOOL,
            "confirmation": {"enum": ["pending", "failed", None]},
            "email": _STR_OR_NULL,
            "group": _STR_OR_NULL,
            "extra": _EXTRA,
            "oauth": {"type": ["object", "null"]},
            "scope": _STR,
            "user_id": _STR,
            "username": _STR,
            "validated": _BOOL,
        }
    )
    user = _object(
        {
            "user_id": _STR,
            "username": _STR,
            "email": _STR_OR_NULL,
            "scope": _STR,
            "group": _STR_OR_NULL,
            "extra": _EXTRA,
            "active": _BOOL,
            "confirmation": _STR_OR_NULL,
            "created": {"type": "integer", "description": "unix seconds"},
        }
    )
    session = _object({"token": _STR, "expires": {"type": "integer"}})
    secured: list[dict[str, list[str]]] = [{"appKey": []}]
    no_other, no_space_first, no_space_last = new_username_patterns()
    new_username = {
        "pattern": no_other,
        "allOf": [{"pattern": no_space_first}, {"pattern": no_space_last}],
        "description": "no control, format, private-use or unassigned characters (Unicode "
        f"category C, as of Unicode {unicodedata.unidata_version}) and no whitespace at either "
        "end (601 otherwise)",
    }
    new_password = {
        "minLength": min_password_length,
        "description": f"at least {min_password_length} characters (601 otherwise)",
    }
    # Login takes exactly one of username and email (null counts as not given).
    one_of = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("username", "email")
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "corelogin reference server", "version": __version__},
        "components": {
            "securitySchemes": {
                "appKey": {"type": "apiKey", "in": "header", "name": APP_KEY_HEADER}
            },
            "schemas": {
                "Error": _object({"error": _STR, "status": {"type": "integer"}}),
                "Login": login,
                "User": user,
            },
        },
        "paths": {
            PATHS["health"]: {
                "get": {
                    "summary": "Ready check",
                    "operationId": "health",
                    "responses": {
                        "200": _ok(_object({"result": {"const": "ok"}}), "ready"),
                        "500": {
                            "description": _describe([Status.SERVER_ERROR]),
                            "content": {
                                "application/json": {"schema": _error_schema([Status.SERVER_ERROR])}
                            },
                        },
                    },
                }
            },
            PATHS["openapi"]: {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _ok({"type": "object"}, "the OpenAPI document")},
                }
            },
            PATHS["create"]: {
                "post": {
                    "summary": "users.create: register a user",
                    "security": secured,
                    "operationId": "users.create",
                    "requestBody": _body(
                        CREATE_FIELDS,
                        {**_EXAMPLE, "email": "donna@example.com"},
                        {"username": new_username, "password": new_password},
                    ),
                    "responses": {
                        "200": {
                            **_ok(
                                _object({"result": {"$ref": "#/components/schemas/User"}}),
                                "created",
                            ),
                            "links": {
                                "LogIn": {
                                    "operationId": "users.login",
                                    "description": "the new user logs in",
                                    "requestBody": {
                                        name: f"$request.body#/{name}"
                                        for name in ("scope", "username", "password")
                                    },
                                }
                            },
                        },
                        **_errors(
                            Status.USER_EXISTS,
                            Status.USER_NOT_CREATED,
                            Status.EMAIL_INVALID,
                            Status.MISSING,
                            Status.EMPTY,
                            Status.TOO_LONG,
                            Status.TOO_MANY_REQUESTS,
                        ),
                    },
                }
            },
            PATHS["login"]: {
                "post": {
                    "summary": "users.login: by username or by email, with the password",
                    "security": secured,
                    "operationId": "users.login",
                    "requestBody": _body(LOGIN_FIELDS, _EXAMPLE, oneOf=one_of),
                    "responses": {
                        "200": _ok(
                            _object(
                                {
                                    "result": {"$ref": "#/components/schemas/Login"},
                                    "session": session,
                                }
                            ),
                            "logged in; the session token is for the SDK, not for display",
                        ),
                        **_errors(
                            Status.INVALID_CREDENTIALS,
                            Status.EMAIL_INVALID,
                            Status.MISSING,
                            Status.EMPTY,
                            Status.TOO_LONG,
                            Status.TOO_MANY_REQUESTS,
                        ),
                    },
                }
            },
        },
    }


def dumps() -> str:
    """The document as the repository keeps it."""
    return json.dumps(document(), indent=2) + "\n"
