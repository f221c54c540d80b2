"""The OpenAPI document of the server, built from the wire contract so that it cannot drift.

Served at ``GET /openapi.json``; a copy is kept in the repository as ``docs/openapi.json``
(``corelogin openapi > docs/openapi.json`` writes it, and a test checks that it is current).
"""

from __future__ import annotations

import json
from typing import Any

from corelogin import __version__
from corelogin.wire import (
    APP_KEY_HEADER,
    CREATE_FIELDS,
    LOGIN_FIELDS,
    PATHS,
    SCOPE,
    Field,
    Status,
    http_status_for,
)

__all__ = ["document", "dumps"]


def _schema(field: Field) -> dict[str, Any]:
    if field.kind is dict:
        return {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": f"a flat table: string, finite number or boolean values, at most "
            f"{field.max_bytes} bytes as JSON",
        }
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if field.max_chars is not None:
        schema["maxLength"] = field.max_chars
    if field.max_bytes is not None:
        schema["description"] = f"at most {field.max_bytes} bytes of UTF-8, never trimmed"
    return schema


def _body(fields: tuple[Field, ...], **extra: Any) -> dict[str, Any]:
    properties = {field.name: _schema(field) for field in (SCOPE, *fields)}
    required = [field.name for field in (SCOPE, *fields) if field.required]
    schema = {"type": "object", "properties": properties, "required": required, **extra}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: Status) -> dict[str, Any]:
    """One response per HTTP status, listing the corelogin codes it carries."""
    by_http: dict[int, list[Status]] = {}
    for code in (Status.BAD_APP_KEY, Status.WRONG_TYPE, *codes, Status.SERVER_ERROR):
        by_http.setdefault(http_status_for(code), []).append(code)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses: dict[str, Any] = {
        str(http): {
            "description": "; ".join(f"{int(c)} {c.name.lower().replace('_', ' ')}" for c in cs),
            "content": error,
        }
        for http, cs in sorted(by_http.items())
    }
    responses["415"] = {"description": "801 the body is not application/json", "content": error}
    if Status.TOO_MANY_REQUESTS in codes:
        responses["429"]["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return dict(sorted(responses.items()))


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_EXTRA = {"type": ["object", "null"]}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint."""
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
                    "responses": {"200": _ok(_object({"result": {"const": "ok"}}), "ready")},
                }
            },
            PATHS["openapi"]: {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _ok({"type": "object"}, "the OpenAPI document")},
                }
            },
            PATHS["create"]: {
                "post": {
                    "summary": "users.create: register a user",
                    "security": secured,
                    "requestBody": _body(CREATE_FIELDS),
                    "responses": {
                        "200": _ok(
                            _object({"result": {"$ref": "#/components/schemas/User"}}), "created"
                        ),
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
                    "requestBody": _body(
                        LOGIN_FIELDS,
                        oneOf=[{"required": ["username"]}, {"required": ["email"]}],
                    ),
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
