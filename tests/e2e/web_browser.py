"""Drive the Web client in Debian's headless Chromium (Playwright, never a downloaded browser); what the
Firefox test needs (Debian's firefox-esr, driven from Node by puppeteer-core in web/e2e/firefox.mjs).

Screenshots go to `test-artifacts/web/` (gitignored). A missing browser, driver or built app skips the
tests with a loud reason locally and fails them under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = os.environ.get("IM_TEST_CHROMIUM", "/usr/bin/chromium")
FIREFOX = os.environ.get("IM_TEST_FIREFOX", "/usr/bin/firefox-esr")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
PASSWORD = "password1"
T = TypeVar("T")
PHONE = {"width": 390, "height": 780}
TIMEOUT_MS = 20_000


def _missing(what: str) -> NoReturn:
    message = f"{what}: the browser tests of the Web client cannot run"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(f"*** SKIPPED: {message} ***")


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    if not (REPO / "web" / "dist" / "index.html").exists():
        _missing("web/dist is not built (make web)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (make setup)")


def require_firefox() -> str:
    """Firefox, Node and puppeteer-core are there and the app is built; returns the path of `node`."""
    if not Path(FIREFOX).exists():
        _missing(f"{FIREFOX} is missing (apt-get install firefox-esr)")
    node = shutil.which("node")
    if node is None:
        _missing("node is missing (Node.js 20.19+ with npm)")
    if not (REPO / "web" / "node_modules" / "puppeteer-core").is_dir():
        _missing("web/node_modules has no puppeteer-core (make web)")
    if not (REPO / "web" / "dist" / "index.html").exists():
        _missing("web/dist is not built (make web)")
    return node


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed for sure. Playwright gives every launch a fresh temporary user-data-dir
    (and removes it); each browser context inside it has its own storage."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:6]}"


@dataclass
class Person:
    """One person's browser context (its own storage: its own SharedWorker and session) and pages."""

    name: str
    context: Any
    page: Any
    shots: Path

    def tid(self, test_id: str, page: Any = None) -> Any:
        return (page or self.page).get_by_test_id(test_id)

    def shot(self, step: str, page: Any = None) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        (page or self.page).screenshot(path=str(self.shots / f"{step}-{self.name.split('_')[0]}.png"))

    def online(self, page: Any = None) -> None:
        from playwright.sync_api import expect

        expect((page or self.page).locator("[data-testid=conn-status]")).to_have_attribute(
            "data-status", "online", timeout=TIMEOUT_MS
        )

    def user_id(self) -> str:
        text = self.tid("me-name").locator("xpath=..").inner_text()
        found = re.search(r"(\d+)\s*$", text.strip())
        assert found, text
        return found.group(1)

    def conv(self, key: str, page: Any = None) -> Any:
        """A conversation list entry by its key: "u:<peer id>" or "g:<group id>"."""
        return (page or self.page).locator(f"[data-testid=conv][data-key='{key}']")

    def conv_named(self, name: str, page: Any = None) -> Any:
        return (page or self.page).locator(
            "[data-testid=conv]",
            has=(page or self.page).get_by_test_id("conv-name").get_by_text(name, exact=True),
        )


def open_person(browser: Any, base_url: str, name: str, shots: Path, phone: bool = False) -> Person:
    context = browser.new_context(viewport=PHONE if phone else {"width": 1100, "height": 720})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(base_url + "/")
    return Person(name, context, page, shots)


def register(p: Person, nickname: str) -> None:
    p.tid("auth-switch").click()
    p.page.fill("input[name=username]", p.name)
    p.page.fill("input[name=password]", PASSWORD)
    p.page.fill("input[name=nickname]", nickname)
    p.tid("auth-submit").click()
    p.online()


def login(p: Person) -> None:
    p.page.fill("input[name=username]", p.name)
    p.page.fill("input[name=password]", PASSWORD)
    p.tid("auth-submit").click()
    p.online()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run SDK code from a test that drives the browser (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
