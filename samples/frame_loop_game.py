"""A game's frame loop: 60 frames a second, ``core.process_events()`` once a frame.

With no running loop the Core does its I/O on a background thread and queues listeners for the
thread that created it; ``process_events()`` runs the ones that are ready and never blocks, so
listeners may touch game state freely. The login state is drawn on one terminal line.

    python samples/frame_loop_game.py [--frames N] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import sys
import time

import _server

import corelogin

FPS = 60
WIDTH = 78


class Game:
    """The state the frame loop draws; listeners update it, all on the main thread."""

    def __init__(self) -> None:
        self.status = "creating an account"
        self.player: str | None = None
        self.logins_pending = 0
        self.failed = False

    @property
    def done(self) -> bool:
        return self.failed or (self.player is not None and self.logins_pending == 0)


def say(message: str) -> None:
    """Print a message over the status line; the next frame draws the line again below it."""
    sys.stdout.write(f"\r{message:<{WIDTH}}\n")


def draw(frame: int, game: Game) -> None:
    spinner = "|/-\\"[frame // 6 % 4]
    line = f"frame {frame:4d} {spinner} player: {game.player or '-'} | {game.status}"
    sys.stdout.write(f"\r{line:<{WIDTH}}")
    sys.stdout.flush()


def main(args: argparse.Namespace) -> int:
    with _server.server(args) as (url, key), corelogin.init(url, key) as core:
        game = Game()
        username = _server.new_username()

        def on_login(evt: corelogin.Event) -> None:
            game.logins_pending -= 1
            if evt.error:
                say(f"login failed: evt.status={evt.status} evt.error={evt.error!r}")
            else:
                say(f"logged in: evt.result.user_id={evt.result.user_id} ({evt.tt:.0f} ms)")
                game.player = evt.result.username
            game.status = f"{game.logins_pending} login(s) in flight"

        def on_created(evt: corelogin.Event) -> None:
            if evt.error:
                say(f"create failed: evt.status={evt.status} evt.error={evt.error!r}")
                game.failed = True
                return
            say(f"created: evt.result.username={evt.result.username}")
            # The right password and a wrong one, both in flight while the game keeps drawing.
            core.users.login({"username": username, "password": _server.PASSWORD}, on_login)
            core.users.login({"username": username, "password": "wrong"}, on_login)
            game.logins_pending = 2
            game.status = "2 login(s) in flight"

        core.users.create({"username": username, "password": _server.PASSWORD}, on_created)

        started, frames = time.monotonic(), 0
        while frames < args.frames:
            frames += 1
            next_frame = started + frames / FPS
            core.process_events()  # runs the listeners that are ready; never blocks
            draw(frames, game)
            if game.done:
                break
            time.sleep(max(0.0, next_frame - time.monotonic()))
        say(f"stopped after {frames} frames, {time.monotonic() - started:.2f} s")
        if not game.done:
            say(f"gave up: logins not done within {args.frames} frames")
            return 1
    return 1 if game.failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A 60 fps frame loop that logs in.")
    parser.add_argument("--frames", type=int, default=10 * FPS, help="stop after N frames")
    raise SystemExit(main(_server.parse_args(parser)))
