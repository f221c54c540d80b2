"""OAuth providers: Coronium's OAuth API (link, read, update, unlink a provider; token expiry)
and the login through a linked provider, with proof (docs/oauth.md).

Each provider the server accepts is a ``[providers.NAME]`` table with a proof policy
(corelogin.server.proof.policies). A provider not configured gets 626 for every call that names
it. A failed proof is 625 with one message whatever the reason, so that nothing tells whether an
identity is linked.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from corelogin.server.access import Caller, found, not_disabled, target
from corelogin.server.context import PROVERS, STORE
from corelogin.server.envelope import ok
from corelogin.server.policy import check_new_username
from corelogin.server.proof.base import Identity, ProofRejected
from corelogin.server.proof.policies import Prover, TokenProver
from corelogin.server.sessions import open_session, provider_json
from corelogin.server.store import (
    DuplicateLinkError,
    DuplicateUserError,
    ProviderLink,
    UserRecord,
)
from corelogin.wire import USERNAME_MAX_CHARS, ApiError, Status

__all__ = ["HANDLERS", "provider_login"]

log = logging.getLogger("corelogin.server")

PROOF_REJECTED: Final = "the provider's proof was rejected"
NOT_LINKED: Final = "that provider is not linked"
LINKED: Final = "that provider is linked already, to this user or this identity to another"
# The group of users a device or an id_token signed up.
SIGNUP_GROUPS: Final = {"device": "device", "oidc": None}


def _prover(request: web.Request, provider: str) -> Prover:
    prover = request.app[PROVERS].get(provider)
    if prover is None:
        raise ApiError(Status.PROVIDER_NOT_ENABLED, f"the provider {provider!r} is not enabled")
    return prover


async def _proven(
    prover: Prover, client_id: str, access_token: str | None, id_token: str | None
) -> Identity:
    try:
        return await prover.prove(client_id, access_token, id_token)
    except ProofRejected as exc:
        log.info("%s proof rejected: %s", prover.name, exc)
        raise ApiError(Status.PROVIDER_PROOF_REJECTED, PROOF_REJECTED) from None


# -- login ---------------------------------------------------------------------------------


async def provider_login(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    """``login`` with ``provider``: the proof first (625), then the link (624, or a sign-up
    where the provider allows one)."""
    prover = _prover(request, params["provider"])
    store = request.app[STORE]
    key = prover.identity_key(params["client_id"])
    access_token, id_token = params.get("access_token"), params.get("id_token")
    if isinstance(prover, TokenProver):
        found_link = await store.find_link(caller.scope, prover.name, key)
        try:
            prover.check(None if found_link is None else found_link[1], access_token)
        except ProofRejected as exc:
            log.info("%s proof rejected: %s", prover.name, exc)
            raise ApiError(Status.PROVIDER_PROOF_REJECTED, PROOF_REJECTED) from None
    else:
        identity = await _proven(prover, params["client_id"], access_token, id_token)
        found_link = await store.find_link(caller.scope, prover.name, key)
        if found_link is None and prover.signup:
            found_link = await _sign_up(request, caller.scope, prover, key, identity)
    if found_link is None:
        raise ApiError(Status.PROVIDER_NOT_LINKED, NOT_LINKED)
    user, link = found_link
    if prover.config.policy == "introspect" and access_token != link.access_token:
        # the token that just proved the login is the one the app will use
        link = await store.update_link(user.user_id, prover.name, access_token=access_token) or link
    return await open_session(request, user, link)


async def _sign_up(
    request: web.Request, scope: str, prover: Prover, key: str, identity: Identity
) -> tuple[UserRecord, ProviderLink]:
    """A new user linked to a proven identity nobody has linked: a device, or an id_token's
    owner (named from the token, made unique; its email kept only if the token verified it).
    Tried in turn: the name with the email, the name alone, then made-up names."""
    email = _verified_email(identity.claims)
    base = _username_base(prover, identity.claims, email)
    now = time.time()
    tries = [(base, email), (base, None)] if email else [(base, None)]
    tries += [(_unique(base), None) for _ in range(3)]
    for username, address in tries:
        user = UserRecord(
            user_id=str(uuid.uuid4()),
            scope=scope,
            username=username,
            email=address,
            password_hash="",  # no password yet: this user logs in through the provider
            active=True,
            confirmation=None,
            group=SIGNUP_GROUPS.get(prover.config.policy),
            extra=None,
            created=int(now),
        )
        link = ProviderLink(user.user_id, scope, prover.name, key, created=now)
        try:
            return await request.app[STORE].signup_with_link(user, link)
        except DuplicateUserError:  # the name (or the address) is taken: the next try
            continue
    raise ApiError(Status.USER_EXISTS, "no free username for this sign-up")


def _verified_email(claims: Mapping[str, Any]) -> str | None:
    """The token's email when the provider says it verified it (Apple says so as a string)."""
    email = claims.get("email")
    verified = claims.get("email_verified") in (True, "true")
    return email if verified and isinstance(email, str) and email else None


