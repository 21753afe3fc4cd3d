"""The warm start (ui/warm_start.py): once the page is up, the first clicks' configurations are prepared in the
background; a click that comes while its configuration is being prepared says so on the page."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from ui.warm_start import PREPARING, Preparation, WarmStart


@pytest.fixture(autouse=True)
def warm_start_on(monkeypatch):
    monkeypatch.setenv("GENIMG_WARM_START", "1")  # tests/conftest.py turns it off for every other test


def blocking(key, name="Generate", steps=("loading the models", "a first, untimed batch")):
    """A preparation that stops at its second step until ``release`` is set."""
    release, reached = threading.Event(), threading.Event()

    def run(advance):
        advance(0)
        advance(1)
        reached.set()
        assert release.wait(60), "never released"

    return Preparation(key, name, steps, run), release, reached


def test_the_background_preparation_marks_each_configuration_ready_in_order():
    order = []
    preparations = [Preparation((name,), name, ("one step",), lambda advance, name=name: order.append(name))
                    for name in ("Generate", "Live")]
    warm_start = WarmStart()
    thread = warm_start.start(preparations)
    assert thread.daemon  # never keeps the app's process alive
    thread.join(30)
    assert order == ["Generate", "Live"]
    assert [warm_start.preparation((name,)).state for name in order] == ["ready", "ready"]
    assert warm_start.pending(("Generate",)) is None and warm_start.message(("Live",)) is None
    assert warm_start.pending(("something else",)) is None and warm_start.pending((["unhashable"],)) is None


def test_a_failed_preparation_is_logged_and_never_stops_the_next(caplog):
    def broken(advance):
        raise RuntimeError("no such model")

    warm_start = WarmStart()
    with caplog.at_level(logging.ERROR, logger="genimg.app"):
        warm_start.start([Preparation(("a",), "Generate", ("x",), broken),
                          Preparation(("b",), "Live", ("x",), lambda advance: None)]).join(30)
    assert warm_start.preparation(("a",)).state == "failed" and "no such model" in warm_start.preparation(("a",)).error
    assert warm_start.preparation(("b",)).state == "ready"
    assert "preparing Generate's default configuration failed" in caplog.text and "no such model" in caplog.text
    assert warm_start.pending(("a",)) is None  # a request for it loads it itself, as without a warm start


def test_GENIMG_WARM_START_0_turns_it_off_and_anything_but_0_or_1_is_refused(monkeypatch):
    import app
    from genimg.errors import InvalidRequest
    from genimg.serve.limits import ServingLimits

    warm_start = WarmStart()
    monkeypatch.setattr(app, "WARM_START", warm_start)
    monkeypatch.setenv("GENIMG_WARM_START", "0")
    assert app.start_warm_start() is None and warm_start.thread is None
    assert ServingLimits.from_env({}).warm_start is True  # on by default
    with pytest.raises(InvalidRequest, match="GENIMG_WARM_START='yes please': choose 1"):
        ServingLimits.from_env({"GENIMG_WARM_START": "yes please"})
    monkeypatch.setenv("GENIMG_WARM_START", "1")
    assert app.start_warm_start(cluster=True) is None  # a cluster's replicas hold the models


def test_the_message_names_the_step_and_a_wait_reports_progress_until_ready():
    preparation, release, reached = blocking(("a",))
    waiting = Preparation(("b",), "Live", ("x",), lambda advance: None)
    warm_start = WarmStart()
    warm_start.start([preparation, waiting])
    assert reached.wait(30)
    assert warm_start.message(("a",)).startswith(f"{PREPARING} … a first, untimed batch (step 2 of 2, ")
    assert warm_start.message(("b",)) == f"{PREPARING} … next, after Generate's"
    reports = []

    def progress(value, desc=None, unit=None):
        reports.append((value, desc))
        release.set()

    assert warm_start.wait(("a",), progress, poll_s=0.05) is True
    assert reports[0][0] == (1, 2) and reports[0][1].startswith(f"{PREPARING} … a first, untimed batch")
    assert warm_start.preparation(("a",)).state == "ready"
    assert warm_start.wait(("a",), progress) is False  # ready: no wait, no report


def test_a_generate_click_during_preparation_shows_it_in_the_progress_bar_then_draws(monkeypatch):
    import app
    from ui.generation import configuration_key

    request = dict(prompt="rocket", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)
    key = configuration_key("gan", "fp32", "", "default", False, False, True, "torch", "none", False, 1.0, True)
    preparation, release, reached = blocking(key)
    warm_start = WarmStart()
    monkeypatch.setattr(app, "WARM_START", warm_start)
    warm_start.start([preparation])
    assert reached.wait(30)
    shown = []

    def progress(value, desc=None, unit=None):
        shown.append(desc)
        if desc and desc.startswith(PREPARING):
            release.set()  # the preparation ends once the page has said so

    gallery, latency = app.generate(**request, progress=progress)
    assert shown[0].startswith(f"{PREPARING} … a first, untimed batch (step 2 of 2")
    assert len(gallery) == 1 and "ms total" in latency
    assert warm_start.preparation(key).state == "ready"


def test_a_live_key_press_during_preparation_gets_the_message_and_the_retry_timer():
    import gradio as gr

    import ui.live

    key = ui.live.live_key(ui.live.LIVE_PRECISION, True, "openvino")
    preparation, release, reached = blocking(key, "Live", ui.live.live_preparation().steps)
    warm_start = WarmStart()
    original = ui.live.WARM_START
    ui.live.WARM_START = warm_start
    try:
        warm_start.start([preparation])
        assert reached.wait(30)
        image, latency, code, shown, timer = ui.live.live_page_event("a red heart", 0, 1, ui.live.LIVE_PRECISION,
                                                                     True, "openvino", True, None)
        assert image == gr.skip() and code == gr.skip() and shown is None and timer.active is True
        assert latency.startswith(f"**{PREPARING} … converting to OpenVINO") and "(step 2 of 2" in latency
        assert "appears as soon as it is ready" in latency
        cleared = ui.live.live_page_event("  ", 0, 1, ui.live.LIVE_PRECISION, True, "openvino", True, None)
        assert cleared[1] == ui.live.EMPTY_MESSAGE and cleared[4].active is False  # an empty box is never held
    finally:
        release.set()
        ui.live.WARM_START = original
    warm_start.thread.join(30)
    assert warm_start.message(key) is None


def test_a_retry_whose_load_fails_says_why_and_stops_the_timer(monkeypatch):
    import gradio as gr

    import ui.live

    def failing(*args):
        raise gr.Error("Could not load the 'latent-lcm' backend")

    monkeypatch.setattr(ui.live, "live_page", failing)
    image, latency, _, _, timer = ui.live.live_retry("rocket", 0, 1, "fp32", True, "torch", True, None)
    assert image == gr.skip() and "Could not load" in latency and timer.active is False


def test_the_page_renders_at_once_while_the_warm_start_prepares(monkeypatch):
    import httpx

    import app
    from genimg.serve.launch import free_port

    preparation, release, reached = blocking(("Generate",))
    warm_start = WarmStart()
    monkeypatch.setattr(app, "WARM_START", warm_start)
    monkeypatch.setattr(app, "generate_preparation", lambda: preparation)
    monkeypatch.setattr(app, "live_preparation", lambda: Preparation(("Live",), "Live", ("x",), lambda a: None))
    demo = app.build_demo()
    try:
        _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                               quiet=True)
        assert reached.wait(30)  # started once the server was up
        started = time.perf_counter()
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "genimg" in page.text
        assert time.perf_counter() - started < 10 and warm_start.pending(("Generate",)) is not None
    finally:
        release.set()
        demo.close()
    warm_start.thread.join(30)
    assert [warm_start.preparation(key).state for key in (("Generate",), ("Live",))] == ["ready", "ready"]


@pytest.mark.slow
def test_the_real_preparations_leave_generate_and_live_ready_to_draw():
    """Generate's and Live's default configurations, prepared for real (models, OpenVINO conversion into the test's
    own cache): both ready, and the first click then loads nothing."""
    import app
    from ui.generation import load_generator
    from ui.live import LIVE_BACKEND, LIVE_PRECISION, live_options, live_preparation

    warm_start = WarmStart()
    warm_start.start([app.generate_preparation(), live_preparation()]).join(600)
    assert [(p.name, p.state, p.error) for p in warm_start._preparations.values()] == [
        ("Generate", "ready", None), ("Live", "ready", None)]
    load = {name: value for name, value in app.GENERATE_DEFAULTS.items() if name not in ("steps", "batch_size")}
    assert load_generator(**load)[1] < app.LOADED_NOW_S
    assert load_generator(LIVE_BACKEND, LIVE_PRECISION, **live_options(True, "openvino"))[1] < app.LOADED_NOW_S
