"""The Compare and Benchmark tabs in headless Chromium, as a visitor with nothing at hand sees them
(GENIMG_UPDATE_SCREENSHOT=1 also rewrites the README's screenshots of both)."""
from __future__ import annotations

import pytest

from tests.browser import BROWSER_MARKS, app_page, save_screenshot

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_url):
    with app_page(app_url) as page:
        yield page


def test_compare_runs_its_defaults_side_by_side(page, tmp_path):
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    images = page.locator("#compare-gallery img")
    images.nth(3).wait_for(timeout=300_000)  # four configurations, each warmed up then timed five times
    assert images.count() == 4
    assert "x" in page.locator("#compare-gallery").inner_text()  # captions carry the speed-up
    page.locator("#compare-code").wait_for(timeout=30_000)
    save_screenshot(page, "compare", tmp_path)


def test_benchmark_opens_on_the_summary_and_plot_with_the_tables_folded(page, tmp_path):
    page.get_by_role("tab", name="Benchmark").click()
    summary = page.locator("#bench-summary")
    summary.get_by_text("fastest configuration per model family").wait_for(timeout=30_000)
    assert "2.09x" in summary.inner_text() and "missed" not in summary.inner_text()
    page.locator("#bench-plot img").wait_for(timeout=30_000)
    assert not page.locator("#bench-tables").get_by_text("| config |").is_visible()
    save_screenshot(page, "benchmark", tmp_path)
