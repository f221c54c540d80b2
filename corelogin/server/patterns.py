"""The server's rules about text, as regular expressions for the OpenAPI document.

Each pattern is made from the server's own Unicode tables, with classes that read alike in
Python and in ECMA-262; tests/test_server_schemathesis.py checks every one against the function
that enforces its rule, for every kind of character.
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["email_pattern", "new_username_patterns", "printable_pattern"]

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
        # corelogin.wire.fields._check_email_shape: whitespace, C0 controls and DEL.
        "email_bad": sorted({*space, *range(32), 127}),
        # corelogin.server.policy.check_new_username: nothing of Unicode category C.
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
    """corelogin.wire.fields._check_email_shape: something before the last @; after it, a
    domain with a dot that is neither its first nor its last character once dots at its ends are
    set aside; no whitespace or control character anywhere."""
    bad = _class(_scan()["email_bad"])
    domain = f"[^{bad}@]*[^{bad}@.]\\.+[^{bad}@.][^{bad}@]*"
    return f"^[^{bad}]+@{domain}$"
