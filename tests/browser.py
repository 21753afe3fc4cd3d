"""Headless Chromium for the browser tests (test_browser*.py): the Debian package's binary, nothing that phones home."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container, with nothing that phones home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Every browser test module carries these marks.
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the Debian chromium package at /usr/bin/chromium "
                                                     "(apt-get install -y chromium)"),
]


@contextmanager
def app_page(url: str, tab: str | None = None):
    """A 1280x900 page on the app at ``url``, on ``tab`` if given; the browser closes after the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        if tab:
            page.get_by_role("tab", name=tab).click()
        yield page
        browser.close()
