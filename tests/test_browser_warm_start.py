"""The warm start in headless Chromium: a Generate click and a Live key press that come while their configuration is
still being prepared say so on the page, and each draws once it is ready (Live without another key press)."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from tests.browser import BROWSER_MARKS, app_page

pytestmark = BROWSER_MARKS
PREPARING = "Preparing the fast engine (first start only)"


@pytest.fixture
def held_app(monkeypatch):
    """The app launched with its real warm start, each preparation held at its first step until released."""
    import app
    import ui.live
    from genimg.serve.launch import free_port
    from ui.warm_start import WarmStart

    monkeypatch.setenv("GENIMG_WARM_START", "1")
    warm_start = WarmStart()
    monkeypatch.setattr(app, "WARM_START", warm_start)
    monkeypatch.setattr(ui.live, "WARM_START", warm_start)
    releases = {"Generate": threading.Event(), "Live": threading.Event()}

    def held(preparation):
        def run(advance):
            advance(0)
            assert releases[preparation.name].wait(600), f"{preparation.name} never released"
            preparation.run(advance)

        return dataclasses.replace(preparation, run=run)

    generate_preparation, live_preparation = app.generate_preparation, app.live_preparation
    monkeypatch.setattr(app, "generate_preparation", lambda: held(generate_preparation()))
    monkeypatch.setattr(app, "live_preparation", lambda: held(live_preparation()))
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    try:
        yield url, releases, warm_start
    finally:
        for release in releases.values():
            release.set()
        demo.close()


def test_first_clicks_during_preparation_say_so_then_draw(held_app):
    url, releases, warm_start = held_app
    with app_page(url) as page:
        page.locator("#prompt textarea").fill("a red heart")
        page.locator("#generate-button").click()
        page.get_by_text(PREPARING).first.wait_for(timeout=60_000)  # in Generate's progress bar
        releases["Generate"].set()
        page.locator("#latency").get_by_text("ms total").wait_for(timeout=600_000)
        assert warm_start.preparation(next(iter(warm_start._preparations))).state == "ready"

        page.get_by_role("tab", name="Live").click()
        page.locator("#live-prompt textarea").fill("red heart")
        latency = page.locator("#live-latency")
        latency.get_by_text(PREPARING).wait_for(timeout=60_000)
        assert "loading the distilled model" in latency.inner_text()
        releases["Live"].set()  # no key press after this: the page's timer asks again and draws
        latency.get_by_text("to draw").wait_for(timeout=600_000)
        assert PREPARING not in latency.inner_text()
        assert page.locator("#live-image img").evaluate("image => image.naturalWidth") == 128
