"""A Tkinter login window: the Core's listeners run on the Tk thread, so they may touch widgets.

The Core (made with no running loop) does its I/O on a background thread and queues listeners;
``root.after(16, pump)`` calls ``core.process_events()`` about 60 times a second to run them.
``--auto`` signs up, tries a wrong password and then the right one by itself, and quits.

    python samples/tk_login.py [--auto] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import sys
import tkinter as tk
from collections.abc import Iterator
from tkinter import ttk

import _server

import corelogin


class LoginWindow:
    def __init__(self, root: tk.Tk, core: corelogin.Core) -> None:
        self.root, self.core = root, core
        self.busy = False
        self.logged_in = False
        self.username, self.password = tk.StringVar(), tk.StringVar()
        self.status = tk.StringVar(value="Sign up, then log in.")

        root.title("corelogin")
        frame = ttk.Frame(root, padding=12)
        frame.grid()
        ttk.Label(frame, text="Username").grid(row=0, column=0, sticky="w")
        ttk.Entry(frame, textvariable=self.username).grid(row=0, column=1)
        ttk.Label(frame, text="Password").grid(row=1, column=0, sticky="w")
        ttk.Entry(frame, textvariable=self.password, show="*").grid(row=1, column=1)
        self.sign_up_button = ttk.Button(frame, text="Sign up", command=self.sign_up)
        self.sign_up_button.grid(row=2, column=0, pady=6)
        self.log_in_button = ttk.Button(frame, text="Log in", command=self.log_in)
        self.log_in_button.grid(row=2, column=1, pady=6, sticky="e")
        ttk.Label(frame, textvariable=self.status, wraplength=280).grid(row=3, columnspan=2)
        root.protocol("WM_DELETE_WINDOW", self.close)
        self.pump()

    def pump(self) -> None:
        """Run the listeners whose answers are in, then again in 16 ms (about 60 Hz)."""
        self.core.process_events()
        self.root.after(16, self.pump)

    def params(self) -> dict[str, str]:
        return {"username": self.username.get(), "password": self.password.get()}

    def sign_up(self) -> None:
        self.core.users.create(self.params(), self.on_created)
        self.set_busy(True, "Signing up...")

    def log_in(self) -> None:
        self.core.users.login(self.params(), self.on_login)
        self.set_busy(True, "Logging in...")

    def set_busy(self, busy: bool, status: str) -> None:
        self.busy = busy
        self.status.set(status)
        for button in (self.sign_up_button, self.log_in_button):
            button.state(["disabled"] if busy else ["!disabled"])

    def on_created(self, evt: corelogin.Event) -> None:
        if evt.error:
            print(f"create: evt.status={evt.status} evt.error={evt.error!r}")
            self.set_busy(False, f"Sign-up failed ({evt.status}): {evt.error}")
        else:
            print(f"create: evt.result.username={evt.result.username}")
            self.set_busy(False, f"Welcome, {evt.result.username}. Now log in.")

    def on_login(self, evt: corelogin.Event) -> None:
        if evt.error:
            print(f"login: evt.status={evt.status} evt.error={evt.error!r}")
            self.set_busy(False, f"Login failed ({evt.status}): {evt.error}")
        else:
            print(f"login: evt.result.user_id={evt.result.user_id} ({evt.tt:.0f} ms)")
            self.logged_in = True
            self.set_busy(False, f"Logged in as {evt.result.username}.")

    def close(self) -> None:
        self.core.close()  # a call still in flight gets its 817 event here, before destroy
        self.root.destroy()


def autopilot(window: LoginWindow, username: str) -> Iterator[None]:
    """What a person would do, one step per answer: each ``yield`` waits for it."""
    for password, button in (
        (_server.PASSWORD, window.sign_up_button),
        ("not my password", window.log_in_button),
        (_server.PASSWORD, window.log_in_button),
    ):
        window.username.set(username)
        window.password.set(password)
        button.invoke()
        yield
        print(f"status label: {window.status.get()}")
    window.close()


def drive(window: LoginWindow, steps: Iterator[None]) -> None:
    """Take the autopilot's next step whenever no call is in flight."""
    if not window.busy:
        try:
            next(steps)
        except StopIteration:
            return
    window.root.after(20, drive, window, steps)


def main(args: argparse.Namespace) -> int:
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        print(f"cannot open a window: {exc}", file=sys.stderr)
        return 2
    with _server.server(args) as (url, key), corelogin.init(url, key) as core:
        window = LoginWindow(root, core)
        if args.auto:
            drive(window, autopilot(window, _server.new_username()))
            root.after(int(args.timeout * 1000), window.close)
        root.mainloop()
        return 0 if window.logged_in or not args.auto else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A Tkinter login window.")
    parser.add_argument("--auto", action="store_true", help="fill in, click, print and quit")
    parser.add_argument("--timeout", type=float, default=30, help="--auto gives up after this")
    raise SystemExit(main(_server.parse_args(parser)))
