"""The app's cold start: a fresh ``python app.py`` until the page answers, and until the first image of the fastest
CPU configuration (latent-lcm 1 step, tiny decoder, OpenVINO int8) is back through /generate, judge score included.

    python -m tools.cold_start [--runs 2]     # from the repository root

The first run may convert and calibrate (then the models are in the disk cache, $GENIMG_CACHE/openvino); later runs
read them from there. The app is started and stopped by the load test's launcher (loopback only).
"""
from __future__ import annotations

import argparse
import sys
import time

from genimg.serve.launch import LaunchedApp


def one_run() -> tuple[float, float]:
    """Seconds from the start to the page answering, and to the first image."""
    from gradio_client import Client

    start = time.perf_counter()
    with LaunchedApp() as app:
        page_s = time.perf_counter() - start
        Client(app.url, verbose=False).predict(
            prompt="a rocket", backend="latent-lcm", steps=1, batch_size=1, precision="fp32", seed=0,
            tiny_decoder=True, engine="openvino", quantize="int8", api_name="/generate")
        return page_s, time.perf_counter() - start


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
