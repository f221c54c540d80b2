"""samples/notebook.ipynb runs in a real Jupyter kernel (ipykernel, started by nbclient as
Jupyter would start it), and each listener's line lands in the output of the cell that made the
call."""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, PASSWORD

pytest.importorskip(
    "ipykernel", reason="the notebook needs a Python kernel: pip install -e '.[jupyter]'"
)
nbclient = pytest.importorskip(
    "nbclient", reason="running the notebook needs nbclient: pip install -e '.[test]'"
)
nbformat = pytest.importorskip(
    "nbformat", reason="reading the notebook needs nbformat: pip install -e '.[test]'"
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NOTEBOOK = SAMPLES / "notebook.ipynb"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
USERNAME = r"donna-[0-9a-f]{8}"
NOTEBOOK_PASSWORD = "correct horse battery staple"  # the notebook's users' password
# A cell of the test's own, run after the notebook's: which Python the kernel runs.
PROBE = "import sys\nprint(f'kernel python: {sys.executable}')"


@pytest.fixture(autouse=True)
def _ipython_dir_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IPython's directory, never the real one of whoever runs the tests: jupyter_client creates
    it here (looking for kernels in it), and the kernel keeps its history database in it."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def kernel_env(**extra: str) -> dict[str, str]:
    """The kernel's environment: this process's (os.environ now, not at import: it has the
    session's XDG_DATA_HOME, tests/conftest.py, and IPYTHONDIR), without a server unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("CORELOGIN_SERVER", "CORELOGIN_KEY")}
    # The kernel imports debugpy as it starts, and on a Python with frozen modules (the default
    # since 3.11) pydevd writes "Debugger warning: ... frozen modules" to stderr. ipykernel 7
    # publishes it before any cell runs, so under no cell; this silences it for older ones too.
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # A socket the notebook leaves open, collected while a cell runs, shows in its stderr.
    env["PYTHONWARNINGS"] = "default::ResourceWarning"
    env.update(extra)
    return env


def run_notebook(env: dict[str, str]) -> Any:
    """The notebook run by nbclient with its folder as the kernel's working directory (as
    Jupyter does), then PROBE: the executed notebook."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, id="probe"))
    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(SAMPLES)}}
    )
    client.execute(env=env)  # raises CellExecutionError on a cell's exception
    return nb


def outputs(nb: Any) -> dict[str, dict[str, str]]:
    """Each code cell's output, by cell id: its stdout, stderr and the text of its result."""
    found: dict[str, dict[str, str]] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = {"stdout": "", "stderr": "", "result": ""}
        for output in cell.outputs:
            assert output.output_type != "error", (cell.id, output)
            if output.output_type == "stream":
                texts[output.name] += output.text
            elif output.output_type == "execute_result":
                texts["result"] += output.data["text/plain"]
        assert "Traceback" not in texts["stdout"] + texts["stderr"], (cell.id, texts)
        found[cell.id] = texts
    return found


def checked(nb: Any) -> dict[str, str]:
    """The stdout (and result) of each cell of a run with no error, no traceback, nothing on
    stderr, run by this venv's Python, and each listener's line in its own cell."""
    cells = outputs(nb)
    assert {cell: texts["stderr"] for cell, texts in cells.items() if texts["stderr"]} == {}
    assert cells["probe"]["stdout"] == f"kernel python: {sys.executable}\n"
    assert cells["init"]["result"] == "'asyncio'"  # core.deliver
    listener_lines = {
        cell: re.findall(r"(?m)^listener: .*$", texts["stdout"]) for cell, texts in cells.items()
    }
    # One listener line in each cell that made a call with a listener, and nowhere else.
    assert {cell: len(lines) for cell, lines in listener_lines.items() if lines} == {
        "login": 1,
        "wrong-password": 1,
        "not-awaited": 1,
    }
    return {cell: texts["stdout"] + texts["result"] for cell, texts in cells.items()}


def test_notebook_runs_on_the_server_of_its_environment_variables(
    server_thread: ServerThread,
) -> None:
    env = kernel_env(CORELOGIN_SERVER=server_thread.url, CORELOGIN_KEY=APP_KEY)
    out = checked(run_notebook(env))
    assert out["server"] == f"server: {server_thread.url} (from CORELOGIN_SERVER)\n"

    created = re.fullmatch(rf"created: evt\.result\.username=({USERNAME})\n", out["create"])
    assert created is not None, out["create"]
    username = created[1]

    # The listener ran before `await` returned, in the same cell, with the same user id.
    login = re.fullmatch(
        rf"listener: logged in, evt\.result\.user_id=({UUID})\n"
        rf"awaited: evt\.result\.user_id=({UUID})\n'{username}'",
        out["login"],
    )
    assert login is not None, out["login"]
    assert login[1] == login[2]
    user_id = str(uuid.UUID(login[1]))

    assert out["wrong-password"] == (
        "listener: login failed, evt.status=603 evt.error='invalid username/email or password'\n"
        "awaited: evt.status=603\n"
    )

    # Not awaited: the cell printed first; the listener ran later, on the cell's own thread
    # (the kernel's main thread, where its asyncio loop runs), still inside that cell.
    assert out["not-awaited"] == (
        "sent: <Request get pending>; the cell runs on MainThread\n"
        f"listener: evt.result.username={username} (on MainThread)\n"
    )
    assert out["close"] == "closed: core.closed=True\n"

    # The notebook's user lives on this test's server, under that id.
    with corelogin.init(server_thread.url, APP_KEY) as core:
        again = core.users.create({"username": username, "password": PASSWORD}).result(10)
        evt = core.users.login({"username": username, "password": NOTEBOOK_PASSWORD}).result(10)
    assert again.status == corelogin.Status.USER_EXISTS, again
    assert evt.error is None, evt
    assert evt.result.user_id == user_id


