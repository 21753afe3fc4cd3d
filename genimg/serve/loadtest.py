"""A bounded load test of the app on this machine: N concurrent API clients for M seconds, then a report.

    python -m genimg.serve.loadtest --clients 4 --seconds 30 --backend gan
    python -m genimg.serve.loadtest --clients 8 --seconds 30 --backend latent-lcm --compare-batching
    python -m genimg.serve.loadtest --url http://127.0.0.1:7860/ --endpoint generate --batch-size 4

Without --url it starts ``python app.py`` on a free loopback port (and stops it afterwards); with --url it drives an
app already running on this machine. Only loopback addresses are accepted. Every client is a gradio_client session
that sends one request after another; a request started before the time is up still counts when it finishes.
``--compare-batching`` runs the one-image endpoint twice, without (GENIMG_MAX_BATCH=1) and with dynamic batching.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PROMPTS = ["a slice of pizza", "a cute puppy", "red heart", "rocket", "grinning face", "dog face"]
START_TIMEOUT_S = 180
WARM_UP_REQUESTS = 2


@dataclass
class LoadReport:
    endpoint: str
    backend: str
    clients: int
    seconds: float
    max_batch: int | None
    served: int = 0
    errors: int = 0
    images: int = 0
    wall_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    requests_per_s: float = 0.0
    images_per_s: float = 0.0
    mean_batch: float | None = None  # one-image endpoint: how many requests shared a pass, on average
    error_messages: list = field(default_factory=list)

    def line(self) -> str:
        batch = "" if self.mean_batch is None else f", mean batch {self.mean_batch:.1f}"
        percentiles = "n/a" if self.p50_ms is None else f"{self.p50_ms:,.0f} / {self.p95_ms:,.0f} ms"
        return (f"{self.endpoint} {self.backend} x{self.clients} clients, {self.wall_s:.0f} s"
                f"{'' if self.max_batch is None else f', max batch {self.max_batch}'}: {self.served} served, "
                f"{self.errors} errors, p50/p95 {percentiles}, {self.requests_per_s:.2f} req/s, "
                f"{self.images_per_s:.2f} images/s{batch}")


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported latency is one that happened)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"The load test only drives apps on this machine (127.0.0.1), not {host!r}.")
    return url if url.endswith("/") else url + "/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LaunchedApp:
    """``python app.py`` on a free loopback port, stopped (terminate, then kill) when the block ends."""

    def __init__(self, max_batch: int | None = None, log_path: Path | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        if max_batch is not None:
            self.env["GENIMG_MAX_BATCH"] = str(max_batch)
        self.log_path = log_path

    def __enter__(self) -> "LaunchedApp":
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"app.py exited with code {self.process.returncode} before serving.")
            try:
                urllib.request.urlopen(self.url + "config", timeout=2)
                return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise SystemExit(f"app.py did not answer on {self.url} within {START_TIMEOUT_S} s.")

    def __exit__(self, *_) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def request_arguments(args: argparse.Namespace, index: int) -> tuple[tuple, dict]:
    prompt, seed = PROMPTS[index % len(PROMPTS)], index
    if args.endpoint == "generate_one":
        return (prompt, args.backend, args.steps, args.precision, seed), {"api_name": "/generate_one"}
    return (prompt, args.backend, args.steps, args.batch_size, args.precision, seed), {"api_name": "/generate"}


def run_clients(url: str, args: argparse.Namespace, max_batch: int | None = None) -> LoadReport:
    """``args.clients`` gradio_client sessions against the app at ``url``."""
    from gradio_client import Client

    def make_sender(client_index: int):
        client = Client(url, verbose=False)

        def send(index: int) -> int | None:
            positional, keywords = request_arguments(args, index)
            result = client.predict(*positional, **keywords)
            return result[1]["batched_with"] if args.endpoint == "generate_one" else None

        return send

    return measure(args, make_sender, max_batch, args.endpoint)


def run_in_process(args: argparse.Namespace, max_batch: int) -> LoadReport:
    """The same clients calling genimg's MicroBatcher directly: the model's share of the numbers, without HTTP."""
    import genimg
    from genimg.serve.batching import MicroBatcher

    batcher = MicroBatcher(genimg.load(args.backend, precision=args.precision), max_batch)

    def make_sender(client_index: int):
        def send(index: int) -> int:
            prompt = PROMPTS[index % len(PROMPTS)]
            return batcher.generate(prompt, steps=args.steps or None, seed=index).info["batched_with"]

        return send

    return measure(args, make_sender, max_batch, "in-process")


def measure(args: argparse.Namespace, make_sender, max_batch: int | None, endpoint: str) -> LoadReport:
    """Every client sends WARM_UP_REQUESTS unmeasured requests (model loading, first calls per batch size), then all
    start together and send one request after another for ``args.seconds``."""
    latencies, batches, errors, lock = [], [], [], threading.Lock()
    clock = {}
    everyone_warm = threading.Barrier(args.clients, action=lambda: clock.update(start=time.perf_counter()))

    def client_loop(client_index: int) -> None:
        send = make_sender(client_index)
        for warm_up in range(WARM_UP_REQUESTS):
            send(1000 * client_index + warm_up)
        everyone_warm.wait()
        index = 1000 * client_index + WARM_UP_REQUESTS
        while time.perf_counter() < clock["start"] + args.seconds:
            began, index = time.perf_counter(), index + 1
            try:
                batched_with = send(index)
            except Exception as error:  # noqa: BLE001 - counted and reported, the client carries on
                with lock:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            with lock:
                latencies.append((time.perf_counter() - began) * 1000)
                if batched_with is not None:
                    batches.append(batched_with)

    threads = [threading.Thread(target=client_loop, args=(index,), daemon=True) for index in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - clock["start"]
    images_per_request = args.batch_size if endpoint == "generate" else 1
    return LoadReport(
        endpoint=endpoint, backend=args.backend, clients=args.clients, seconds=args.seconds, max_batch=max_batch,
        served=len(latencies), errors=len(errors), images=len(latencies) * images_per_request, wall_s=wall_s,
        p50_ms=percentile(latencies, 0.5), p95_ms=percentile(latencies, 0.95),
        requests_per_s=len(latencies) / wall_s, images_per_s=len(latencies) * images_per_request / wall_s,
        mean_batch=sum(batches) / len(batches) if batches else None, error_messages=sorted(set(errors))[:5])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg.serve.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", default="gan")
    parser.add_argument("--steps", type=int, default=0, help="0 = the backend's default")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--endpoint", choices=["generate_one", "generate"], default="generate_one",
                        help="generate_one: one image per request, dynamically batched; generate: the UI's endpoint "
                             "(batch of --batch-size, plus prompt-match scoring)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per request (generate endpoint)")
    parser.add_argument("--url", help="an app already running on 127.0.0.1 (default: start app.py)")
    parser.add_argument("--max-batch", type=int, help="GENIMG_MAX_BATCH for the app this starts")
    parser.add_argument("--compare-batching", action="store_true",
                        help="generate_one without, then with dynamic batching (starts the app twice)")
    parser.add_argument("--in-process", action="store_true",
                        help="no app, no HTTP: the clients call genimg's micro-batcher directly")
    parser.add_argument("--log", type=Path, help="write the started app's output here")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or not 0 < args.seconds <= 3600:
        raise SystemExit("--clients must be at least 1 and --seconds between 0 and 3600.")
    reports = []
    if args.in_process:
        sizes = [1, args.max_batch or 8] if args.compare_batching else [args.max_batch or 8]
        reports += [run_in_process(args, max_batch) for max_batch in sizes]
    elif args.url:
        if args.compare_batching:
            raise SystemExit("--compare-batching starts its own apps; leave out --url.")
        reports.append(run_clients(check_loopback(args.url), args))
    else:
        if args.compare_batching:
            args.endpoint = "generate_one"
        for max_batch in ([1, args.max_batch or 8] if args.compare_batching else [args.max_batch]):
            with LaunchedApp(max_batch, args.log) as app:
                reports.append(run_clients(app.url, args, max_batch))
    if args.json:
        print(json.dumps([asdict(report) for report in reports], indent=2))
    else:
        for report in reports:
            print(report.line())
            for message in report.error_messages:
                print(f"  error: {message}")
        if len(reports) == 2 and reports[0].images_per_s > 0:
            print(f"dynamic batching: {reports[1].images_per_s / reports[0].images_per_s:.2f}x images/s")
    return 0 if all(report.served for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
