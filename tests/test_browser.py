"""The app in a real browser: type a prompt, click Generate, see images and latency; saves the README screenshot."""
from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "assets" / "screenshots" / "app.png"
# Headless in a container, with nothing that phones home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the Debian chromium package at /usr/bin/chromium "
                                                     "(apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app_url)
        yield page
        browser.close()


def test_generate_in_the_browser_shows_images_and_latency(page):
    page.locator("#prompt textarea").fill("grinning face")
    page.locator("#generate-button").click()
    page.locator("#latency").get_by_text("ms total").wait_for(timeout=120_000)
    images = page.locator("#gallery img")
    images.first.wait_for(timeout=30_000)
    assert images.count() == 4  # the default batch size
    latency = page.locator("#latency").inner_text()
    assert "ms per image" in latency and "images/s" in latency and "Prompt match" in latency
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_bad_prompt_shows_the_error_and_keeps_the_page(page):
    page.locator("#prompt textarea").fill("   ")
    page.locator("#generate-button").click()
    page.get_by_text("The prompt is empty").first.wait_for(timeout=30_000)
    assert page.locator("#gallery img").count() == 4  # the previous results are still there