def test_notebook_starts_and_stops_its_own_server_without_them() -> None:
    out = checked(run_notebook(kernel_env()))
    embedded = re.fullmatch(
        r"server: (http://127\.0\.0\.1:\d+) \(embedded, database in (\S+)\)\n", out["server"]
    )
    assert embedded is not None, out["server"]
    assert re.search(rf"(?m)^listener: logged in, evt\.result\.user_id={UUID}$", out["login"])
    assert "evt.status=603" in out["wrong-password"]
    assert out["close"] == "closed: core.closed=True\n"
    # The last cell stopped the server and removed its temporary database.
    assert not Path(embedded[2]).exists()
    with corelogin.init(embedded[1], "any key", retries=0) as core:
        evt = core.users.login({"username": "Donna", "password": PASSWORD}).result(10)
    assert evt.status == corelogin.Status.NETWORK_ERROR, evt


# -- a listener that runs after its cell has ended -----------------------------------------


def test_a_listener_that_runs_after_its_cell_ended_still_writes_to_that_cell(
    server_thread: ServerThread,
) -> None:
    """The call's task copies the cell's context, where ipykernel 7 keeps the cell's request
    (its parent header): so a listener that prints while a later cell runs is published as
    output of the cell that made the call, not of the cell running then. (JupyterLab and
    Notebook 7 keep a finished cell's output area listening, and show it there; nbclient stops
    reading a cell's messages when the cell ends and drops it: the notebook awaits its request.)
    """
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=kernel_env(), cwd=str(SAMPLES))
    client = manager.client()
    client.start_channels()
    messages: list[dict[str, Any]] = []

    def is_state(msg: dict[str, Any], cell: str, state: str) -> bool:
        parent = msg["parent_header"].get("msg_id")
        return bool(parent == cell and msg["content"].get("execution_state") == state)

    def until_idle(cell: str) -> None:
        while not messages or not is_state(messages[-1], cell, "idle"):
            messages.append(client.get_iopub_msg(timeout=30))

    login = f"{{'username': 'Donna', 'password': {PASSWORD!r}}}"
    try:
        client.wait_for_ready(timeout=30)
        setup = client.execute(
            "import corelogin\n"
            f"core = corelogin.init({server_thread.url!r}, {APP_KEY!r})\n"
            f"evt = await core.users.create({login})\n"
            "print(f'created: {evt.result.user_id}')"
        )
        until_idle(setup)
        # Both cells queued at once: the kernel starts the later one as soon as the calling
        # one ends, long before a login's answer (an argon2 check, some 20 ms) can arrive.
        calling = client.execute(
            "def on_login(evt):\n"
            "    print(f'late listener: {evt.result.user_id}')\n"
            f"request = core.users.login({login}, on_login)\n"
            "print('call sent')"
        )
        later = client.execute("print('later cell'); await request; print('later cell done')")
        until_idle(later)
        closing = client.execute("await core.aclose()")
        until_idle(closing)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    assert [m for m in messages if m["msg_type"] == "error"] == []
    streams = [m for m in messages if m["msg_type"] == "stream"]
    assert {m["content"]["name"] for m in streams} == {"stdout"}, streams

    def printed(cell: str) -> str:
        return "".join(
            m["content"]["text"] for m in streams if m["parent_header"]["msg_id"] == cell
        )

    created = re.fullmatch(f"created: ({UUID})\n", printed(setup))
    assert created is not None, printed(setup)
    assert printed(calling) == f"call sent\nlate listener: {created[1]}\n"
    assert printed(later) == "later cell\nlater cell done\n"
    assert printed(closing) == ""
    # The listener's line was published while the later cell was the one running.
    late = next(i for i, m in enumerate(streams) if "late listener" in m["content"]["text"])
    position = messages.index(streams[late])
    started = next(i for i, m in enumerate(messages) if is_state(m, later, "busy"))
    ended = next(i for i, m in enumerate(messages) if is_state(m, later, "idle"))
    assert started < position < ended, [
        (m["msg_type"], m["parent_header"].get("msg_id"), m["content"]) for m in messages
    ]
