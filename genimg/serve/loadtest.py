"""A bounded load test of the app on this machine: N concurrent API clients for M seconds, then a report.

    python -m genimg.serve.loadtest --clients 4 --seconds 30 --backend gan
    python -m genimg.serve.loadtest --clients 8 --seconds 30 --backend latent-lcm --compare-batching
    python -m genimg.serve.loadtest --url http://127.0.0.1:7860/ --endpoint generate --batch-size 4
    python -m genimg.serve.loadtest --clients 1 --seconds 20 --backend gan --profile --engine-ratio

Without --url it starts ``python app.py`` on a free loopback port (and stops it afterwards); with --url it drives an
app already running on this machine. Only loopback addresses are accepted. Every client is a gradio_client session
that sends one request after another; a request started before the time is up still counts when it finishes.
``--compare-batching`` runs the one-image endpoint three times: without batching (GENIMG_MAX_BATCH=1), with genimg's
micro-batcher, and with Gradio's own batching (GENIMG_BATCHING=gradio). ``--profile`` adds Gradio's per-phase request
traces; ``--engine-ratio`` sets HTTP images/s against the engine's own at the same batch size.
"""
from __future__ import annotations

import argparse
import json
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

from genimg.timing import percentile

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
    batching: str | None = None  # who batched: "genimg" (micro-batcher) or "gradio" (batch=True); None: default
    served: int = 0
    errors: int = 0
    images: int = 0
    wall_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    requests_per_s: float = 0.0
    images_per_s: float = 0.0
    mean_batch: float | None = None  # one-image endpoint: how many requests shared a pass, on average
    engine_p50_ms: float | None = None  # one-image endpoint: the generation's own time (result timings), median
    # one-image endpoints: the client's end-to-end time minus the engine's, per request, median (single client: the
    # serving overhead a user waits for beyond the model)
    overhead_p50_ms: float | None = None
    server_p50_ms: dict | None = None  # --profile: Gradio's per-phase trace medians (queue_wait, fn_call, ...)
    error_messages: list = field(default_factory=list)

    def line(self) -> str:
        batch = "" if self.mean_batch is None else f", mean batch {self.mean_batch:.1f}"
        if self.engine_p50_ms is not None:
            batch += f", engine p50 {self.engine_p50_ms:,.1f} ms, overhead p50 {self.overhead_p50_ms:,.1f} ms"
        percentiles = "n/a" if self.p50_ms is None else f"{self.p50_ms:,.0f} / {self.p95_ms:,.0f} ms"
        return (f"{self.endpoint} {self.backend} x{self.clients} clients, {self.wall_s:.0f} s"
                f"{'' if self.max_batch is None else f', max batch {self.max_batch}'}"
                f"{'' if self.batching is None else f' ({self.batching} batching)'}: {self.served} served, "
                f"{self.errors} errors, p50/p95 {percentiles}, {self.requests_per_s:.2f} req/s, "
                f"{self.images_per_s:.2f} images/s{batch}")


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

    def __init__(self, max_batch: int | None = None, log_path: Path | None = None, profile: bool = False,
                 batching: str | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        if max_batch is not None:
            self.env["GENIMG_MAX_BATCH"] = str(max_batch)
        if batching is not None:
            self.env["GENIMG_BATCHING"] = batching
        if profile:  # Gradio's request tracing: /gradio_api/profiling/traces
            self.env["GRADIO_PROFILING"] = "1"
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


def rest_sender(url: str, args: argparse.Namespace):
    """One keep-alive HTTP connection posting to POST /v1/image (genimg.serve.rest): one exchange per image."""
    import httpx

    from genimg.serve.rest import PATH, parse_server_timing

    session = httpx.Client(timeout=300)

    def send(index: int) -> dict:
        prompt, seed = PROMPTS[index % len(PROMPTS)], index
        response = session.post(url.rstrip("/") + PATH, json={"prompt": prompt, "backend": args.backend,
                                                              "steps": args.steps, "precision": args.precision,
                                                              "seed": seed})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:150]}")
        timings = parse_server_timing(response.headers["server-timing"])
        info = json.loads(response.headers["genimg-info"])
        return {"batched_with": info["batched_with"], "timings_ms": {"total": timings["engine"]}}

    return send


