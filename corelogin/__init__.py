"""corelogin: a login SDK in the Lua/Corona callback style, with its own reference server.

core = corelogin.init(server="http://127.0.0.1:10001", key="APP_KEY")
core.users.login({"username": "Donna", "password": "..."}, on_login)
"""

from __future__ import annotations

from corelogin import signals
from corelogin.client import Core, init
from corelogin.models import AuthToken, Event, Expired, Login, OAuth, User, UserId
from corelogin.request import Listener, Request
from corelogin.sessionstore import FileSessionStore, MemorySessionStore, SessionStore
from corelogin.users import NULL
from corelogin.wire import APPLE, FACEBOOK, GOOGLE, OPENUDID, Status

__version__ = "0.1.0"

__all__ = [
    "APPLE",
    "FACEBOOK",
    "GOOGLE",
    "NULL",
    "OPENUDID",
    "AuthToken",
    "Core",
    "Event",
    "Expired",
    "FileSessionStore",
    "Listener",
    "Login",
    "MemorySessionStore",
    "OAuth",
    "Request",
    "SessionStore",
    "Status",
    "User",
    "UserId",
    "__version__",
    "init",
    "signals",
]
