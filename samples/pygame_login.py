"""A pygame login form: ``core.process_events()`` once a frame runs the listeners on this thread.

The Core (made with no running loop) does its I/O on a background thread and queues listeners;
the frame loop (``clock.tick(60)``, handle events, ``core.process_events()``, draw) runs the ones
whose answers are in, so they update the form directly. The form is drawn with pygame alone:

- click a field to type in it (or Tab to switch fields); the password shows as ``*``;
- Enter or the "Log in" button logs in; F2 or the "Sign up" button signs up;
- Escape or closing the window quits.

``--auto`` is an autopilot that makes the events a person would (``pygame.event.post`` of
clicks, TEXTINPUT characters and keys): it signs up a new user, tries a wrong password, then the
right one, waiting for each answer, prints what the status line showed, and quits (exit 1 if not
logged in within ``--timeout`` seconds). With ``CORELOGIN_SCREENSHOT=file.png`` in the
environment the window is saved to that file after each answer is drawn (the last one stays).
Headless, run it with ``SDL_VIDEODRIVER=dummy``.

    python samples/pygame_login.py [--auto] [--timeout S] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before pygame prints its banner

import _server
import pygame

import corelogin

FPS = 60
WIDTH, HEIGHT = 480, 300
MARGIN = 24
SCREENSHOT = "CORELOGIN_SCREENSHOT"  # environment variable: where to save the window

BACKGROUND = pygame.Color(32, 36, 48)
FIELD = pygame.Color(20, 23, 31)
BORDER = pygame.Color(80, 86, 104)
FOCUS = pygame.Color(110, 170, 255)
TEXT = pygame.Color(232, 234, 240)
MUTED = pygame.Color(140, 146, 162)
PRIMARY = pygame.Color(60, 120, 220)
SECONDARY = pygame.Color(64, 70, 88)
DISABLED = pygame.Color(52, 56, 68)
STATUS_COLOURS = {
    "info": MUTED,
    "busy": pygame.Color(240, 200, 90),
    "error": pygame.Color(240, 100, 100),
    "ok": pygame.Color(110, 210, 130),
}


@dataclass
class Field:
    label: str
    rect: pygame.Rect
    secret: bool = False
    max_length: int = 64
    text: str = ""

    @property
    def shown(self) -> str:
        return "*" * len(self.text) if self.secret else self.text


@dataclass
class Button:
    label: str
    rect: pygame.Rect
    action: Callable[[], None]
    primary: bool = False


class LoginForm:
    """The form's state; events and listeners change it, all on the main thread."""

    def __init__(self, core: corelogin.Core) -> None:
        self.core = core
        left, width = 140, WIDTH - 140 - MARGIN
        self.username = Field("Username", pygame.Rect(left, 70, width, 36))
        self.password = Field("Password", pygame.Rect(left, 120, width, 36), True, 128)
        self.fields = [self.username, self.password]
        self.focus = 0
        half = (width - 16) // 2
        self.sign_up_button = Button("Sign up", pygame.Rect(left, 176, half, 40), self.sign_up)
        self.log_in_button = Button(
            "Log in", pygame.Rect(left + half + 16, 176, half, 40), self.log_in, primary=True
        )
        self.buttons = [self.sign_up_button, self.log_in_button]
        self.busy = False
        self.logged_in = False
        self.quit = False
        self.answers = 0  # listener calls so far
        self.status, self.status_kind = "Sign up, then log in.", "info"
        self.shown_status = ""  # the status text the last frame drew

    # -- input ---------------------------------------------------------------------------------

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.quit = True
        elif event.type == pygame.TEXTINPUT:
            field = self.fields[self.focus]
            text = "".join(c for c in event.text if c.isprintable())
            field.text = (field.text + text)[: field.max_length]
        elif event.type == pygame.KEYDOWN:
            self.key(event.key)
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self.click(event.pos)

    def key(self, key: int) -> None:
        if key == pygame.K_ESCAPE:
            self.quit = True
        elif key == pygame.K_TAB:
            self.focus = (self.focus + 1) % len(self.fields)
        elif key == pygame.K_BACKSPACE:
            field = self.fields[self.focus]
            field.text = field.text[:-1]
        elif key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self.log_in()
        elif key == pygame.K_F2:
            self.sign_up()

    def click(self, pos: tuple[int, int]) -> None:
        for index, field in enumerate(self.fields):
            if field.rect.collidepoint(pos):
                self.focus = index
        for button in self.buttons:
            if button.rect.collidepoint(pos):
                button.action()

    # -- calls and their listeners -------------------------------------------------------------

    def params(self) -> dict[str, str]:
        return {"username": self.username.text, "password": self.password.text}

    def sign_up(self) -> None:
        if not self.busy:
            self.core.users.create(self.params(), self.on_created)
            self.set_status("Signing up...", "busy", busy=True)

    def log_in(self) -> None:
        if not self.busy:
            self.core.users.login(self.params(), self.on_login)
            self.set_status("Logging in...", "busy", busy=True)

    def set_status(self, status: str, kind: str, busy: bool = False) -> None:
        self.status, self.status_kind, self.busy = status, kind, busy

    def answered(self) -> None:
        self.answers += 1
        thread = threading.current_thread()
        is_main = thread is threading.main_thread()
        print(f"listener thread: {thread.name} (main thread: {is_main})")

    def on_created(self, evt: corelogin.Event[corelogin.User]) -> None:
        if evt.error:
            print(f"create: evt.status={evt.status} evt.error={evt.error!r}")
            self.set_status(f"Sign-up failed ({evt.status}): {evt.error}", "error")
        else:
            print(f"create: evt.result.username={evt.result.username}")
            self.set_status(f"Welcome, {evt.result.username}. Now log in.", "ok")
        self.answered()

    def on_login(self, evt: corelogin.Event[corelogin.Login]) -> None:
        if evt.error:
            print(f"login: evt.status={evt.status} evt.error={evt.error!r}")
            self.set_status(f"Login failed ({evt.status}): {evt.error}", "error")
        else:
            print(f"login: evt.result.user_id={evt.result.user_id} ({evt.tt:.0f} ms)")
            self.logged_in = True
            self.set_status(f"Logged in as {evt.result.username}.", "ok")
        self.answered()