def request_arguments(args: argparse.Namespace, index: int) -> tuple[tuple, dict]:
    prompt, seed = PROMPTS[index % len(PROMPTS)], index
    if args.endpoint == "generate_one":
        return (prompt, args.backend, args.steps, args.precision, seed), {"api_name": "/generate_one"}
    return (prompt, args.backend, args.steps, args.batch_size, args.precision, seed), {"api_name": "/generate"}


def run_clients(url: str, args: argparse.Namespace, max_batch: int | None = None,
                batching: str | None = None) -> LoadReport:
    """``args.clients`` gradio_client sessions against the app at ``url``."""
    from gradio_client import Client

    def make_sender(client_index: int):
        if args.endpoint == "rest":
            return rest_sender(url, args)
        client = Client(url, verbose=False)

        def send(index: int) -> dict | None:
            positional, keywords = request_arguments(args, index)
            result = client.predict(*positional, **keywords)
            return result[1] if args.endpoint == "generate_one" else None

        return send

    report, wall_start = measure(args, make_sender, max_batch, args.endpoint)
    report.batching = batching
    if args.profile:
        report.server_p50_ms = server_phases(url, args.endpoint, wall_start)
    return report


def server_phases(url: str, endpoint: str, since: float) -> dict | None:
    """Medians of Gradio's own request traces (GRADIO_PROFILING=1) for ``endpoint`` since ``since`` (time.time):
    queue wait, preprocess, the function call, postprocess (saving images to the cache) and their total."""
    try:
        with urllib.request.urlopen(url + "gradio_api/profiling/traces", timeout=10) as response:
            traces = json.loads(response.read())
    except OSError:
        return None  # the app runs without GRADIO_PROFILING=1
    traces = [t for t in traces if t["fn_name"] == endpoint and t["timestamp"] >= since]
    phases = ("queue_wait", "preprocess", "fn_call", "postprocess", "postprocess_save_pil_to_cache", "total")
    return {phase: percentile([t[f"{phase}_ms"] for t in traces], 0.5) for phase in phases} if traces else None


def run_in_process(args: argparse.Namespace, max_batch: int) -> LoadReport:
    """The same clients calling genimg's MicroBatcher directly: the model's share of the numbers, without HTTP."""
    import genimg
    from genimg.serve.batching import MicroBatcher

    batcher = MicroBatcher(genimg.load(args.backend, precision=args.precision), max_batch)

    def make_sender(client_index: int):
        def send(index: int) -> dict:
            prompt = PROMPTS[index % len(PROMPTS)]
            result = batcher.generate(prompt, steps=args.steps or None, seed=index)
            return {"batched_with": result.info["batched_with"], "timings_ms": result.timings}

        return send

    return measure(args, make_sender, max_batch, "in-process")[0]


def measure(args: argparse.Namespace, make_sender, max_batch: int | None, endpoint: str) -> tuple[LoadReport, float]:
    """Every client sends WARM_UP_REQUESTS unmeasured requests (model loading, first calls per batch size), then all
    start together and send one request after another for ``args.seconds``."""
    latencies, batches, engine_ms, overhead_ms, errors, lock = [], [], [], [], [], threading.Lock()
    clock = {}
    everyone_warm = threading.Barrier(args.clients, action=lambda: clock.update(start=time.perf_counter(),
                                                                               wall_start=time.time()))

    def client_loop(client_index: int) -> None:
        send = make_sender(client_index)
        for warm_up in range(WARM_UP_REQUESTS):
            send(1000 * client_index + warm_up)
        everyone_warm.wait()
        index = 1000 * client_index + WARM_UP_REQUESTS
        while time.perf_counter() < clock["start"] + args.seconds:
            began, index = time.perf_counter(), index + 1
            try:
                info = send(index)
            except Exception as error:  # noqa: BLE001 - counted and reported, the client carries on
                with lock:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            with lock:
                latencies.append((time.perf_counter() - began) * 1000)
                if info is not None:
                    batches.append(info["batched_with"])
                    engine_ms.append(info["timings_ms"]["total"])
                    overhead_ms.append(latencies[-1] - engine_ms[-1])

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
        mean_batch=sum(batches) / len(batches) if batches else None, engine_p50_ms=percentile(engine_ms, 0.5),
        overhead_p50_ms=percentile(overhead_ms, 0.5), error_messages=sorted(set(errors))[:5]), clock["wall_start"]


