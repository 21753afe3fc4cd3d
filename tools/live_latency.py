"""Keystroke-to-image latency of the Live tab, measured in headless Chromium (Playwright).

    python tools/live_latency.py [--text "a red heart rocket pizza"] [--rounds 2] [--pause-ms 300] [--json]
    python tools/live_latency.py --root /path/to/another/checkout     # the same probe on another version of the app

Launches the app in-process on a free loopback port and times, in the page's own clock (performance.now), from the
key press to the frame that shows that prompt's result: its latency line on the page and, when the image changed, the
new image loaded, both painted (the animation frame after them). Two measurements:

- **single key presses**: one word-piece typed, then wait for its result, then a pause (``--pause-ms``), then the
  next: what a user who types and watches sees. Median and p90 over every key press (at least 20 by default).
- **fast typing**: the whole text typed with ``--typing-delay-ms`` between keys, not waiting; for each key press, the
  time until a result as new as that key or newer is shown (stale prompts are dropped, so that is what a fast typist
  waits for), and the number of results drawn.

Each single key press also gets a breakdown from the browser's resource timing: key to request sent (the browser's
event and Gradio's front end), the request(s) until their answer (the server, the engine's total from the latency line
inside it), answer to the latency line on the page, and image and paint after that. tests/test_browser_live.py uses
the same probe.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import statistics
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Records each key press, every change of the latency line and every image load under #live-image, each with the
# animation frame that follows it (the frame that paints it).
PROBE = """() => {
  const box = document.querySelector('#live-prompt textarea');
  const latency = document.querySelector('#live-latency');
  window.__live = {keyAt: null, keys: [], updates: [], loads: []};
  if (window.__liveProbe) return;  // installed once per page; a second call only resets the records
  window.__liveProbe = true;
  box.addEventListener('keydown', () => {
    window.__live.keyAt = performance.now(); window.__live.keys.push(window.__live.keyAt); }, true);
  new MutationObserver(() => {
    const update = [performance.now(), latency.innerText, null];
    window.__live.updates.push(update);
    requestAnimationFrame(() => { update[2] = performance.now(); });
  }).observe(latency, {subtree: true, childList: true, characterData: true});
  document.querySelector('#live-image').addEventListener('load', () => {
    const load = [performance.now(), null];
    window.__live.loads.push(load);
    requestAnimationFrame(() => { load[1] = performance.now(); });
  }, true);
}"""
# Milliseconds from the last key press to the painted frame showing the result for ``marker`` (the quoted prompt),
# or null while it is not on screen yet.
SHOWN = """(marker) => {
  const live = window.__live;
  const update = live.updates.find(([at, text]) => at >= live.keyAt && text.includes(marker));
  const image = document.querySelector('#live-image img');
  if (!update || update[2] === null || !image || !image.complete || image.naturalWidth === 0) return null;
  const loads = live.loads.filter(([at]) => at >= live.keyAt);
  if (loads.some(([, painted]) => painted === null)) return null;
  return Math.max(update[2], ...loads.map(([, painted]) => painted)) - live.keyAt;
}"""
# Where the time of the last key press went: resource timing of the requests it caused, the line and the image.
BREAKDOWN = """(marker) => {
  const live = window.__live;
  const requests = performance.getEntriesByType('resource').filter((entry) => entry.startTime >= live.keyAt
    && /\\/(run|queue\\/join|queue\\/data|file=)/.test(entry.name));
  const calls = requests.filter((entry) => !/file=/.test(entry.name));
  const files = requests.filter((entry) => /file=/.test(entry.name));
  const update = live.updates.find(([at, text]) => at >= live.keyAt && text.includes(marker));
  const loads = live.loads.filter(([at]) => at >= live.keyAt);
  const first = calls.length ? calls[0].startTime : null;
  const answered = calls.length ? Math.max(...calls.map((entry) => entry.responseEnd)) : null;
  return {to_request: first === null ? null : first - live.keyAt,
          request: first === null ? null : answered - first,
          requests: calls.map((entry) => entry.name.replace(/^.*gradio_api/, '')),
          answer_to_line: answered === null ? null : update[0] - answered,
          image_fetch: files.length ? files[0].responseEnd - files[0].startTime : 0,
          line_to_image_loaded: loads.length ? loads[loads.length - 1][0] - update[0] : null,
          paint: Math.max(update[2], ...loads.map(([, painted]) => painted))
                 - Math.max(update[0], ...loads.map(([at]) => at)),
          line: update[1]};
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


def marker_of(prompt: str) -> str:
    return "\u201c" + " ".join(prompt.split()) + "\u201d"


def install_probe(page) -> None:
    page.locator("#live-prompt textarea").fill("")
    page.evaluate(PROBE)


def type_and_time(page, piece: str, typed_so_far: str, timeout_ms: float = 60_000, breakdown: list | None = None):
    """Type ``piece`` after ``typed_so_far``; milliseconds from its last key press to its result on screen."""
    page.evaluate("() => { window.__live.updates = []; window.__live.loads = []; "
                  "performance.clearResourceTimings(); }")
    page.locator("#live-prompt textarea").press_sequentially(piece)
    marker = marker_of(typed_so_far + piece)
    shown = page.wait_for_function(SHOWN, arg=marker, timeout=timeout_ms, polling=5).json_value()
    if breakdown is not None:
        breakdown.append(page.evaluate(BREAKDOWN, marker))
    return shown


def measure(page, text: str, rounds: int, pause_ms: float = 0, timeout_ms: float = 60_000,
            breakdown: list | None = None) -> list[float]:
    samples = []
    for _ in range(rounds):
        install_probe(page)
        typed = ""
        for piece in word_pieces(text):
            samples.append(type_and_time(page, piece, typed, timeout_ms, breakdown))
            typed += piece
            if pause_ms:
                page.wait_for_timeout(pause_ms)
    return samples


def fast_typing(page, text: str, delay_ms: float, timeout_ms: float = 60_000) -> dict:
    """Type ``text`` with ``delay_ms`` between keys; per key press, the milliseconds until a result for that prompt or
    a newer one is painted, and the prompts drawn."""
    install_probe(page)
    page.locator("#live-prompt textarea").press_sequentially(text, delay=delay_ms)
    page.wait_for_function(SHOWN, arg=marker_of(text), timeout=timeout_ms, polling=5)
    page.wait_for_timeout(300)  # anything still on its way would arrive now
    keys, updates = page.evaluate("() => [window.__live.keys, window.__live.updates]")
    prefixes = [text[:index + 1] for index in range(len(text))]
    drawn, previous = [], None  # (painted at, index of the prefix it shows), one per result (a line may change twice)
    for _, line, painted in updates:
        found = re.search("\u201c(.*?)\u201d", line)
        if line == previous:
            continue
        previous = line
        if found and found.group(1) in [" ".join(p.split()) for p in prefixes]:
            drawn.append((painted, max(i for i, p in enumerate(prefixes) if " ".join(p.split()) == found.group(1))))
    waits = []
    for index, key_at in enumerate(keys[:len(prefixes)]):
        later = [painted for painted, shown in drawn if shown >= index and painted is not None and painted >= key_at]
        if later:
            waits.append(min(later) - key_at)
    return {"samples": waits, "results_drawn": len(drawn), "keys": len(prefixes)}


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"count": len(ordered), "median_ms": round(statistics.median(ordered), 1),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1)}


