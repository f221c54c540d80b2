"""Mail bodies from templates.

Templates use Coronium Core's syntax for the link, ``{* confirm_link *}``, and jinja2's
``{{ key }}`` for the caller's ``tpl_keys``. The templates are the operator's (the defaults in
``templates/``, custom ones in ``templates_dir``); the keys are the caller's, so they are only
ever data: jinja2's sandbox renders them, never compiles them.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final

import attrs
import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from corelogin.wire import ApiError, Status

__all__ = ["DEFAULT_TEMPLATES", "Body", "check_template", "render", "templates"]

# The template each link gets when the caller names none (shipped in corelogin/server/templates).
DEFAULT_TEMPLATES: Final[Mapping[str, str]] = {
    "confirm_link": "confirm.txt",
    "reset_link": "reset.txt",
}

_LINK_SYNTAX: Final = re.compile(r"\{\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\*\}")
_UNDEFINED: Final = re.compile(r"^'([^']*)' is undefined$")
_BARE_NAME: Final = "email_tpl must be a bare file name from the server's templates directory"


# --- Templates -------------------------------------------------------------------------------


@attrs.frozen
class Body:
    """A rendered mail body: always text; html too when the template was ``.html``."""

    text: str
    html: str | None = None


def _environment(autoescape: bool) -> SandboxedEnvironment:
    # StrictUndefined: a key the template needs and the caller did not give is an error, not
    # a silent blank where, say, the user's name should be.
    return SandboxedEnvironment(
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


_TEXT_ENV: Final = _environment(autoescape=False)
_HTML_ENV: Final = _environment(autoescape=True)

# Compiled custom templates by (path, html, link name), kept while the file's (mtime, size,
# inode) stay the same: an operator who edits a template sees the change at the next mail.
_cache: dict[tuple[Path, bool, str], tuple[tuple[int, int, int], jinja2.Template]] = {}
_cache_lock = threading.Lock()


def _compile(source: str, *, html: bool, label: str) -> jinja2.Template:
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        return env.from_string(_LINK_SYNTAX.sub(r"{{ \1 }}", source))
    except jinja2.TemplateSyntaxError as exc:
        raise ApiError(
            Status.WRONG_TYPE, f"{label} is not a valid template: line {exc.lineno}: {exc.message}"
        ) from None


def _has_link(source: str, link_name: str) -> bool:
    return any(match.group(1) == link_name for match in _LINK_SYNTAX.finditer(source))


_default_cache: dict[str, jinja2.Template] = {}


def _default(link_name: str) -> jinja2.Template:
    """The shipped template for ``link_name``, read once as package data."""
    try:
        file_name = DEFAULT_TEMPLATES[link_name]
    except KeyError:
        raise ValueError(f"no default template for {link_name!r}") from None
    with _cache_lock:
        template = _default_cache.get(file_name)
    if template is None:
        source = resources.files("corelogin.server").joinpath("templates", file_name)
        template = _compile(source.read_text("utf-8"), html=False, label=file_name)
        with _cache_lock:
            _default_cache[file_name] = template
    return template


def _check_name(name: object) -> str:
    """``name`` if it is a bare file name; anything that could point elsewhere is refused."""
    if not isinstance(name, str):
        raise ApiError(Status.WRONG_TYPE, "email_tpl must be a string")
    if (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or ".." in name
        or os.path.basename(name) != name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise ApiError(Status.WRONG_TYPE, _BARE_NAME)
    return name


def _custom(templates_dir: str | None, name: object, link_name: str) -> jinja2.Template:
    """The operator's template ``name``: checked, compiled and cached."""
    name = _check_name(name)
    if not templates_dir:
        raise ApiError(
            Status.WRONG_TYPE, "email_tpl cannot be used: the server has no templates directory"
        )
    unknown = ApiError(
        Status.WRONG_TYPE, f"email_tpl {name!r} is not a template in the server's directory"
    )
    try:
        base = Path(templates_dir).resolve(strict=True)
        # resolve() follows symlinks: a link that leads out of the directory is refused.
        path = (base / name).resolve(strict=True)
        info = path.stat()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        raise unknown from None
    if path == base or not path.is_relative_to(base) or not stat.S_ISREG(info.st_mode):
        raise unknown
    version = (info.st_mtime_ns, info.st_size, info.st_ino)
    key = (path, _is_html(name), link_name)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    try:
        source = path.read_text("utf-8")
    except OSError:
        raise unknown from None
    except UnicodeDecodeError:
        raise ApiError(Status.WRONG_TYPE, f"email_tpl {name!r} is not UTF-8 text") from None
    if not _has_link(source, link_name):
        raise ApiError(
            Status.WRONG_TYPE,
            f"email_tpl {name!r} lacks the {{* {link_name} *}} placeholder for the link",
        )
    template = _compile(source, html=_is_html(name), label=f"email_tpl {name!r}")
    with _cache_lock:
        _cache[key] = (version, template)
    return template


