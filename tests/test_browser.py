"""The app in a real browser: type a prompt, click Generate, see images and latency (GENIMG_UPDATE_SCREENSHOT=1 also
rewrites the README's Generate screenshot)."""
from __future__ import annotations

import pytest

from tests.browser import BROWSER_MARKS, again_for_the_screenshot, app_page, save_screenshot

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_url):
    with app_page(app_url) as page:
        yield page


def test_generate_in_the_browser_shows_images_and_latency(page, tmp_path):
    page.locator("#prompt textarea").fill("a crown below a bird")  # a scene: drawn object by object, arranged
    page.locator("#generate-button").click()
    page.locator("#latency").get_by_text("ms total").wait_for(timeout=120_000)
    images = page.locator("#gallery img")
    images.first.wait_for(timeout=30_000)
    assert images.count() == 4  # the default batch size
    latency = page.locator("#latency").inner_text()
    assert "ms per image" in latency and "images/s" in latency and "Prompt match" in latency
    assert "Drawn as a bird above a crown" in latency and "Layout: 2 objects drawn one at a time" in latency
    again_for_the_screenshot(page, page.locator("#generate-button").click, "#latency")
    save_screenshot(page, "generate", tmp_path)


def test_a_bad_prompt_shows_the_error_and_keeps_the_page(page):
    page.locator("#prompt textarea").fill("   ")
    page.locator("#generate-button").click()
    page.get_by_text("The prompt is empty").first.wait_for(timeout=30_000)
    assert page.locator("#gallery img").count() == 4  # the previous results are still there
