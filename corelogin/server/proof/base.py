"""What every proof policy shares: the identity a proof establishes, and its refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Identity", "ProofRejected"]


class ProofRejected(Exception):
    """The proof did not hold. The message says why, for the server's log only: the caller
    always gets the same 625 and message, whatever the reason."""


@attrs.frozen
class Identity:
    """Who a proof says the caller is at the provider: ``subject`` is the provider's id for
    them (the ``client_id`` of a link); ``claims`` what else it vouched for (an id_token's
    ``email``, ``email_verified``, ``preferred_username``)."""

    subject: str
    claims: Mapping[str, Any] = attrs.field(factory=dict)
