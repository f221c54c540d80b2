"""The session a `Core` holds after a login, and its saved copy (``stay_logged_in``).

`SessionState` is the part of `Core` that keeps them: the token sent with calls about a user,
the login object, the session store, and what happens when the server says a session is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from corelogin.models import Event, Login, User
from corelogin.request import Request, failure_event
from corelogin.sessionstore import FileSessionStore, MemorySessionStore, SessionStore
from corelogin.wire import ADMIN_KEY_HEADER, Status

if TYPE_CHECKING:
    from corelogin.users import CallSpec

__all__ = ["DEFAULT_STORE", "SessionState"]

log = logging.getLogger("corelogin")


class _Default:
    """The default session store (a file): a sentinel, since None means memory only."""

    def __repr__(self) -> str:
        return "<the default file store>"


DEFAULT_STORE: Final = _Default()


class SessionState:
    """Mixed into `Core`: the session it holds, and its saved copy."""

    _admin_key: str | None
    _session_token: str | None
    _logged_in_user: Login | None
    _session_store: SessionStore
    _session_key: str

    def _init_session(self, server: str, scope: str, store: SessionStore | _Default | None) -> None:
        self._session_token = None
        self._logged_in_user = None
        # Where stay_logged_in keeps the session: a file in the user's data directory unless
        # told otherwise; None keeps it in memory only.
        if isinstance(store, _Default):
            store = FileSessionStore()
        self._session_store = MemorySessionStore() if store is None else store
        self._session_key = f"{server.rstrip('/')}|{scope}"

    def _call(
        self,
        spec: CallSpec,
        params: Any,
        listener: Any,
        *,
        token: str | None = None,
        local: Callable[[Request[Any]], Event[Any]] | None = None,
    ) -> Request[Any]:
        raise NotImplementedError  # the Core's

    def _credentials(self) -> dict[str, str]:
        """What a call about a user is sent with: the session, and the admin key if any."""
        headers = {}
        if self._session_token is not None:
            headers["Authorization"] = f"Bearer {self._session_token}"
        if self._admin_key is not None:
            headers[ADMIN_KEY_HEADER] = self._admin_key
        return headers

    def _open_session(self, login: Login, session: Any, stay: Any = False) -> None:
        token = session.get("token") if isinstance(session, Mapping) else None
        self._session_token = token if isinstance(token, str) else None
        self._logged_in_user = login
        if stay is True and self._session_token is not None:
            self._store_call("save", self._session_token)

    def _restored(self, login: Login, token: str | None) -> None:
        self._session_token = token
        self._logged_in_user = login

    def _session_gone(self, request: Request[Any], token: str) -> None:
        """The server answered 609 for ``token``: if it is the session this Core holds (or
        has saved), forget it; the first call to find out also sends `session_expired`."""
        forgot = False
        if token == self._session_token:
            self._session_token = self._logged_in_user = None
            forgot = True
        if token == self._saved_token():
            self._store_call("clear")
            forgot = True
        request._session_expired = forgot

    # -- the session store -------------------------------------------------------------------

    def _saved_token(self) -> str | None:
        token = self._store_call("load")
        return token if isinstance(token, str) and token else None

    def _store_call(self, method: str, *args: str) -> Any:
        """A call of the session store; a store that fails is logged, never a crash (the
        session then lives in memory only)."""
        try:
            return getattr(self._session_store, method)(self._session_key, *args)
        except Exception:
            log.exception("the session store's %s() failed", method)
            return None

    def _session_call(self, spec: CallSpec, listener: Any, *, saved: bool) -> Request[Any]:
        """restore and is_valid_login: answered here when there is no session to send."""
        if spec.name == "restore":
            token = self._saved_token()
        else:
            token = self._session_token or self._saved_token()
        if token is not None:
            return self._call(spec, {}, listener, token=token)
        if spec.name == "restore":
            return self._call(
                spec,
                {},
                listener,
                local=lambda r: failure_event(r, Status.MISSING, "no saved login to restore"),
            )
        return self._call(
            spec, {}, listener, local=lambda r: Event(r.name, result=False, tt=r._elapsed_ms())
        )

    def _logout(self, spec: CallSpec, listener: Any, *, clear_saved: bool) -> Request[Any]:
        """Local state goes at once; the server is then told, if there is a session to end."""
        token = self._session_token
        saved = self._saved_token()
        self._session_token = self._logged_in_user = None
        if clear_saved and saved is not None:
            self._store_call("clear")
        token = token or (saved if clear_saved else None)
        if token is None:
            return self._call(
                spec, {}, listener, local=lambda r: Event(r.name, result=True, tt=r._elapsed_ms())
            )
        return self._call(spec, {}, listener, token=token)

    def _user_changed(self, call: str, user_id: str, result: Any) -> None:
        """Keep ``logged_in_user`` true to what the server answered about that user."""
        login = self._logged_in_user
        if login is None or login.user_id != user_id:
            return
        if call == "delete" and result == 1:  # its sessions went with it
            self._session_token = self._logged_in_user = None
        elif isinstance(result, User):
            self._logged_in_user = login.updated(result)
