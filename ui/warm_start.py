"""Warm start: once the page is up, a daemon thread prepares what the first clicks need (Generate's and Live's
default configurations: models loaded, OpenVINO converted or read from its disk cache, one untimed image each), one
after another. A click that needs a configuration still being prepared says so on the page instead of waiting
silently: Generate shows it in its progress bar and waits, Live shows it in its latency line and draws once it is
ready (ui/live.py).

Preparation never takes the app down: an error is logged and the configuration is marked failed, and the first
request for it loads it as without a warm start (and reports whatever goes wrong, with its message).
``GENIMG_WARM_START=0`` turns it off (``ServingLimits.warm_start``; the tests do: they load what they use
themselves).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

PREPARING = "Preparing the fast engine (first start only)"
logger = logging.getLogger("genimg.app")


@dataclass
class Preparation:
    """One configuration to prepare: ``run(advance)`` does the work and calls ``advance(i)`` as it starts step i of
    ``steps`` (what the page shows: "loading the models", ...)."""
    key: tuple  # ui.generation.configuration_key of the configuration
    name: str  # the tab it serves: "Generate", "Live"
    steps: tuple[str, ...]
    run: Callable[[Callable[[int], None]], None]
    state: str = "waiting"  # waiting -> preparing -> ready | failed
    step: int = 0
    started: float | None = None
    seconds: float | None = None  # how long it took, once ready or failed
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class WarmStart:
    """The configurations prepared in the background, in order, and what the page says while they are."""

    def __init__(self):
        self._preparations: dict[tuple, Preparation] = {}
        self.thread: threading.Thread | None = None

    def start(self, preparations: list[Preparation]) -> threading.Thread | None:
        """Prepares ``preparations`` one after another in a daemon thread (None when there are none). Called once
        the server is up: the page never waits for it."""
        if not preparations:
            return None
        self._preparations = {preparation.key: preparation for preparation in preparations}
        self.thread = threading.Thread(target=self._prepare_all, args=(preparations,), name="genimg-warm-start",
                                       daemon=True)
        self.thread.start()
        return self.thread

    def _prepare_all(self, preparations: list[Preparation]) -> None:
        for preparation in preparations:
            preparation.state, preparation.started = "preparing", time.perf_counter()

            def advance(step: int, preparation=preparation) -> None:
                preparation.step = min(step, len(preparation.steps) - 1)

            try:
                preparation.run(advance)
                preparation.state = "ready"
            except Exception as error:  # noqa: BLE001 - a failed preparation must never take the app down
                logger.exception("warm start: preparing %s's default configuration failed", preparation.name)
                preparation.state, preparation.error = "failed", f"{type(error).__name__}: {error}"
            preparation.seconds = time.perf_counter() - preparation.started
            preparation.done.set()
            logger.info("warm start: %s %s in %.1f s", preparation.name, preparation.state, preparation.seconds)

    def preparation(self, key) -> Preparation | None:
        try:
            return self._preparations.get(key)
        except TypeError:  # an API caller's unhashable option: not a configuration prepared here
            return None

    def pending(self, key) -> Preparation | None:
        """The preparation of this configuration while it is waiting its turn or being prepared, else None."""
        preparation = self.preparation(key)
        return preparation if preparation is not None and preparation.state in ("waiting", "preparing") else None

    def message(self, key) -> str | None:
        """What the page shows while this configuration is being prepared (None once it is ready, or failed)."""
        preparation = self.pending(key)
        if preparation is None:
            return None
        if preparation.state == "waiting":
            current = next((other for other in self._preparations.values() if other.state == "preparing"), None)
            return f"{PREPARING} … next, after {current.name}'s" if current else f"{PREPARING} …"
        elapsed = time.perf_counter() - preparation.started
        return (f"{PREPARING} … {preparation.steps[preparation.step]} (step {preparation.step + 1} of "
                f"{len(preparation.steps)}, {elapsed:.0f} s so far)")

    def wait(self, key, progress, poll_s: float = 0.5, check: Callable[[], None] = lambda: None) -> bool:
        """Blocks while this configuration is being prepared, reporting each step to ``progress`` (a gr.Progress);
        True if it waited. ``check`` runs between reports and may raise to stop waiting (a client that left)."""
        waited = False
        while (preparation := self.pending(key)) is not None:
            waited = True
            progress((preparation.step, len(preparation.steps)), desc=self.message(key), unit="steps")
            check()
            preparation.done.wait(poll_s)
        return waited


WARM_START = WarmStart()  # the app's one warm start (app.launch starts it)
