"""corelogin.server.mailtemplates: the default and custom templates, checked before anything is
created, rendered in jinja2's sandbox (and, twice, sent to a real SMTP server)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corelogin.server.mail import message
from corelogin.server.mailtemplates import check_template, render
from corelogin.wire import ApiError, Status
from tests.mailserver import (
    LINK,
    SENDER,
    TO,
    MailServer,
    link_in,
    send_confirmation,
    smtp_mailer,
)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "welcome.txt").write_text(
        "Hi {{ name }}! You are player {{ number }}.\nConfirm here: {*confirm_link*}\n"
    )
    (directory / "welcome.html").write_text(
        "<p>Hi {{ name }}!</p>\n<p><a href='{* confirm_link *}'>Confirm</a></p>\n"
    )
    return directory


def test_default_confirm_template_renders_the_link() -> None:
    body = render(None, None, "confirm_link", LINK)
    assert LINK in body.text
    assert "{*" not in body.text
    assert "{{" not in body.text
    assert body.html is None


def test_default_reset_template_renders_the_link() -> None:
    body = render(None, None, "reset_link", LINK)
    assert LINK in body.text
    assert "password" in body.text
    check_template(None, None, "reset_link")


def test_custom_template_is_filled_from_tpl_keys(templates: Path) -> None:
    check_template(str(templates), "welcome.txt", "confirm_link")
    body = render(
        str(templates), "welcome.txt", "confirm_link", LINK, {"name": "Donna", "number": 7}
    )
    assert body.text == f"Hi Donna! You are player 7.\nConfirm here: {LINK}\n"
    assert body.html is None


def test_template_needing_a_key_the_caller_did_not_give_is_804(templates: Path) -> None:
    with pytest.raises(ApiError) as rendered:
        render(str(templates), "welcome.txt", "confirm_link", LINK, {"name": "Donna"})
    assert rendered.value.status == Status.MISSING
    assert "number" in rendered.value.message
    # check_template with the keys finds it before anything exists.
    with pytest.raises(ApiError) as checked:
        check_template(str(templates), "welcome.txt", "confirm_link", {})
    assert checked.value.status == Status.MISSING
    assert "name" in checked.value.message


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/b", ".hidden", "x\\y", "..", "a..b", "a\0b", "", "dir/"],
)
async def test_names_with_a_path_are_refused_with_801_and_nothing_is_sent(
    mail_server: MailServer, templates: Path, name: str
) -> None:
    (templates / ".hidden").write_text("{* confirm_link *}")
    mailer = smtp_mailer(mail_server)
    with pytest.raises(ApiError) as caught:
        await send_confirmation(mailer, str(templates), name)
    assert caught.value.status == Status.WRONG_TYPE
    assert "bare file name" in caught.value.message
    with pytest.raises(ApiError):
        render(str(templates), name, "confirm_link", LINK)
    assert mail_server.received == []
    assert mailer.sent == 0


def test_unknown_template_is_801(templates: Path) -> None:
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "nope.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "nope.txt" in caught.value.message


def test_a_directory_is_not_a_template(templates: Path) -> None:
    (templates / "sub.txt").mkdir()
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "sub.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE


def test_custom_template_without_a_templates_dir_is_801() -> None:
    with pytest.raises(ApiError) as caught:
        check_template(None, "welcome.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "templates directory" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "Hello, no link here.\n",
        "Jinja syntax is not the placeholder: {{ confirm_link }}\n",
        "Another link is not this one: {* reset_link *}\n",
    ],
)
def test_template_without_the_confirm_link_placeholder_is_801(templates: Path, source: str) -> None:
    (templates / "bad.txt").write_text(source)
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "bad.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "{* confirm_link *}" in caught.value.message


def test_placeholder_allows_spaces_inside(templates: Path) -> None:
    (templates / "spaced.txt").write_text("a {*   confirm_link\t*} b {*confirm_link*}\n")
    assert render(str(templates), "spaced.txt", "confirm_link", LINK).text == (
        f"a {LINK} b {LINK}\n"
    )


def test_template_jinja_cannot_parse_is_801(templates: Path) -> None:
    (templates / "broken.txt").write_text("{* confirm_link *}\n{% for x in %}\n")
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "broken.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE
    assert "not a valid template" in caught.value.message


def test_template_that_is_not_utf8_is_801(templates: Path) -> None:
    (templates / "latin1.txt").write_bytes("{* confirm_link *} caf\xe9".encode("latin-1"))
    with pytest.raises(ApiError) as caught:
        check_template(str(templates), "latin1.txt", "confirm_link")
    assert caught.value.status == Status.WRONG_TYPE


def test_symlink_out_of_the_templates_dir_is_801(tmp_path: Path, templates: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret {* confirm_link *}\n")
    (templates / "escape.txt").symlink_to(outside)
    (templates / "loop.txt").symlink_to(templates / "loop.txt")
    for name in ("escape.txt", "loop.txt"):
        with pytest.raises(ApiError) as caught:
            check_template(str(templates), name, "confirm_link")
        assert caught.value.status == Status.WRONG_TYPE
        with pytest.raises(ApiError):
            render(str(templates), name, "confirm_link", LINK)


def test_symlink_inside_the_templates_dir_is_followed(templates: Path) -> None:
    (templates / "alias.txt").symlink_to("welcome.txt")
    body = render(str(templates), "alias.txt", "confirm_link", LINK, {"name": "D", "number": 1})
    assert LINK in body.text


def test_symlink_into_a_subdirectory_of_the_templates_dir_is_followed(templates: Path) -> None:
    (templates / "shared").mkdir()
    (templates / "shared" / "base.txt").write_text("shared {* confirm_link *}")
    (templates / "linked.txt").symlink_to(templates / "shared" / "base.txt")
    assert render(str(templates), "linked.txt", "confirm_link", LINK).text == f"shared {LINK}"


def test_tpl_keys_are_data_never_template_code(templates: Path) -> None:
    keys = {"name": "{{ 7*7 }}", "number": "{% for x in range(3) %}x{% endfor %}{* confirm_link *}"}
    check_template(str(templates), "welcome.txt", "confirm_link", keys)
    text = render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    assert "Hi {{ 7*7 }}!" in text
    assert "49" not in text
    assert "player {% for x in range(3) %}x{% endfor %}{* confirm_link *}." in text


def test_a_tpl_key_named_like_the_link_cannot_replace_it(templates: Path) -> None:
    keys = {"name": "D", "number": 1, "confirm_link": "https://evil.example/phish"}
    text = render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    assert LINK in text
    assert "evil" not in text


def test_tpl_keys_must_be_flat(templates: Path) -> None:
    with pytest.raises(ApiError) as caught:
        render(str(templates), "welcome.txt", "confirm_link", LINK, {"name": {"a": 1}})
    assert caught.value.status == Status.WRONG_TYPE


def test_html_template_escapes_keys_and_has_a_text_alternative(templates: Path) -> None:
    keys = {"name": "<script>alert(1)</script>", "number": 1}
    body = render(str(templates), "welcome.html", "confirm_link", LINK, keys)
    assert body.html is not None
    assert "<script>" not in body.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body.html
    assert LINK in body.text  # the default confirmation text
    msg = message(sender=SENDER, to=TO, subject="Confirm", body=body)
    html = msg.get_body(preferencelist=("html",))
    plain = msg.get_body(preferencelist=("plain",))
    assert html is not None
    assert plain is not None
    assert "&lt;script&gt;" in html.get_content()
    assert LINK in plain.get_content()


def test_text_template_is_not_escaped(templates: Path) -> None:
    keys = {"name": "Tom & <Jerry>", "number": 1}
    assert (
        "Hi Tom & <Jerry>!"
        in render(str(templates), "welcome.txt", "confirm_link", LINK, keys).text
    )


def test_sandbox_refuses_unsafe_attributes(templates: Path) -> None:
    (templates / "sneaky.txt").write_text(
        "{{ name.__class__.__mro__[1].__subclasses__() }} {* confirm_link *}"
    )
    with pytest.raises(ApiError) as caught:
        render(str(templates), "sneaky.txt", "confirm_link", LINK, {"name": "x"})
    assert caught.value.status == Status.WRONG_TYPE


def test_template_failing_at_run_time_is_801(templates: Path) -> None:
    (templates / "divide.txt").write_text("{{ 1 / 0 }} {* confirm_link *}")
    with pytest.raises(ApiError) as caught:
        render(str(templates), "divide.txt", "confirm_link", LINK)
    assert caught.value.status == Status.WRONG_TYPE
    assert "ZeroDivisionError" in caught.value.message


def test_edited_template_is_used_at_the_next_render(templates: Path) -> None:
    path = templates / "edit.txt"
    path.write_text("one {* confirm_link *}")
    assert render(str(templates), "edit.txt", "confirm_link", LINK).text == f"one {LINK}"
    path.write_text("two {* confirm_link *}")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert render(str(templates), "edit.txt", "confirm_link", LINK).text == f"two {LINK}"


async def test_smtp_delivers_custom_html_with_both_parts(
    mail_server: MailServer, templates: Path
) -> None:
    mailer = smtp_mailer(mail_server)
    await send_confirmation(mailer, str(templates), "welcome.html", {"name": "Donna", "number": 3})
    (msg,) = mail_server.wait_for(1)
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "Hi Donna!" in html.get_content()
    assert link_in(msg, "/v1/users/confirm") == LINK
