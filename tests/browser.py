"""A headless browser for tests that look at pages as a user would: the Dagster UI, the reports.

Playwright drives Debian's Chromium (``/usr/bin/chromium``, or ``GENOFLOW_TEST_CHROMIUM``); Playwright's own
browser downloads are never used. Without Playwright or without that Chromium the tests skip and say which
is missing.

Use the ``page`` fixture (import it into the test module: ``from tests.browser import page``) or, outside
pytest fixtures, ``with chromium_page() as page: ...``. ``dagster_webserver`` serves an instance to look at.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import _free_port

REPO = Path(__file__).resolve().parents[1]
WEBSERVER = Path(sys.executable).with_name("dagster-webserver")
SERVER_START_SECONDS = 180
DEFAULT_CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1600, "height": 1000}


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when it is not installed."""
    configured = os.environ.get("GENOFLOW_TEST_CHROMIUM", DEFAULT_CHROMIUM)
    return configured if Path(configured).is_file() else shutil.which("chromium")


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return f"no Chromium at {DEFAULT_CHROMIUM} (apt-get install chromium) and none on PATH"
    return None


requires_browser = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@contextmanager
def chromium_browser() -> Iterator["object"]:
    """Headless Chromium (a Playwright Browser), closed on exit; each `new_context()` is a separate person
    (own cookies and storage). Playwright's sync API allows one of these at a time per thread.

    ``--no-sandbox`` because the tests run as root in containers, where Chromium's sandbox cannot start.
    """
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page(viewport: dict[str, int] | None = None) -> Iterator["object"]:
    """A fresh Playwright page in headless Chromium, closed (with the browser) on exit."""
    with chromium_browser() as browser:
        yield browser.new_context(viewport=viewport or VIEWPORT).new_page()


@pytest.fixture
def page():
    """A Playwright page on headless Chromium for one test."""
    with chromium_page() as browser_page:
        yield browser_page


def skip_welcome_dialog(page) -> None:
    """A fresh browser profile gets Dagster's 'Join the community' dialog over the page, whenever the UI
    decides to show it: skip it each time it gets in the way."""
    page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                             lambda: page.get_by_role("button", name="Skip").click())


@contextmanager
def dagster_webserver(env: dict[str, str], folder: Path) -> Iterator[str]:
    """dagster-webserver on a free loopback port over the instance `env` names (the repository's workspace),
    its log in `folder`; yields its base URL once it answers, and stops it with its code server on exit."""
    port = _free_port()
    log = folder / "webserver.log"
    process = subprocess.Popen([str(WEBSERVER), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
                               cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(url, process, log)
        yield url
    finally:
        _stop(process)


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"dagster-webserver did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the webserver and its code server: the whole process group it leads."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