def breakdown_summary(breakdown: list[dict]) -> dict:
    """Medians of each part over the single key presses; engine: the total the latency line reports."""
    parts = {}
    for entry in breakdown:
        engine = re.search(r"([\d,.]+) ms", entry["line"])
        entry = {**entry, "engine_in_line": float(engine.group(1).replace(",", "")) if engine else None}
        for name, value in entry.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                parts.setdefault(name, []).append(value)
    medians = {name: round(statistics.median(values), 1) for name, values in parts.items()}
    medians["requests_per_key"] = sorted({" + ".join(entry["requests"]) for entry in breakdown})
    return medians


def run_page(app, port: int, arguments, breakdown: list, fast: list) -> list[float]:
    """Launch the app, type in its Live tab in Chromium; the single key presses' waits (fills breakdown and fast)."""
    from playwright.sync_api import sync_playwright

    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_role("tab", name="Live").click()
            measure(page, arguments.warm_up, 1, timeout_ms=600_000)
            samples = measure(page, arguments.text, arguments.rounds, arguments.pause_ms, breakdown=breakdown)
            for _ in range(arguments.fast_rounds):
                fast.append(fast_typing(page, arguments.fast_text, arguments.typing_delay_ms))
            browser.close()
    finally:
        demo.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default="a red heart rocket pizza")
    parser.add_argument("--rounds", type=int, default=1, help="times the text is typed key by key")
    parser.add_argument("--pause-ms", type=float, default=300, help="pause after each single key press's result")
    parser.add_argument("--fast-text", default="grinning face with big eyes")
    parser.add_argument("--typing-delay-ms", type=float, default=60, help="between keys when typing fast")
    parser.add_argument("--fast-rounds", type=int, default=2)
    parser.add_argument("--warm-up", default="warm up", help="typed first, untimed (loads and converts the model)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose app.py to launch (default: this one)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    sys.path.insert(0, str(arguments.root.resolve()))
    import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    breakdown, fast = [], []
    # With --json, stdout carries the JSON alone: what Gradio prints (e.g. "Closing server ...") goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if arguments.json else sys.stdout):
        samples = run_page(app, port, arguments, breakdown, fast)
    result = {"single_key": summary(samples), "breakdown_ms": breakdown_summary(breakdown),
              "fast_typing": {**summary([s for run in fast for s in run["samples"]]),
                              "typing_delay_ms": arguments.typing_delay_ms,
                              "results_drawn_per_run": [run["results_drawn"] for run in fast],
                              "keys_per_run": fast[0]["keys"] if fast else 0},
              "samples_ms": [round(sample, 1) for sample in samples]}
    if arguments.json:
        print(json.dumps(result))
        return 0
    single, typing = result["single_key"], result["fast_typing"]
    print(f"single key presses ({single['count']}, {arguments.pause_ms:.0f} ms pauses): median {single['median_ms']} "
          f"ms, p90 {single['p90_ms']} ms (min {single['min_ms']}, max {single['max_ms']})")
    print(f"fast typing ({typing['keys_per_run']} keys, {arguments.typing_delay_ms:.0f} ms apart, "
          f"{len(fast)} runs): key to a result as new or newer: median {typing['median_ms']} ms, "
          f"p90 {typing['p90_ms']} ms; results drawn per run {typing['results_drawn_per_run']}")
    print("where a single key press's time goes (medians, ms):", json.dumps(result["breakdown_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
