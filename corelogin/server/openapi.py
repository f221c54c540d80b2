"""The OpenAPI document of the server, built from the wire contract so that it cannot drift.

Served at ``GET /openapi.json``; a copy is kept in the repository as ``docs/openapi.json``
(``corelogin openapi > docs/openapi.json`` writes it, and a test checks that it is current).
tests/test_server_schemathesis.py runs schemathesis against the served document, so that what it
says about every request and answer is checked against the real server.

Rules that are code rather than numbers (the shape of an email, what a new username may hold)
are written as patterns (`corelogin.server.patterns`); that test also checks each pattern
against the function that enforces its rule, character by character.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import attrs

from corelogin import __version__
from corelogin.server.config import ServerConfig
from corelogin.server.patterns import email_pattern, new_username_patterns, printable_pattern
from corelogin.wire import (
    ADMIN_KEY_HEADER,
    APP_KEY_HEADER,
    CALLS,
    MAX_BODY_BYTES,
    PATHS,
    SCOPE,
    UNIX_TIME_MAX,
    Call,
    Field,
    Status,
    http_status_for,
)

__all__ = ["DEFAULT_MIN_PASSWORD_LENGTH", "document", "dumps"]


def _config_default(name: str) -> Any:
    """A ServerConfig field's own default, so that the document cannot disagree with it."""
    return getattr(attrs.fields(ServerConfig), name).default


DEFAULT_MIN_PASSWORD_LENGTH: int = _config_default("min_password_length")


