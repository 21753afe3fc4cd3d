"""Keystroke-to-image latency of the Live tab, measured in headless Chromium (Playwright).

    python tools/live_latency.py [--text "a red heart rocket pizza"] [--rounds 3] [--json]

Launches the app in-process on a free loopback port, types the text into the Live tab's prompt one word-piece at a
time, and times, in the page's own clock (performance.now), from the key press to the image of that prompt being
on screen (its latency line shown and its <img> loaded). Prints median and p90. tests/test_browser_live.py uses the
same probe. Each piece is measured alone: the next key is pressed once the previous image is shown.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Records the last key press, every change of the latency line and every image load under #live-image.
PROBE = """() => {
  const box = document.querySelector('#live-prompt textarea');
  const latency = document.querySelector('#live-latency');
  window.__live = {keyAt: null, updates: [], loads: []};
  box.addEventListener('keydown', () => { window.__live.keyAt = performance.now(); }, true);
  new MutationObserver(() => window.__live.updates.push([performance.now(), latency.innerText]))
    .observe(latency, {subtree: true, childList: true, characterData: true});
  document.querySelector('#live-image').addEventListener('load', () => window.__live.loads.push(performance.now()),
                                                          true);
}"""
SHOWN = """(marker) => {
  const update = window.__live.updates.find(([, text]) => text.includes(marker));
  const image = document.querySelector('#live-image img');
  if (!update || !image || !image.complete || image.naturalWidth === 0) return null;
  const loads = window.__live.loads.filter((at) => at >= window.__live.keyAt);
  return Math.max(update[0], ...loads) - window.__live.keyAt;
}"""


def word_pieces(text: str) -> list[str]:
    """What to type per measurement: each letter, a space going with the letter after it (a prompt ending in a space
    is the same prompt as without it, so it would not redraw anything new)."""
    pieces, pending = [], ""
    for char in text:
        pending += char
        if char != " ":
            pieces.append(pending)
            pending = ""
    return pieces


def install_probe(page) -> None:
    page.locator("#live-prompt textarea").fill("")
    page.evaluate(PROBE)


def type_and_time(page, piece: str, typed_so_far: str, timeout_ms: float = 60_000) -> float:
    """Type ``piece`` after ``typed_so_far``; milliseconds from its last key press to its image on screen."""
    page.evaluate("() => { window.__live.updates = []; window.__live.loads = []; }")
    page.locator("#live-prompt textarea").press_sequentially(piece)
    marker = "\u201c" + " ".join((typed_so_far + piece).split()) + "\u201d"
    return page.wait_for_function(SHOWN, arg=marker, timeout=timeout_ms, polling=5).json_value()


def measure(page, text: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        install_probe(page)
        typed = ""
        for piece in word_pieces(text):
            samples.append(type_and_time(page, piece, typed))
            typed += piece
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"count": len(ordered), "median_ms": round(statistics.median(ordered), 1),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default="a red heart rocket pizza")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", default="warm up", help="typed first, untimed (loads the model)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import app
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_role("tab", name="Live").click()
            measure(page, arguments.warm_up, 1)
            samples = measure(page, arguments.text, arguments.rounds)
            browser.close()
    finally:
        demo.close()
    result = summary(samples)
    print(json.dumps({**result, "samples_ms": [round(sample, 1) for sample in samples]}) if arguments.json else
          f"keystroke-to-image over {result['count']} key presses: median {result['median_ms']} ms, "
          f"p90 {result['p90_ms']} ms (min {result['min_ms']}, max {result['max_ms']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
