"""Session stores on real files: round trips, permissions, corruption, and concurrent writers
(threads and separate processes)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corelogin.sessionstore import (
    FileSessionStore,
    MemorySessionStore,
    SessionStore,
    default_path,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "SECRET-SESSION-TOKEN-7f3a9c"
KEY = "http://127.0.0.1:10001|default"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and flock")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env or _env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def store(tmp_path: Path) -> FileSessionStore:
    return FileSessionStore(tmp_path / "sessions.json")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "corelogin" and r.levelno == logging.WARNING]


# -- basics ----------------------------------------------------------------------------------


def test_round_trip(store: FileSessionStore) -> None:
    assert store.load(KEY) is None
    store.save(KEY, TOKEN)
    store.save("other|scope", "t2")
    assert store.load(KEY) == TOKEN
    assert FileSessionStore(store.path).load(KEY) == TOKEN  # a fresh store reads the file
    store.save(KEY, "replaced")
    assert store.load(KEY) == "replaced"
    store.clear(KEY)
    assert store.load(KEY) is None
    assert store.load("other|scope") == "t2"
    data = json.loads(store.path.read_text())
    assert data == {"version": 1, "sessions": {"other|scope": "t2"}}


def test_clear_missing_key_is_a_noop_and_keeps_the_file(store: FileSessionStore) -> None:
    store.clear(KEY)  # no file at all: nothing is created
    assert not store.path.exists()
    assert not store.path.parent.joinpath("sessions.json.lock").exists()
    store.save("a", "1")
    before = store.path.read_bytes()
    store.clear("missing")
    assert store.path.read_bytes() == before
    store.clear("a")
    assert store.path.exists()
    assert json.loads(store.path.read_text()) == {"version": 1, "sessions": {}}


def test_str_path_and_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert FileSessionStore(str(tmp_path / "s.json")).path == tmp_path / "s.json"
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert default_path() == tmp_path / "xdg" / "corelogin" / "sessions.json"
        assert FileSessionStore().path == default_path()
    else:
        assert default_path().parts[-2:] == ("corelogin", "sessions.json")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG layout is Linux's")
def test_default_path_under_a_fake_home(tmp_path: Path) -> None:
    env = _env()
    env.pop("XDG_DATA_HOME", None)
    env["HOME"] = str(tmp_path)
    script = (
        "from corelogin.sessionstore import FileSessionStore\n"
        "s = FileSessionStore(); s.save('k', 'v'); print(s.path)\n"
    )
    proc = _python(script, env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    expected = tmp_path / ".local" / "share" / "corelogin" / "sessions.json"
    assert Path(out.strip()) == expected
    assert json.loads(expected.read_text())["sessions"] == {"k": "v"}
    assert _mode(expected.parent) == 0o700
    assert _mode(tmp_path / ".local") == 0o700  # every directory the store had to create


def test_memory_store() -> None:
    mem = MemorySessionStore()
    assert mem.load(KEY) is None
    mem.save(KEY, TOKEN)
    assert mem.load(KEY) == TOKEN
    assert TOKEN not in repr(mem)
    mem.clear(KEY)
    mem.clear(KEY)
    assert mem.load(KEY) is None


def test_both_satisfy_the_protocol(store: FileSessionStore) -> None:
    assert isinstance(store, SessionStore)
    assert isinstance(MemorySessionStore(), SessionStore)
    assert not isinstance(object(), SessionStore)


@pytest.mark.parametrize("make", [MemorySessionStore, lambda: FileSessionStore("unused.json")])
def test_bad_arguments(make: type[SessionStore]) -> None:
    s = make()
    with pytest.raises(TypeError):
        s.save(KEY, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        s.load(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        s.save(KEY, "")


# -- permissions and secrecy -------------------------------------------------------------------


@posix_only
@pytest.mark.usefixtures("umask_000")
def test_modes_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "sessions.json"
    s = FileSessionStore(path)
    s.save(KEY, TOKEN)
    assert _mode(path) == 0o600
    assert _mode(Path(f"{path}.lock")) == 0o600
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700
    s.save("x", "y")
    s.clear("x")
    assert _mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["sessions.json", "sessions.json.lock"]


@posix_only
def test_existing_directory_and_loose_file_modes(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "sessions.json"
    path.write_text('{"version": 1, "sessions": {}}')
    path.chmod(0o644)
    Path(f"{path}.lock").touch(0o644)
    Path(f"{path}.lock").chmod(0o644)
    FileSessionStore(path).save(KEY, TOKEN)
    assert _mode(path) == 0o600  # the replacement was 0600 from its creation
    assert _mode(Path(f"{path}.lock")) == 0o600
    assert _mode(tmp_path) == 0o755  # the user's directory is theirs


def test_token_never_in_name_repr_or_logs(
    store: FileSessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store.save(KEY, TOKEN)
    store.load(KEY)
    store.path.write_text(json.dumps({"version": 99, "sessions": {KEY: TOKEN}}))
    assert store.load(KEY) is None
    store.save(KEY, TOKEN)
    store.clear(KEY)
    assert _warnings(caplog)  # something was logged ...
    assert TOKEN not in caplog.text  # ... and never the token
    assert all(TOKEN not in p.name for p in store.path.parent.iterdir())
    assert TOKEN not in repr(store)
    assert repr(store) == f"FileSessionStore({str(store.path)!r})"


# -- corrupt and unreadable files --------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"garbage {{{",
        b'["a", "b"]',
        b'{"version": 2, "sessions": {"k": "v"}}',
        b'{"version": 1, "sessions": ["k"]}',
        b'{"version": 1, "sessions": {"k": 5}}',
        b"\xff\xfe\x00\x01binary\x80\x81" + bytes(range(256)),
        b"",
        b"[" * 100_000,
    ],
    ids=["garbage", "list", "version", "sessions-list", "non-str", "binary", "empty", "deep"],
)
def test_corrupt_file(
    store: FileSessionStore, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store.path.write_bytes(content)
    assert store.load("k") is None
    assert store.load("k") is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert str(store.path) in warnings[0].getMessage()
    store.save(KEY, TOKEN)  # repairs it
    assert json.loads(store.path.read_text()) == {"version": 1, "sessions": {KEY: TOKEN}}
    assert store.load(KEY) == TOKEN
    assert len(_warnings(caplog)) == 1
    store.path.write_bytes(content)  # broken again: worth a new warning
    assert store.load(KEY) is None
    assert len(_warnings(caplog)) == 2


def test_directory_in_place_of_the_file(
    store: FileSessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.path.mkdir()
    assert store.load(KEY) is None
    assert len(_warnings(caplog)) == 1
    store.clear(KEY)  # nothing to clear: no error
    with pytest.raises(OSError):
        store.save(KEY, TOKEN)  # cannot replace a directory: the caller learns of it
    assert store.load(KEY) is None
    assert not [p for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_parent_is_a_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "f").write_text("x")
    s = FileSessionStore(tmp_path / "f" / "sessions.json")
    assert s.load(KEY) is None
    assert len(_warnings(caplog)) == 1


# -- concurrency -------------------------------------------------------------------------------

WRITER = """
import sys
from corelogin.sessionstore import FileSessionStore
store = FileSessionStore(sys.argv[1])
name = sys.argv[2]
sys.stdin.readline()  # start together
for i in range(50):
    store.save(f"{name}-{i}", f"token-{name}-{i}")
