"""Where a `Core` keeps the session token of a ``stay_logged_in`` login between runs.

A store maps an opaque key (the `Core` builds it from the server URL and scope) to a session
token. `FileSessionStore` is the default: one small JSON file, mode 0600, in the user's data
directory, replaced atomically and locked for writing so that several processes (two copies of a
game, a game and its launcher) never lose each other's entries. Tokens never reach a log line or
a ``repr``. Everything is synchronous: the file is tiny, and the `Core` calls the store from its
I/O thread or loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import platformdirs

if sys.platform != "win32":
    import fcntl

__all__ = ["FileSessionStore", "MemorySessionStore", "SessionStore", "default_path"]

log = logging.getLogger("corelogin")

_VERSION = 1
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


@runtime_checkable
class SessionStore(Protocol):
    """What a `Core` needs of a store; any object with these three methods will do."""

    def load(self, key: str) -> str | None:
        """The token saved under ``key``, or None."""
        ...

    def save(self, key: str, token: str) -> None:
        """Save ``token`` under ``key``, replacing what was there."""
        ...

    def clear(self, key: str) -> None:
        """Forget ``key``; a no-op when nothing is saved under it."""
        ...


def default_path() -> Path:
    """The default store's file: ``sessions.json`` in the user's data directory for corelogin
    (``~/.local/share/corelogin`` or ``$XDG_DATA_HOME/corelogin`` on Linux)."""
    return platformdirs.user_data_path("corelogin", appauthor=False) / "sessions.json"


def _check(key: object) -> None:
    # Refuse here what would otherwise surface later as a corrupt file in another process.
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")


def _check_token(token: object) -> None:
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    if not token:
        raise ValueError("token must not be empty")


class MemorySessionStore:
    """Sessions in a dict for the life of the process; nothing touches the disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemorySessionStore(<{len(self._sessions)} sessions>)"

    def load(self, key: str) -> str | None:
        _check(key)
        with self._lock:
            return self._sessions.get(key)

    def save(self, key: str, token: str) -> None:
        _check(key)
        _check_token(token)
        with self._lock:
            self._sessions[key] = token

    def clear(self, key: str) -> None:
        _check(key)
        with self._lock:
            self._sessions.pop(key, None)


class FileSessionStore:
    """Sessions in a JSON file, ``{"version": 1, "sessions": {key: token}}``, mode 0600.

    Writes are read-modify-write under an exclusive ``flock`` on ``<path>.lock`` (kept, not
    deleted: deleting a lock file races with its next user) and a thread lock, and go through a
    0600 temporary file in the same directory that is fsynced and then renamed over the file, so
    a reader never sees half a file and needs no lock. Missing directories are created 0700.
    A corrupt or unreadable file reads as empty (one WARNING until it is readable again), and
    the next `save` replaces it. `save` and `clear` raise `OSError` when the file cannot be
    written (read-only disk, a directory in its place).

    On Windows there is no ``fcntl``: writes are still atomic and thread-safe, but two processes
    saving at the same instant may lose one of the two entries.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def path(self) -> Path:
        """The JSON file (its name never contains a token)."""
        return self._path

    def __repr__(self) -> str:
        return f"FileSessionStore({str(self._path)!r})"

    def load(self, key: str) -> str | None:
        _check(key)
        return self._read().get(key)

    def save(self, key: str, token: str) -> None:
        _check(key)
        _check_token(token)
        with self._locked():
            sessions = self._read()
            sessions[key] = token
            self._write(sessions)

    def clear(self, key: str) -> None:
        _check(key)
        if not os.path.lexists(self._path):
            return  # nothing saved: create neither the directory nor the lock file
        with self._locked():
            sessions = self._read()
            if sessions.pop(key, None) is not None:
                self._write(sessions)

    # -- internals ---------------------------------------------------------------------------

    def _read(self) -> dict[str, str]:
        """The saved sessions; ``{}`` when the file is missing, corrupt or unreadable."""
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            self._warned = False
            return {}
        except OSError as exc:
            self._corrupt(exc.strerror or type(exc).__name__)
            return {}
        sessions = _parse(raw)
        if sessions is None:
            self._corrupt("not a corelogin session file")
            return {}
        self._warned = False
        return sessions

    def _corrupt(self, reason: str) -> None:
        # Never the contents: they may hold tokens.
        if not self._warned:
            self._warned = True
            log.warning(
                "session file %s is unusable (%s); treating it as empty", self._path, reason
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            _make_dirs(self._path.parent)
            if sys.platform == "win32":
                yield
                return
            fd = os.open(f"{self._path}.lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
            try:
                _tighten(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, also if the process dies
                yield
            finally:
                os.close(fd)

    def _write(self, sessions: dict[str, str]) -> None:
        data = json.dumps({"version": _VERSION, "sessions": sessions}, indent=2, sort_keys=True)
        directory = self._path.parent
        tmp = directory / f".{self._path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _FILE_MODE
        )
        try:
            with open(fd, "wb") as f:  # closes fd
                _tighten(fd)
                f.write(data.encode() + b"\n")
                f.flush()
                os.fsync(fd)
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._warned = False
        _fsync_dir(directory)


def _parse(raw: bytes) -> dict[str, str] | None:
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON or bad UTF-8
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    sessions = data.get("sessions")
    if not isinstance(sessions, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in sessions.items()):
        return None
    return sessions


def _tighten(fd: int) -> None:
    """0600 whatever the umask (it can only remove bits from os.open's mode, but a file made
    by an older version or by hand may be looser)."""
    if hasattr(os, "fchmod"):
        with contextlib.suppress(OSError):  # not our file: still usable, just not ours to fix
            os.fchmod(fd, _FILE_MODE)


def _make_dirs(directory: Path) -> None:
    """Create the missing directories 0700 (the XDG rule), leaving existing ones alone."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was quicker
            d.mkdir(mode=_DIR_MODE)
            with contextlib.suppress(OSError):
                d.chmod(_DIR_MODE)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; best effort (not possible on Windows or some filesystems)."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
