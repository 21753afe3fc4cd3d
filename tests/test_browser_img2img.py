"""Image to image in headless Chromium: start from an example or an uploaded file, see the redrawn image; a bad
file's message (GENIMG_UPDATE_SCREENSHOT=1 also rewrites the README's Image to image screenshot)."""
from __future__ import annotations

import pytest
from PIL import Image

from tests.browser import BROWSER_MARKS, again_for_the_screenshot, app_page, save_screenshot

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_url):
    with app_page(app_url, 'Image to image') as page:
        yield page


def upload(page, path) -> None:
    page.locator("#img2img-input input[type=file]").set_input_files(str(path))
    page.locator("#img2img-input img").first.wait_for(timeout=30_000)  # the preview of the upload


def test_upload_an_image_and_see_it_redrawn(page, tmp_path):
    path = tmp_path / "heart.png"
    Image.new("RGB", (120, 120), (220, 20, 40)).save(path)
    upload(page, path)
    page.locator("#img2img-prompt textarea").fill("rocket")
    page.locator("#img2img-button").click()
    page.locator("#img2img-latency").get_by_text("ms total").wait_for(timeout=120_000)
    output = page.locator("#img2img-output img")
    output.wait_for(timeout=30_000)
    assert output.evaluate("image => image.naturalWidth") == 128  # upscaled 2x by default
    latency = page.locator("#img2img-latency").inner_text()
    assert "image_encode" in latency and "Strength 0.5" in latency


def test_a_file_that_is_not_an_image_gets_a_clear_message(page, tmp_path):
    path = tmp_path / "fake.webp"
    path.write_bytes(b"RIFF....WEBP but not really an image at all")
    page.reload()  # a fresh, empty upload box
    page.get_by_role("tab", name="Image to image").click()
    page.locator("#img2img-prompt textarea").fill("rocket")
    page.locator("#img2img-input input[type=file]").set_input_files(str(path))
    page.locator("#img2img-button").click()
    page.get_by_text("not a PNG, JPEG or WebP").first.wait_for(timeout=60_000)


def test_one_click_on_an_example_then_redraw(page, tmp_path):
    page.reload()  # a fresh tab: nothing uploaded, nothing drawn yet
    page.get_by_role("tab", name="Image to image").click()
    page.locator("#img2img-examples [data-testid=dataset-cell-0-0]").click()  # the first example: a red heart
    page.locator("#img2img-input img").first.wait_for(timeout=30_000)
    assert page.locator("#img2img-prompt textarea").input_value() == "broken heart"
    page.locator("#img2img-button").click()
    page.locator("#img2img-latency").get_by_text("ms total").wait_for(timeout=120_000)
    page.locator("#img2img-output img").wait_for(timeout=30_000)
    assert "Strength 0.7" in page.locator("#img2img-latency").inner_text()
    again_for_the_screenshot(page, page.locator("#img2img-button").click, "#img2img-latency")
    save_screenshot(page, "img2img", tmp_path)
