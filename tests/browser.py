"""Headless Chromium for the browser tests (test_browser*.py): the Debian package's binary, nothing that phones home."""
from __future__ import annotations

import os
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


# The README's screenshots, one per tab: rewritten only when asked, so a plain test run leaves the tree as it found it.
#     GENIMG_UPDATE_SCREENSHOT=1 pytest -m browser
SCREENSHOTS = Path(__file__).resolve().parents[1] / "assets" / "screenshots"


def updating_screenshots() -> bool:
    return os.environ.get("GENIMG_UPDATE_SCREENSHOT") == "1"


def again_for_the_screenshot(page, action, result_selector: str, timeout_ms: float = 120_000) -> None:
    """With GENIMG_UPDATE_SCREENSHOT=1: ``action`` once more and its new result awaited, so the screenshot shows a
    warm run (the first one loads the models and says so), as a visitor's second click sees it."""
    if not updating_screenshots():
        return
    headline = ("(selector) => (document.querySelector(selector).innerText.split('\\n')"
                ".find(line => line.includes('ms total')) || '')")
    before = page.evaluate(headline, result_selector)
    action()
    # The new result's headline ("### 812.3 ms total ..."), not the old one still shown while the run is pending.
    page.wait_for_function(f"([selector, before]) => {{ const line = ({headline})(selector); "
                           "return line !== '' && line !== before; }", arg=[result_selector, before],
                           timeout=timeout_ms)
    page.wait_for_timeout(500)  # the rest of the page (gallery, code) settles


def save_screenshot(page, name: str, tmp_path: Path) -> Path:
    """The whole page as ``name``.png: into assets/screenshots/ with GENIMG_UPDATE_SCREENSHOT=1, else into tmp_path.
    The mouse moves off the page first, so no hover state is captured."""
    folder = SCREENSHOTS if updating_screenshots() else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.mouse.move(0, 0)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not an empty image
    return path