def _username_base(prover: Prover, claims: Mapping[str, Any], email: str | None) -> str:
    """The name the provider gives (never an address it did not verify), if it is a name a
    user could choose; else one made up."""
    for value in (claims.get("preferred_username"), email):
        if isinstance(value, str):
            name = value[:USERNAME_MAX_CHARS].strip()
            try:
                check_new_username(name)
            except ApiError:
                continue
            if name:
                return name
    return f"{prover.name}-{secrets.token_hex(6)}"


def _unique(base: str) -> str:
    return f"{base[: USERNAME_MAX_CHARS - 7].rstrip()}-{secrets.token_hex(3)}"


# -- Coronium's OAuth API --------------------------------------------------------------------


async def _link_target(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> tuple[UserRecord, Prover]:
    prover = _prover(request, params["provider"])
    user = found(await target(request, caller, params["user_id"]))
    return user, prover


async def _linked(request: web.Request, user: UserRecord, provider: str) -> ProviderLink:
    link = await request.app[STORE].get_link(user.user_id, provider)
    if link is None:
        raise ApiError(Status.PROVIDER_NOT_LINKED, NOT_LINKED)
    return link


async def _identity_key(prover: Prover, auth: dict[str, Any]) -> str:
    """The identity to keep for ``auth``, proven first where the policy can prove it."""
    client_id = auth["client_id"]
    if prover.config.policy in ("oidc", "introspect"):
        await _proven(prover, client_id, auth.get("access_token"), auth.get("id_token"))
    return prover.identity_key(client_id)


async def add_auth_provider(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    not_disabled(caller, user)
    auth = params["auth"]
    link = ProviderLink(
        user_id=user.user_id,
        scope=user.scope,
        provider=prover.name,
        client_id=await _identity_key(prover, auth),
        access_token=auth.get("access_token"),
        access_token_expiry=auth.get("access_token_expiry"),
        created=time.time(),
    )
    try:
        await request.app[STORE].add_link(link)
    except DuplicateLinkError:
        raise ApiError(Status.PROVIDER_LINKED, LINKED) from None
    except LookupError:  # the user was deleted meanwhile: 610 for a session, 604 for admin
        found(await target(request, caller, user.user_id))
    return ok(provider_json(link))


async def get_auth_provider(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    return ok(provider_json(await _linked(request, user, prover.name)))


async def update_auth_provider(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    not_disabled(caller, user)
    await _linked(request, user, prover.name)
    update = params["update"]
    changes = {
        name: update[name] for name in ("access_token", "access_token_expiry") if name in update
    }
    if "client_id" in update:
        changes["client_id"] = await _identity_key(prover, update)
    return await _changed(request, user, prover, changes)


async def _changed(
    request: web.Request, user: UserRecord, prover: Prover, changes: dict[str, Any]
) -> web.Response:
    try:
        link = await request.app[STORE].update_link(user.user_id, prover.name, **changes)
    except DuplicateLinkError:
        raise ApiError(Status.PROVIDER_LINKED, LINKED) from None
    if link is None:  # unlinked meanwhile
        raise ApiError(Status.PROVIDER_NOT_LINKED, NOT_LINKED)
    return ok(provider_json(link))


async def remove_auth_provider(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    not_disabled(caller, user)
    if not await request.app[STORE].remove_link(user.user_id, prover.name):
        raise ApiError(Status.PROVIDER_NOT_LINKED, NOT_LINKED)
    return ok({"user_id": user.user_id})


async def access_token_expired(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    link = await _linked(request, user, prover.name)
    return ok({"expired": provider_json(link)["access_token_expired"]})


async def update_token_expiry(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user, prover = await _link_target(request, caller, params)
    not_disabled(caller, user)
    changes: dict[str, Any] = {"access_token_expiry": params["expiry"]}
    if "token" in params:
        changes["access_token"] = params["token"]
    return await _changed(request, user, prover, changes)


HANDLERS: Final = {
    "add_auth_provider": add_auth_provider,
    "get_auth_provider": get_auth_provider,
    "update_auth_provider": update_auth_provider,
    "remove_auth_provider": remove_auth_provider,
    "access_token_expired": access_token_expired,
    "update_token_expiry": update_token_expiry,
}