"""


def test_two_processes_lose_nothing(store: FileSessionStore) -> None:
    store.save("before", "x")
    procs = [_python(WRITER, str(store.path), name) for name in ("p1", "p2")]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    sessions = json.loads(store.path.read_text())["sessions"]
    expected = {f"{n}-{i}": f"token-{n}-{i}" for n in ("p1", "p2") for i in range(50)}
    assert sessions == {**expected, "before": "x"}


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_threads_lose_nothing(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "sessions.json"
    one = FileSessionStore(path)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        s = one if shared else FileSessionStore(path)
        try:
            barrier.wait()
            for i in range(25):
                s.save(f"t{n}-{i}", f"v{n}-{i}")
            s.clear(f"t{n}-0")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sessions = json.loads(path.read_text())["sessions"]
    assert sessions == {f"t{n}-{i}": f"v{n}-{i}" for n in range(8) for i in range(1, 25)}


READER = """
import json, logging, sys
from pathlib import Path
from corelogin.sessionstore import FileSessionStore
warnings = []
class Count(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.levelname)
logging.getLogger("corelogin").addHandler(Count())
store = FileSessionStore(sys.argv[1])
stop = Path(sys.argv[2])
loads = seen = bad = 0
print("ready", flush=True)
while not stop.exists() or loads < 50:
    token = store.load("k")
    loads += 1
    if token is not None:
        seen += 1
        head = token[:8]
        if len(token) != 300_000 or token != head * (300_000 // 8):
            bad += 1
print(json.dumps({"loads": loads, "seen": seen, "bad": bad, "warnings": len(warnings)}))
"""


def test_readers_never_see_half_a_file(store: FileSessionStore, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    store.save("k", "00000000" * (300_000 // 8))
    reader = _python(READER, str(store.path), str(stop))
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    try:
        for i in range(60):
            store.save("k", f"{i:08d}" * (300_000 // 8))
            store.save(f"other-{i}", "x" * 10_000)
    finally:
        stop.touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert result["loads"] >= 50
    assert result["seen"] == result["loads"]  # "k" was always there
    assert result["bad"] == 0
    assert result["warnings"] == 0
    assert store.load("k") == "00000059" * (300_000 // 8)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
