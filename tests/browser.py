"""A real headless Chromium for the tests, driven by Playwright (the `browser` fixture).

No browser can be downloaded here: the tests use Debian's ``chromium`` package (``.ci/run``
installs it), or the one ``CORELOGIN_TEST_CHROMIUM`` names, launched by its path. Without one
the browser tests are skipped with the reason. Screenshots go to ``test-artifacts/`` (or
``CORELOGIN_TEST_ARTIFACTS``), to look at after a run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(os.environ.get("CORELOGIN_TEST_ARTIFACTS", "test-artifacts"))


def chromium_path() -> str | None:
    return os.environ.get("CORELOGIN_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium for one test. Not shared by the session: sync Playwright runs an event loop on
    this thread while it is open, and the asyncio tests that follow need the thread free."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: apt-get install chromium (or set CORELOGIN_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (CI, containers) Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own cookies) that records what the browser refused or logged as an
    error (CSP violations among them): `console_errors(page)`."""
    context = browser.new_context()
    opened = context.new_page()
    errors: list[str] = []
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.console_errors = errors  # type: ignore[attr-defined]
    yield opened
    context.close()


def console_errors(page: Page) -> list[str]:
    return list(page.console_errors)  # type: ignore[attr-defined]


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/NAME.png``: its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