# -- drawing ---------------------------------------------------------------------------------


class Painter:
    def __init__(self) -> None:
        self.title = pygame.font.Font(None, 44)
        self.text = pygame.font.Font(None, 30)
        self.status = pygame.font.Font(None, 26)
        self.small = pygame.font.Font(None, 22)

    def draw(self, screen: pygame.Surface, form: LoginForm, frame: int) -> None:
        screen.fill(BACKGROUND)
        screen.blit(self.title.render("corelogin", True, TEXT), (MARGIN, 20))
        for index, field in enumerate(form.fields):
            self.draw_field(screen, field, index == form.focus, caret=frame // 30 % 2 == 0)
        for button in form.buttons:
            self.draw_button(screen, button, form.busy)
        lines = wrap(self.status, form.status, WIDTH - 2 * MARGIN, max_lines=2)
        form.shown_status = " ".join(lines)
        for number, line in enumerate(lines):
            text = self.status.render(line, True, STATUS_COLOURS[form.status_kind])
            screen.blit(text, (MARGIN, 228 + number * self.status.get_linesize()))
        hint = "Tab: next field   Enter: log in   F2: sign up   Esc: quit"
        screen.blit(self.small.render(hint, True, MUTED), (MARGIN, HEIGHT - 26))

    def draw_field(self, screen: pygame.Surface, field: Field, focused: bool, caret: bool) -> None:
        label = self.text.render(field.label, True, TEXT if focused else MUTED)
        screen.blit(label, (MARGIN, field.rect.centery - label.get_height() // 2))
        pygame.draw.rect(screen, FIELD, field.rect, border_radius=6)
        pygame.draw.rect(screen, FOCUS if focused else BORDER, field.rect, 2, border_radius=6)
        inner = field.rect.inflate(-20, -8)
        text = self.text.render(field.shown, True, TEXT)
        # Too long for the box: show its end, where the caret is.
        skip = max(0, text.get_width() - inner.width + 4)
        top = inner.centery - text.get_height() // 2
        area = pygame.Rect(skip, 0, inner.width, text.get_height())
        screen.blit(text, (inner.left, top), area)
        if focused and caret:
            x = inner.left + text.get_width() - skip + 2
            pygame.draw.line(screen, FOCUS, (x, inner.top + 3), (x, inner.bottom - 3), 2)

    def draw_button(self, screen: pygame.Surface, button: Button, busy: bool) -> None:
        fill = DISABLED if busy else PRIMARY if button.primary else SECONDARY
        pygame.draw.rect(screen, fill, button.rect, border_radius=8)
        label = self.text.render(button.label, True, MUTED if busy else TEXT)
        screen.blit(label, label.get_rect(center=button.rect.center))


def wrap(font: pygame.font.Font, text: str, width: int, max_lines: int) -> list[str]:
    """``text`` in lines of at most ``width`` pixels; a line too long is cut short with "..."."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.size(f"{lines[-1]} {word}")[0] <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    lines[max_lines - 1 :] = [" ".join(lines[max_lines - 1 :])]
    return [cut(font, line, width) for line in lines if line]


def cut(font: pygame.font.Font, line: str, width: int) -> str:
    if font.size(line)[0] <= width:
        return line
    while line and font.size(line + "...")[0] > width:
        line = line[:-1]
    return line + "..."


# -- the autopilot: a person's hands, as pygame events -------------------------------------------


def post(event_type: int, **attributes: object) -> None:
    if not pygame.event.post(pygame.event.Event(event_type, attributes)):
        raise RuntimeError(f"pygame refused {pygame.event.event_name(event_type)}")


def click(rect: pygame.Rect) -> None:
    post(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1)
    post(pygame.MOUSEBUTTONUP, pos=rect.center, button=1)


def press(key: int) -> None:
    post(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0)
    post(pygame.KEYUP, key=key, mod=0, unicode="", scancode=0)


def retype(field: Field, text: str) -> None:
    """Erase what the field shows, one Backspace a character, and type ``text``."""
    for _ in field.text:
        press(pygame.K_BACKSPACE)
    for character in text:
        post(pygame.TEXTINPUT, text=character)


def answer(form: LoginForm) -> Iterator[None]:
    """Wait (a frame per ``yield``) for the listener, then tell what the status line drew."""
    answers = form.answers
    while form.answers == answers:
        yield
    print(f"status line: {form.shown_status}")


def autopilot(form: LoginForm, username: str) -> Iterator[None]:
    """Sign up, try a wrong password, then the right one; each step waits for its answer."""
    click(form.username.rect)
    retype(form.username, username)
    press(pygame.K_TAB)
    retype(form.password, _server.PASSWORD)
    click(form.sign_up_button.rect)
    yield from answer(form)

    click(form.password.rect)
    retype(form.password, "not my password")
    press(pygame.K_RETURN)
    yield from answer(form)

    click(form.password.rect)
    retype(form.password, _server.PASSWORD)
    click(form.log_in_button.rect)
    yield from answer(form)
    press(pygame.K_ESCAPE)


# -- the frame loop ------------------------------------------------------------------------------


def run(core: corelogin.Core, screen: pygame.Surface, args: argparse.Namespace) -> int:
    form, painter, clock = LoginForm(core), Painter(), pygame.time.Clock()
    steps = autopilot(form, _server.new_username()) if args.auto else None
    deadline = time.monotonic() + args.timeout
    screenshot, saved = os.environ.get(SCREENSHOT), 0
    frames, longest = 0, 0.0
    while not form.quit:
        clock.tick(FPS)
        if steps is not None:
            next(steps, None)
        for event in pygame.event.get():
            form.handle(event)
        started = time.perf_counter()
        core.process_events()  # runs the listeners whose answers are in; never blocks
        longest = max(longest, time.perf_counter() - started)
        painter.draw(screen, form, frames)
        pygame.display.flip()
        frames += 1
        if screenshot and form.answers != saved:
            pygame.image.save(screen, screenshot)
            saved = form.answers
        if steps is not None and not form.quit and time.monotonic() > deadline:
            print(f"gave up: not logged in within {args.timeout} s")
            break
    print(f"frames: {frames}, longest process_events(): {longest * 1000:.2f} ms")
    return 0 if form.logged_in or not args.auto else 1


def main(args: argparse.Namespace) -> int:
    pygame.display.init()  # not pygame.init(): no audio, joysticks, ...
    pygame.font.init()
    try:
        try:
            screen = pygame.display.set_mode((WIDTH, HEIGHT))
        except pygame.error as exc:
            print(f"cannot open a window: {exc} (headless? SDL_VIDEODRIVER=dummy)", file=sys.stderr)
            return 2
        pygame.display.set_caption("corelogin")
        pygame.key.set_repeat(400, 35)
        pygame.key.start_text_input()
        # Leaving the block closes the Core: a call still in flight gets its 817 event here.
        with _server.server(args) as (url, key), corelogin.init(url, key) as core:
            return run(core, screen, args)
    finally:
        pygame.quit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A pygame login form.")
    parser.add_argument("--auto", action="store_true", help="fill in, click, print and quit")
    parser.add_argument("--timeout", type=float, default=30, help="--auto gives up after this")
    raise SystemExit(main(_server.parse_args(parser)))