def engine_ratio(args: argparse.Namespace, report: LoadReport, calls: int = 20) -> dict:
    """What the engine alone delivers at the HTTP run's mean batch: ``generate_batch`` of that many one-image
    requests, median of ``calls`` timed calls after a warm-up, in this process (the app has stopped by now)."""
    import genimg

    batch = max(1, round(report.mean_batch or 1))
    generator = genimg.load(args.backend, precision=args.precision)
    prompts, seeds = [PROMPTS[i % len(PROMPTS)] for i in range(batch)], list(range(batch))
    times = []
    for call in range(calls + 2):
        began = time.perf_counter()
        generator.generate_batch(prompts, seeds, steps=args.steps or None)
        if call >= 2:
            times.append(time.perf_counter() - began)
    engine = batch / sorted(times)[len(times) // 2]
    return {"backend": args.backend, "batch": batch, "engine_images_per_s": engine,
            "http_images_per_s": report.images_per_s, "ratio": report.images_per_s / engine}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg.serve.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", default="gan")
    parser.add_argument("--steps", type=int, default=0, help="0 = the backend's default")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--endpoint", choices=["generate_one", "rest", "generate"], default="generate_one",
                        help="generate_one: one image per request through Gradio's queue (gradio_client), dynamically"
                             " batched; rest: the same through POST /v1/image, one HTTP exchange per image (httpx); "
                             "generate: the UI's endpoint (batch of --batch-size, plus prompt-match scoring)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per request (generate endpoint)")
    parser.add_argument("--url", help="an app already running on 127.0.0.1 (default: start app.py)")
    parser.add_argument("--max-batch", type=int, help="GENIMG_MAX_BATCH for the app this starts")
    parser.add_argument("--compare-endpoints", action="store_true",
                        help="generate_one through Gradio's queue, then POST /v1/image, against one app")
    parser.add_argument("--compare-batching", action="store_true",
                        help="generate_one without batching, with genimg's micro-batcher, then with Gradio's "
                             "batch=True (starts the app three times)")
    parser.add_argument("--batching", choices=["genimg", "gradio"], help="GENIMG_BATCHING for the app this starts")
    parser.add_argument("--in-process", action="store_true",
                        help="no app, no HTTP: the clients call genimg's micro-batcher directly")
    parser.add_argument("--log", type=Path, help="write the started app's output here")
    parser.add_argument("--profile", action="store_true",
                        help="start the app with GRADIO_PROFILING=1 and report Gradio's per-phase medians")
    parser.add_argument("--engine-ratio", action="store_true",
                        help="after the HTTP run, time generate_batch in this process at the run's mean batch size "
                             "and report HTTP images/s as a share of it")
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
            runs = [(1, "genimg"), (args.max_batch or 8, "genimg"), (args.max_batch or 8, "gradio")]
        else:
            runs = [(args.max_batch, args.batching)]
        for max_batch, batching in runs:
            with LaunchedApp(max_batch, args.log, args.profile, batching) as app:
                endpoints = ["generate_one", "rest"] if args.compare_endpoints else [args.endpoint]
                for endpoint in endpoints:
                    reports.append(run_clients(app.url, argparse.Namespace(**{**vars(args), "endpoint": endpoint}),
                                               max_batch, batching))
    ratios = [engine_ratio(args, report) for report in reports] if args.engine_ratio else []
    if args.json:
        print(json.dumps({"reports": [asdict(report) for report in reports], "engine_ratios": ratios}, indent=2))
    else:
        for report in reports:
            print(report.line())
            for message in report.error_messages:
                print(f"  error: {message}")
        for ratio in ratios:
            print(f"in-process generate_batch at batch {ratio['batch']}: {ratio['engine_images_per_s']:.1f} images/s;"
                  f" HTTP delivered {ratio['http_images_per_s']:.1f} ({100 * ratio['ratio']:.0f}%)")
        for report in reports:
            if report.server_p50_ms:
                print("server phases p50 (ms): " + ", ".join(f"{name} {value:.1f}"
                                                             for name, value in report.server_p50_ms.items()))
        if len(reports) == 3 and reports[0].images_per_s > 0:
            for report in reports[1:]:
                print(f"{report.batching} batching: {report.images_per_s / reports[0].images_per_s:.2f}x the images/s "
                      "of no batching")
    return 0 if all(report.served for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
