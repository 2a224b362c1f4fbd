"""A headless browser for tests that look at pages as a user would: the Dagster UI, the reports.

Playwright drives Debian's Chromium (``/usr/bin/chromium``, or ``GENOFLOW_TEST_CHROMIUM``); Playwright's own
browser downloads are never used. Without Playwright or without that Chromium the tests skip and say which
is missing.

Use the ``page`` fixture (import it into the test module: ``from tests.browser import page``) or, outside
pytest fixtures, ``with chromium_page() as page: ...``.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
def chromium_page(viewport: dict[str, int] | None = None) -> Iterator["object"]:
    """A fresh Playwright page in headless Chromium, closed (with the browser) on exit.

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
            context = browser.new_context(viewport=viewport or VIEWPORT)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture
def page():
    """A Playwright page on headless Chromium for one test."""
    with chromium_page() as browser_page:
        yield browser_page
