"""The Live tab in headless Chromium: every key press redraws the image, fast typing skips stale prompts
(GENIMG_UPDATE_SCREENSHOT=1 also rewrites the README's Live screenshot)."""
from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, app_page, save_screenshot, updating_screenshots
from tools.live_latency import SHOWN, install_probe, measure, summary, word_pieces

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_url):
    with app_page(app_url, 'Live') as page:
        yield page


def test_word_pieces_keep_a_space_with_the_letter_after_it():
    assert word_pieces("a red") == ["a", " r", "e", "d"]


def test_every_key_press_redraws_the_image_with_its_latency(page, tmp_path):
    samples = measure(page, "red heart", rounds=1)
    assert len(samples) == len(word_pieces("red heart")) and all(0 < sample < 60_000 for sample in samples)
    print("keystroke-to-image", summary(samples))  # pytest -s shows it; speed targets are not asserted
    latency = page.locator("#live-latency").inner_text()
    assert "to draw \u201cred heart\u201d" in latency and "drawn as red heart" in latency and "latent-lcm" in latency
    image = page.locator("#live-image img")
    assert image.evaluate("image => image.naturalWidth") == 128  # upscaled 2x by default
    if updating_screenshots():  # typed once more, warm, as a visitor's second prompt is drawn
        box = page.locator("#live-prompt textarea")
        box.press("Control+a")
        box.press("Backspace")
        page.wait_for_function("() => document.querySelector('#live-latency').innerText.includes('Type a prompt')",
                               timeout=30_000)
        measure(page, "red heart", rounds=1)
    save_screenshot(page, "live", tmp_path)


def test_fast_typing_draws_the_newest_prompt_and_drops_stale_ones(page):
    install_probe(page)
    text = "grinning face with big eyes"
    page.locator("#live-prompt textarea").press_sequentially(text)  # no delay: far faster than a redraw
    page.wait_for_function(SHOWN, arg=f"\u201c{text}\u201d", timeout=60_000, polling=20)
    page.wait_for_timeout(500)  # anything still queued would arrive now
    updates = page.evaluate("() => window.__live.updates.map(([, text]) => text)")
    drawn = list(dict.fromkeys(re.search("to draw \u201c(.*?)\u201d", update).group(1) for update in updates
                               if "to draw" in update))  # the prompts drawn, in order
    assert 1 <= len(drawn) < len(text) / 2  # not one redraw per key press
    assert drawn[-1] == text  # and the last one is the newest prompt


def test_clearing_the_prompt_says_what_to_do(page):
    box = page.locator("#live-prompt textarea")
    box.press("Control+a")
    box.press("Backspace")
    page.wait_for_function("() => document.querySelector('#live-latency').innerText.includes('Type a prompt')",
                           timeout=30_000)
    assert page.locator("#live-image img").count() == 0
