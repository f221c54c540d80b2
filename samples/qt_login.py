"""A Qt (PySide6) login window: listeners run on the GUI thread, so they may touch widgets.

The Core (made with no running loop) does its I/O on a background thread and queues listeners;
``corelogin.qt.attach(core)`` has Qt's event loop run each one as soon as it is queued: no
timer, no polling. ``--auto`` signs up, tries a wrong password and then the right one by itself,
and quits; with ``CORELOGIN_SCREENSHOT=file.png`` set it saves the window there first.

    pip install 'corelogin[qt]'
    python samples/qt_login.py [--auto] [--server URL --key KEY]

Without a display (a server, CI), run it with ``QT_QPA_PLATFORM=offscreen``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator

import _server
from PySide6.QtCore import QCoreApplication, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

import corelogin
import corelogin.qt


def where() -> str:
    """Which thread a listener runs on: with `corelogin.qt.attach`, always the GUI thread."""
    app = QCoreApplication.instance()
    if app is not None and QThread.currentThread() is app.thread():
        return "on the GUI thread"
    return f"on the {threading.current_thread().name} thread, not the GUI thread"


class LoginWindow(QWidget):
    answered = Signal()  # a listener has run: what the autopilot waits for

    def __init__(self, core: corelogin.Core) -> None:
        super().__init__()
        self.core = core
        self.logged_in = False
        self.closed = False

        self.setWindowTitle("corelogin")
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.sign_up_button = QPushButton("Sign up")
        self.sign_up_button.clicked.connect(self.sign_up)
        self.log_in_button = QPushButton("Log in")
        self.log_in_button.clicked.connect(self.log_in)
        self.log_in_button.setDefault(True)
        self.status = QLabel("Sign up, then log in.")
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(280)

        form = QFormLayout()
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sign_up_button)
        buttons.addStretch()
        buttons.addWidget(self.log_in_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        # Size the window now, before show() gives it a native window: the offscreen platform
        # (QT_QPA_PLATFORM=offscreen) warns "This plugin does not support propagateSizeHints()"
        # when a native window's minimum size is set, as show() would do otherwise.
        layout.activate()

    def params(self) -> dict[str, str]:
        return {"username": self.username.text(), "password": self.password.text()}

    def sign_up(self) -> None:
        self.core.users.create(self.params(), self.on_created)
        self.set_busy(True, "Signing up...")

    def log_in(self) -> None:
        self.core.users.login(self.params(), self.on_login)
        self.set_busy(True, "Logging in...")

    def set_busy(self, busy: bool, status: str) -> None:
        self.status.setText(status)
        for button in (self.sign_up_button, self.log_in_button):
            button.setEnabled(not busy)

    def on_created(self, evt: corelogin.Event[corelogin.User]) -> None:
        if evt.error:
            print(f"create: evt.status={evt.status} evt.error={evt.error!r}, {where()}")
            self.set_busy(False, f"Sign-up failed ({evt.status}): {evt.error}")
        else:
            print(f"create: evt.result.username={evt.result.username}, {where()}")
            self.set_busy(False, f"Welcome, {evt.result.username}. Now log in.")
        self.answered.emit()

    def on_login(self, evt: corelogin.Event[corelogin.Login]) -> None:
        if evt.error:
            print(f"login: evt.status={evt.status} evt.error={evt.error!r}, {where()}")
            self.set_busy(False, f"Login failed ({evt.status}): {evt.error}")
        else:
            print(f"login: evt.result.user_id={evt.result.user_id} ({evt.tt:.0f} ms), {where()}")
            self.logged_in = True
            self.set_busy(False, f"Logged in as {evt.result.username}.")
        self.answered.emit()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.closed:
            self.closed = True
            self.core.close()  # a call still in flight gets its 817 event here, on this thread
        event.accept()


def autopilot(window: LoginWindow, username: str) -> Iterator[None]:
    """What a person would do, one step per answer: each ``yield`` waits for it."""
    for password, button in (
        (_server.PASSWORD, window.sign_up_button),
        ("not my password", window.log_in_button),
        (_server.PASSWORD, window.log_in_button),
    ):
        window.username.setText(username)
        window.password.setText(password)
        button.click()
        yield
        print(f"status label: {window.status.text()}")
    screenshot = os.environ.get("CORELOGIN_SCREENSHOT")
    if screenshot and not window.grab().save(screenshot):
        print(f"could not save the screenshot to {screenshot}", file=sys.stderr)
    window.close()


def drive(window: LoginWindow, steps: Iterator[None]) -> None:
    """Take the autopilot's first step now, and the next one after each answer (once the
    listener has returned: the connection is queued)."""

    def step() -> None:
        if not window.closed:
            next(steps, None)

    window.answered.connect(step, Qt.ConnectionType.QueuedConnection)
    step()


def main(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        # Qt would abort the process; say why instead (as tk_login.py does).
        print(
            "cannot open a window: no display (QT_QPA_PLATFORM=offscreen runs without one)",
            file=sys.stderr,
        )
        return 2
    app = QApplication(sys.argv[:1])
    with _server.server(args) as (url, key), corelogin.init(url, key) as core:
        corelogin.qt.attach(core)  # listeners run on this thread, as soon as they are queued
        window = LoginWindow(core)
        window.show()
        if args.auto:
            drive(window, autopilot(window, _server.new_username()))
            QTimer.singleShot(int(args.timeout * 1000), window.close)
        app.exec()
        return 0 if window.logged_in or not args.auto else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A Qt (PySide6) login window.")
    parser.add_argument("--auto", action="store_true", help="fill in, click, print and quit")
    parser.add_argument("--timeout", type=float, default=30, help="--auto gives up after this")
    raise SystemExit(main(_server.parse_args(parser)))
