"""The app's cold start: a fresh ``python app.py`` until the page answers, and until the first image of the fastest
CPU configuration (latent-lcm 1 step, tiny decoder, OpenVINO int8) is back through /generate, judge score included.

    python tools/cold_start.py [--runs 2]

The first run may convert and calibrate (then the models are in the disk cache, $GENIMG_CACHE/openvino); later runs
read them from there. Loopback only; each app is stopped after its run.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(timeout_s: float = 300) -> tuple[float, float]:
    from gradio_client import Client

    port = free_port()
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1",
                                                           "GRADIO_SERVER_PORT": str(port)})
    try:
        while True:
            if time.perf_counter() - start > timeout_s or app.poll() is not None:
                raise SystemExit("the app did not come up")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        page_s = time.perf_counter() - start
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            prompt="a rocket", backend="latent-lcm", steps=1, batch_size=1, precision="fp32", seed=0,
            tiny_decoder=True, engine="openvino", quantize="int8", api_name="/generate")
        return page_s, time.perf_counter() - start
    finally:
        app.terminate()
        app.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for run in range(1, max(1, min(args.runs, 10)) + 1):
        page_s, image_s = one_run()
        print(f"run {run}: page up {page_s:.1f} s, first OpenVINO int8 image {image_s:.1f} s after the start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
