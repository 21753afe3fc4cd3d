"""A soak run: many generations through the app's API, with the server's memory, descriptors and disk sampled.

    python -m genimg.serve.soak --requests 1000 --clients 3 --disconnects 10 --out outputs/soak/soak.json

It starts ``python app.py`` on a free loopback port with a temporary folder of its own (GRADIO_TEMP_DIR), sends
``--requests`` requests from ``--clients`` gradio_client sessions, cycling through MIX (backends gan, vae and
latent-lcm, batch sizes 1-8, both endpoints, a new seed each time) and fetching every returned image as a browser
would; ``--disconnects`` of them are sent over the raw queue API and hung up on after the first denoising step.
Every ``--sample-s`` seconds it reads the server process's resident memory, open file descriptors and threads
(psutil if installed, else /proc) and the temporary folder's size and files. The report compares the samples after
warm-up (the first ``--warm-up`` requests, every configuration loaded) with those at the end. Loopback only; the
run stops after ``--max-seconds`` whatever it has done.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genimg.serve.launch import LaunchedApp
from genimg.serve.loadtest import PROMPTS
from genimg.serve.uploads import MB, folder_usage
from genimg.timing import percentile

# (endpoint, backend, steps, batch size): the soak cycles through these, one per request.
MIX = [("generate", "gan", 0, 1), ("generate_one", "latent-lcm", 2, 1), ("generate", "vae", 0, 4),
       ("generate", "latent-lcm", 4, 2), ("generate_one", "gan", 0, 1), ("generate", "gan", 0, 8),
       ("generate_one", "vae", 0, 1), ("generate", "latent-lcm", 1, 8)]
DISCONNECT_REQUEST = ["red heart", "latent-lcm", 50, 1, "fp32", 0, "", "default", False, False, True]


@dataclass
class Sample:
    elapsed_s: float
    requests_done: int
    rss_mb: float
    open_fds: int
    threads: int
    temp_mb: float
    temp_files: int
    temp_folders: int


@dataclass
class SoakReport:
    requests: int
    clients: int
    served: int = 0
    errors: int = 0
    disconnects: int = 0
    images: int = 0
    wall_s: float = 0.0
    warm_up_requests: int = 0
    latency_p50_ms: dict = field(default_factory=dict)
    latency_p95_ms: dict = field(default_factory=dict)
    rss_warm_mb: float | None = None  # median of the samples in the first tenth of the run after warm-up
    rss_end_mb: float | None = None  # median of the samples in the last tenth
    rss_max_mb: float | None = None  # after warm-up
    rss_drift_pct: float | None = None  # end vs warm
    fds_warm: int | None = None
    fds_end: int | None = None
    temp_max_mb: float | None = None
    temp_max_files: int | None = None
    temp_end_files: int | None = None
    error_messages: list = field(default_factory=list)
    samples: list = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{self.served} served, {self.errors} errors, {self.disconnects} disconnected on purpose, "
                f"{self.images} images in {self.wall_s:.0f} s ({self.clients} clients)",
                f"resident memory after warm-up {self.rss_warm_mb} MB, at the end {self.rss_end_mb} MB "
                f"(drift {self.rss_drift_pct}%), max {self.rss_max_mb} MB",
                f"open file descriptors after warm-up {self.fds_warm}, at the end {self.fds_end}",
                f"temporary folder: at most {self.temp_max_mb} MB and {self.temp_max_files} files, "
                f"{self.temp_end_files} files at the end",
                *(f"p50 / p95 {kind}: {self.latency_p50_ms[kind]:,.0f} / {self.latency_p95_ms[kind]:,.0f} ms"
                  for kind in sorted(self.latency_p50_ms))]


def process_stats(pid: int) -> tuple[float, int, int]:
    """Resident memory (MB), open file descriptors and threads of process ``pid``."""
    try:
        import psutil

        process = psutil.Process(pid)
        return process.memory_info().rss / MB, process.num_fds(), process.num_threads()
    except ImportError:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        rss_kb = int(status["VmRSS"].split()[0])
        return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), int(status["Threads"])


class Sampler(threading.Thread):
    """Samples the server every ``every_s`` seconds until stopped (and once more at the end)."""

    def __init__(self, pid: int, folder: Path, every_s: float, progress):
        super().__init__(daemon=True)
        self.pid, self.folder, self.every_s, self.progress = pid, folder, every_s, progress
        self.samples: list[Sample] = []
        self.stopped = threading.Event()
        self.start_time = time.perf_counter()

    def sample(self) -> None:
        rss_mb, fds, threads = process_stats(self.pid)
        usage = folder_usage(self.folder)
        self.samples.append(Sample(round(time.perf_counter() - self.start_time, 1), self.progress(), round(rss_mb, 1),
                                   fds, threads, round(usage.bytes / MB, 2), usage.files, usage.folders))

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.sample()

    def stop(self) -> list[Sample]:
        self.stopped.set()
        self.join()
        self.sample()
        return self.samples


def image_url(result, endpoint: str) -> str | None:
    image = result[0] if endpoint == "generate_one" else (result[0] or [{}])[0].get("image")
    return image.get("url") if isinstance(image, dict) else None


def disconnect_mid_request(url: str, fn_index: int) -> None:
    """Joins the queue with a 50-step request and hangs up once the first steps are reported."""
    import httpx

    session = uuid.uuid4().hex
    httpx.post(url + "gradio_api/queue/join", json={"data": DISCONNECT_REQUEST, "fn_index": fn_index,
                                                     "session_hash": session, "trigger_id": None}, timeout=30)
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=300) as stream:
        for line in stream.iter_lines():
            if '"progress"' in line or "process_completed" in line:
                break


class Traffic:
    """The requests, shared by the client threads: request ``i`` is MIX[i % len(MIX)] with seed i."""

    def __init__(self, url: str, total: int, disconnects: int, deadline: float):
        self.url, self.total, self.deadline = url, total, deadline
        self.disconnect_at = set(range(total // max(disconnects, 1) // 2, total, total // max(disconnects, 1))
                                 if disconnects else [])
        self.counter, self.done = itertools.count(), 0
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.images = self.disconnects = 0
        self.lock = threading.Lock()

    def next_index(self) -> int | None:
        index = next(self.counter)
        return index if index < self.total and time.monotonic() < self.deadline else None

    def client_loop(self, fn_index: int) -> None:
        import httpx
        from gradio_client import Client

        client, files = Client(self.url, verbose=False, download_files=False), httpx.Client(timeout=60)
        while (index := self.next_index()) is not None:
            endpoint, backend, steps, batch = MIX[index % len(MIX)]
            prompt, began = PROMPTS[index % len(PROMPTS)], time.perf_counter()
            try:
                if index in self.disconnect_at:
                    disconnect_mid_request(self.url, fn_index)
                    with self.lock:
                        self.disconnects += 1
                    continue
                if endpoint == "generate_one":
                    result = client.predict(prompt, backend, steps, "fp32", index, api_name="/generate_one")
                else:
                    result = client.predict(prompt, backend, steps, batch, "fp32", index, api_name="/generate")
                link = image_url(result, endpoint)
                if link:
                    files.get(link).raise_for_status()
                with self.lock:
                    self.latencies.setdefault(f"{endpoint} {backend} bs{batch}", []).append(
                        (time.perf_counter() - began) * 1000)
                    self.images += batch
            except Exception as error:  # noqa: BLE001 - counted and reported, the client carries on
                with self.lock:
                    self.errors.append(f"{type(error).__name__}: {error}"[:200])
            finally:
                with self.lock:
                    self.done += 1


def summarise(report: SoakReport, samples: list[Sample]) -> SoakReport:
    report.samples = [asdict(sample) for sample in samples]
    after = [s for s in samples if s.requests_done >= report.warm_up_requests] or samples[-1:]
    window = max(1, len(after) // 10)
    warm, end = after[:window], after[-window:]
    report.rss_warm_mb = round(statistics.median(s.rss_mb for s in warm), 1)
    report.rss_end_mb = round(statistics.median(s.rss_mb for s in end), 1)
    report.rss_max_mb = max(s.rss_mb for s in after)
    report.rss_drift_pct = round(100 * (report.rss_end_mb - report.rss_warm_mb) / report.rss_warm_mb, 2)
    report.fds_warm, report.fds_end = warm[0].open_fds, end[-1].open_fds
    report.temp_max_mb = max(s.temp_mb for s in samples)
    report.temp_max_files = max(s.temp_files for s in samples)
    report.temp_end_files = samples[-1].temp_files
    return report


def run_soak(args: argparse.Namespace) -> SoakReport:
    import httpx

    temp = Path(tempfile.mkdtemp(prefix="genimg-soak-"))
    report = SoakReport(requests=args.requests, clients=args.clients,
                        warm_up_requests=args.warm_up if args.warm_up is not None else max(len(MIX) * 2,
                                                                                           args.requests // 10))
    try:
        with LaunchedApp(log_path=args.log, env={"GRADIO_TEMP_DIR": str(temp / "gradio")}) as app:
            fn_index = next(d["id"] for d in httpx.get(app.url + "config").json()["dependencies"]
                            if d.get("api_name") == "generate")
            traffic = Traffic(app.url, args.requests, args.disconnects, time.monotonic() + args.max_seconds)
            sampler = Sampler(app.process.pid, temp / "gradio", args.sample_s, lambda: traffic.done)
            sampler.sample()
            sampler.start()
            began = time.perf_counter()
            threads = [threading.Thread(target=traffic.client_loop, args=(fn_index,), daemon=True)
                       for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            report.wall_s = round(time.perf_counter() - began, 1)
            time.sleep(min(args.sample_s, 2.0))  # let the disconnected generations stop before the last sample
            samples = sampler.stop()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    report.served = sum(len(values) for values in traffic.latencies.values())
    report.errors, report.disconnects, report.images = len(traffic.errors), traffic.disconnects, traffic.images
    report.error_messages = sorted(set(traffic.errors))[:5]
    report.latency_p50_ms = {kind: percentile(values, 0.5) for kind, values in traffic.latencies.items()}
    report.latency_p95_ms = {kind: percentile(values, 0.95) for kind, values in traffic.latencies.items()}
    return summarise(report, samples)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg.serve.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests in all, disconnects included")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--disconnects", type=int, default=10, help="requests hung up on mid-generation")
    parser.add_argument("--warm-up", type=int, help="requests before memory is compared (default: a tenth)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples of the server")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop sending after this long")
    parser.add_argument("--log", type=Path, help="write the app's output here")
    parser.add_argument("--out", type=Path, help="write the report (with every sample) as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.requests <= 100_000 or not 1 <= args.clients <= 64 or not 0 < args.max_seconds <= 6 * 3600:
        raise SystemExit("--requests must be 1-100,000, --clients 1-64 and --max-seconds at most 6 hours.")
    if not 0 <= args.disconnects <= args.requests // 2 or args.sample_s <= 0:
        raise SystemExit("--disconnects must be at most half the requests and --sample-s positive.")
    report = run_soak(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asdict(report), indent=2))
    print("\n".join(report.lines()))
    for message in report.error_messages:
        print(f"  error: {message}")
    return 0 if report.served and not report.errors else 1


if __name__ == "__main__":
    sys.exit(main())