def _is_html(name: str) -> bool:
    return name.lower().endswith((".html", ".htm"))


def check_template(
    templates_dir: str | None,
    name: str | None,
    link_name: str,
    keys: Mapping[str, object] | None = None,
) -> None:
    """Raise `ApiError` (801) unless template ``name`` (None: the default for ``link_name``)
    exists in ``templates_dir``, stays inside it, holds ``{* link_name *}`` and parses.

    Call it before creating anything, so that a bad template leaves nothing behind. Given
    ``keys``, it also renders the template once with them (804 for a key it needs that is not
    there), so that a mail cannot fail later for want of a key.
    """
    if name is None:
        _default(link_name)
    else:
        _custom(templates_dir, name, link_name)
    if keys is not None:
        render(templates_dir, name, link_name, "https://example.invalid/", keys)


def templates(templates_dir: str | None, link_name: str = "confirm_link") -> tuple[str, ...]:
    """The names ``email_tpl`` may take on this server: the templates of ``templates_dir`` that
    `check_template` accepts."""
    if templates_dir is None:
        return ()
    try:
        names = sorted(os.listdir(templates_dir))
    except OSError:
        return ()
    usable = []
    for name in names:
        try:
            check_template(templates_dir, name, link_name)
        except ApiError:
            continue
        usable.append(name)
    return tuple(usable)


def _check_keys(keys: Mapping[str, object]) -> dict[str, object]:
    """The caller's keys, flat as ``tpl_keys`` must be: strings, numbers, booleans."""
    for key, value in keys.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float):
            raise ApiError(
                Status.WRONG_TYPE,
                "tpl_keys must be a flat table: string keys; string, number or boolean values",
            )
    return dict(keys)


def _render(template: jinja2.Template, label: str, context: Mapping[str, object]) -> str:
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        missing = _UNDEFINED.match(exc.message or "")
        if missing:
            raise ApiError(
                Status.MISSING, f"{label} needs tpl_keys.{missing.group(1)}, which is missing"
            ) from None
        raise ApiError(Status.WRONG_TYPE, f"{label} cannot be rendered: {exc.message}") from None
    except SecurityError as exc:
        raise ApiError(Status.WRONG_TYPE, f"{label} cannot be rendered: {exc}") from None
    except Exception as exc:  # the operator's template failed at run time (1/0, a bad filter)
        raise ApiError(
            Status.WRONG_TYPE, f"{label} cannot be rendered: {type(exc).__name__}"
        ) from None


def render(
    templates_dir: str | None,
    name: str | None,
    link_name: str,
    link: str,
    keys: Mapping[str, object] | None = None,
) -> Body:
    """The body of a mail: template ``name`` from ``templates_dir`` (None: the default for
    ``link_name``) with ``keys`` and ``link``.

    The link is set after the keys, so a key named like the link cannot replace it. A ``.html``
    template is escaped and gives the html part; the text part is then the default template
    for ``link_name``. Raises `ApiError`: 804 for a key the template needs and ``keys`` lacks,
    801 for anything else (see `check_template`).
    """
    context = _check_keys(keys or {})
    context[link_name] = link
    default = _default(link_name)
    if name is None:
        return Body(text=_render(default, DEFAULT_TEMPLATES[link_name], context))
    template = _custom(templates_dir, name, link_name)
    label = f"email_tpl {name!r}"
    if _is_html(name):
        html = _render(template, label, context)
        return Body(text=_render(default, DEFAULT_TEMPLATES[link_name], context), html=html)
    return Body(text=_render(template, label, context))