_EXTRA_VALUES: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _schema(field: Field, *, nullable: bool, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema of one parameter, from its declaration in corelogin.wire, with the rule of its
    policy (more keywords and a ``description`` of them) from ``rules``. An optional parameter
    may also be null: the server takes null as not given."""
    schema: dict[str, Any]
    notes: list[str] = []
    rule = rules.get(field.policy) if field.policy else None
    if field.kind is bool:
        schema = {"type": "boolean"}
    elif field.kind is int:
        schema = {"type": "integer", "minimum": 0, "maximum": UNIX_TIME_MAX}
        notes.append("unix seconds")
    elif field.fields is not None:
        properties, required = _properties(field.fields, rules)
        schema = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        notes.append("a table of these keys only (801 otherwise)")
    elif field.kind is dict:
        values = _EXTRA_VALUES
        if field.nulls:
            values = {"type": [*_EXTRA_VALUES["type"], "null"]}
            notes.append("null removes that key")
        schema = {"type": "object", "additionalProperties": values}
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
        if field.address:
            schema["pattern"] = email_pattern()
        if field.pattern is not None:
            schema["pattern"] = f"^{field.pattern}$"
            notes.append("plain ASCII: dot-atoms, @, a domain with a dot (704 otherwise)")
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


def _properties(
    fields: tuple[Field, ...], rules: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    properties = {
        field.name: _schema(field, nullable=not field.required, rules=rules) for field in fields
    }
    return properties, [field.name for field in fields if field.required]


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
        if code not in by_http.get(http_status_for(code), []):
            by_http.setdefault(http_status_for(code), []).append(code)
    # A body that is not application/json: 801 on a 415.
    by_http[415] = [Status.WRONG_TYPE]
    # The database is unavailable (down, restarting): 810 on a 503, to be tried again.
    by_http.setdefault(503, []).append(Status.SERVER_ERROR)
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


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_EXTRA = {"type": ["object", "null"], "additionalProperties": _EXTRA_VALUES}
_RESULTS: dict[str, dict[str, Any]] = {
    "User": {"$ref": "#/components/schemas/User"},
    "Login": {"$ref": "#/components/schemas/Login"},
    "integer": {"enum": [0, 1]},
    "OAuth": {"$ref": "#/components/schemas/Provider"},
    "AuthToken": {
        "type": "object",
        "properties": {"auth_token": {"type": "string"}, "expires": {"type": "integer"}},
        "required": ["auth_token", "expires"],
    },
    "UserId": {
        "type": "object",
        "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"],
    },
    "Expired": {
        "type": "object",
        "properties": {"expired": {"type": "boolean"}},
        "required": ["expired"],
    },
    "string": _STR,
    "boolean": {"const": True},
    "flag": {"type": "boolean"},
}
_EXAMPLES: dict[str, dict[str, Any]] = {
    "create": {"username": "Donna", "password": "correct horse", "email": "donna@example.com"},
    "login": {"username": "Donna", "password": "correct horse"},
    "get": {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a"},
    "update": {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a", "update": {"extra": {"a": 1}}},
    "delete": {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a"},
    "resend_confirmation": {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a"},
    "send_password_reset": {"email": "donna@example.com"},
    "reset_password": {"code": "x" * 43, "password": "a new passphrase"},
    "login_with_auth_token": {"auth_token": "x" * 43},
    "create_auth_token": {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a"},
    "restore": {},
    "is_valid_login": {},
    "logout": {},
    **{
        name: {"user_id": "4f0e2a4c-9d7b-4c5e-8f6a-3b2d1c0e9f8a", "provider": "facebook", **more}
        for name, more in (
            ("add_auth_provider", {"auth": {"client_id": "fb-id-1234abcd", "access_token": "…"}}),
            ("get_auth_provider", {}),
            ("update_auth_provider", {"update": {"access_token": "…"}}),
            ("remove_auth_provider", {}),
            ("access_token_expired", {}),
            ("update_token_expiry", {"expiry": 1893456000}),
        )
    },
}
# Who may make each kind of call (DESIGN.md §2), as alternatives.
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "app": [{"appKey": []}],
    "user": [{"appKey": [], "session": []}, {"appKey": [], "adminKey": []}],
    "admin": [{"appKey": [], "adminKey": []}],
    "session": [{"appKey": [], "session": []}],
}


def _operation(call: Call, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    properties, required = _properties((SCOPE, *call.fields), rules)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if call.one_of:  # exactly one of them (null counts as not given)
        schema["oneOf"] = [
            {"required": [name], "properties": {name: {"type": "string"}}} for name in call.one_of
        ]
    if call.needs:  # null counts as not given
        schema["allOf"] = [
            {
                "if": {"required": [given], "properties": {given: {"not": {"type": "null"}}}},
                "then": {"required": [needed], "properties": {needed: {"type": "string"}}},
            }
            for given, needed in call.needs
        ]
    result: dict[str, Any] = {"result": _RESULTS[call.result]}
    description = call.summary
    if call.result == "Login":
        result["session"] = _object({"token": _STR, "expires": {"type": "integer"}})
        description += "; the session token is for the SDK, not for display"
    ok = _ok(_object(result), description)
    if call.name == "create":
        ok["links"] = {
            "LogIn": {
                "operationId": "users.login",
                "description": "the new user logs in",
                "requestBody": {
                    name: f"$request.body#/{name}" for name in ("scope", "username", "password")
                },
            }
        }
    return {
        "summary": f"users.{call.name} ({call.lua_name} in Lua): {call.summary}",
        "security": _SECURITY[call.access],
        "operationId": f"users.{call.name}",
        "requestBody": {
            "required": True,
            "description": _STRICT_JSON,
            "content": {
                "application/json": {
                    "schema": schema,
                    "example": {"scope": "default", **_EXAMPLES[call.name]},
                }
            },
        },
        "responses": {"200": ok, **_errors(*call.codes)},
    }


def _page(description: str, statuses: dict[int, str]) -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "summary": description,
        "responses": {
            str(status): {"description": text, "content": html} for status, text in statuses.items()
        },
    }


_CODE_QUERY = [
    {
        "name": "code",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "the code of the mailed link",
    }
]
_LINK_STATES = {404: "unknown link", 409: "already used", 410: "expired"}


def _pages() -> dict[str, Any]:
    form = {
        "type": "object",
        "properties": {"code": _STR, "password": _STR, "again": _STR},
    }
    return {
        PATHS["confirm"]: {
            "get": {
                **_page(
                    "The confirmation link of a new user's mail: confirms on opening",
                    {200: "confirmed", **_LINK_STATES},
                ),
                "operationId": "confirm",
                "parameters": _CODE_QUERY,
            }
        },
        PATHS["reset"]: {
            "get": {
                **_page(
                    "The password reset link: a form (opening it does not use the code up)",
                    {200: "the form", **_LINK_STATES},
                ),
                "operationId": "reset.form",
                "parameters": _CODE_QUERY,
            },
            "post": {
                **_page(
                    "The form's answer: sets the new password and uses the code up",
                    {
                        200: "password changed",
                        400: "the form again, with what was wrong",
                        **_LINK_STATES,
                        415: "not a form",
                        429: "the server is busy: the form again, and Retry-After",
                    },
                ),
                "operationId": "reset.submit",
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                },
            },
        },
    }


def document(
    min_password_length: int = DEFAULT_MIN_PASSWORD_LENGTH, templates: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint, for a server whose new passwords must have at
    least ``min_password_length`` characters and whose confirmation templates are
    ``templates``."""
    login = _object(
        {
            "active": _BOOL,
            "confirmation": {"enum": ["pending", "failed", None]},
            "email": _STR_OR_NULL,
            "group": _STR_OR_NULL,
            "extra": _EXTRA,
            "oauth": {"oneOf": [{"$ref": "#/components/schemas/Provider"}, {"type": "null"}]},
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
            "confirmation": {"enum": ["pending", "failed", None]},
            "created": {"type": "integer", "description": "unix seconds"},
        }
    )
    no_other, no_space_first, no_space_last = new_username_patterns()
    rules: dict[str, dict[str, Any]] = {
        "new_username": {
            "pattern": no_other,
            "allOf": [{"pattern": no_space_first}, {"pattern": no_space_last}],
            "description": "no control, format, private-use or unassigned characters (Unicode "
            f"category C, as of Unicode {unicodedata.unidata_version}) and no whitespace at "
            "either end (601 otherwise)",
        },
        "template": {
            "enum": [*templates, None],
            "description": "one of this server's templates (its templates_dir), or null for "
            "the default (801 otherwise)",
        },
        "new_password": {
            "minLength": min_password_length,
            "description": f"at least {min_password_length} characters, and not among the most "
            "common passwords when the server sets min_password_score (601 otherwise)",
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "corelogin reference server", "version": __version__},
        "components": {
            "securitySchemes": {
                "appKey": {"type": "apiKey", "in": "header", "name": APP_KEY_HEADER},
                "adminKey": {"type": "apiKey", "in": "header", "name": ADMIN_KEY_HEADER},
                "session": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": _object({"error": _STR, "status": {"type": "integer"}}),
                "Login": login,
                "Provider": _object(
                    {
                        "provider": _STR,
                        "client_id": _STR,
                        "access_token": _STR_OR_NULL,
                        "access_token_expiry": {"type": ["integer", "null"]},
                        "access_token_expired": _BOOL,
                    }
                ),
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
                        **{
                            http: {
                                "description": f"{what}: " + _describe([Status.SERVER_ERROR]),
                                "content": {
                                    "application/json": {
                                        "schema": _error_schema([Status.SERVER_ERROR])
                                    }
                                },
                            }
                            for http, what in (("500", "failed"), ("503", "the store is down"))
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
            **{call.path: {"post": _operation(call, rules)} for call in CALLS.values()},
            **_pages(),
        },
    }


def dumps() -> str:
    """The document as the repository keeps it."""
    return json.dumps(document(), indent=2) + "\n"
