"""What a page says after a form was answered: ``?done=ACTION`` or ``?error=CODE``.

The query holds a key, never the text: a link of anyone's making can then only pick one of
these sentences, not put words of its own on the operator's screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

__all__ = ["DONE", "ERRORS", "flash"]

DONE: Final[Mapping[str, str]] = {
    "activate": "The user was activated.",
    "deactivate": "The user was deactivated and their sessions ended.",
    "group": "The group was changed.",
    "resend": "The confirmation mail was sent again.",
    "unlock": "The user's username and email were unlocked.",
    "revoke_sessions": "All the user's sessions were ended.",
    "revoke_session": "The session was ended.",
    "delete": "The user was deleted.",
    "signed_out": "You are signed out.",
}

ERRORS: Final[Mapping[str, str]] = {
    "signed_out": "Your session has ended: sign in again.",
    "not_pending": "This user is not awaiting a confirmation (or has no email to send it to).",
    "resent_recently": "A confirmation was sent a moment ago: try again in a minute.",
    "no_mail": "Mail is not configured on this server (smtp_url or mail_outbox).",
    "mail_failed": "The confirmation mail could not be sent: see the server's log.",
    "no_session": "That session has ended already.",
    "bad_group": "A group is 1 to 64 printable characters.",
    "gone": "The user no longer exists.",
}


def flash(request: web.Request) -> dict[str, str] | None:
    """The message the query asks for, if it is one of ours."""
    error = ERRORS.get(request.query.get("error", ""))
    if error is not None:
        return {"kind": "error", "text": error}
    done = DONE.get(request.query.get("done", ""))
    return None if done is None else {"kind": "done", "text": done}
