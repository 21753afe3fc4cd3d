"""A bounded load test of the app on this machine: N concurrent clients for M seconds, then a report.

    python -m genimg.serve.loadtest --clients 8 --seconds 20 --backend gan --endpoint gradio_client rest --engine-ratio
    python -m genimg.serve.loadtest --clients 8 --seconds 30 --backend latent-lcm --compare-batching --profile

Without --url it starts ``python app.py`` on a free loopback port and stops it afterwards; --url drives an app already
running on 127.0.0.1. The load comes from Locust (genimg.serve.locust_run): ``rest`` is its RestUser (POST /v1/image),
``gradio`` its GradioUser (/generate_one over Gradio's HTTP API). Only what Locust cannot do is written here:
``gradio_client`` (threads of gradio_client sessions: the client library's own protocol cost), ``--in-process``
(genimg's micro-batcher, no HTTP), ``--engine-ratio`` (the engine alone, in this process) and ``--profile``
(Gradio's per-phase request traces).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from genimg.serve.launch import LaunchedApp
from genimg.serve.locust_run import check_bounds, check_loopback, locust_round, summarise
from genimg.timing import percentile

PROMPTS = ["a slice of pizza", "a cute puppy", "red heart", "rocket", "grinning face", "dog face"]
WARM_UP_REQUESTS = 2  # per gradio_client or in-process client, before the clock starts
WARM_UP_S = 3  # a Locust round before the timed one: model loading, first calls per batch size
LOCUST_USERS = {"rest": "RestUser", "gradio": "GradioUser"}


def gradio_client_sender(url: str, args: argparse.Namespace):
    """One gradio_client session calling ``/generate_one``: join, poll the event, download the file."""
    from gradio_client import Client

    client = Client(url, verbose=False)

    def send(index: int) -> dict:
        prompt = PROMPTS[index % len(PROMPTS)]
        _, info = client.predict(prompt, args.backend, args.steps, args.precision, index, api_name="/generate_one")
        return {"batched_with": info["batched_with"], "engine_ms": info["timings_ms"]["total"],
                "server_ms": info["server_total_ms"], "pid": info["pid"]}

    return send


def in_process_sender(batcher, args: argparse.Namespace):
    """A client of genimg's MicroBatcher in this process: the model's share of the numbers, without HTTP."""
    def send(index: int) -> dict:
        result = batcher.generate(PROMPTS[index % len(PROMPTS)], steps=args.steps or None, seed=index)
        return {"batched_with": result.info["batched_with"], "engine_ms": result.timings["total"]}

    return send


def threaded_round(make_sender, clients: int, seconds: float) -> dict:
    """``clients`` threads, each sending WARM_UP_REQUESTS unmeasured requests, then, all started together, one
    request after another for ``seconds``; a request started in time counts when it finishes."""
    answers, errors, lock, clock = [], [], threading.Lock(), {}
    everyone_warm = threading.Barrier(clients, action=lambda: clock.update(start=time.perf_counter(),
                                                                          started=time.time()))

    def client_loop(client_index: int) -> None:
        try:
            send = make_sender()
            for warm_up in range(WARM_UP_REQUESTS):
                send(1000 * client_index + warm_up)
            everyone_warm.wait()
        except Exception as error:  # noqa: BLE001 - this or another client's warm-up failed: the round is off
            errors.append(f"warm-up: {type(error).__name__}: {error}"[:200])
            return everyone_warm.abort()
        index = 1000 * client_index + WARM_UP_REQUESTS
        while time.perf_counter() < clock["start"] + seconds:
            began, index = time.perf_counter(), index + 1
            try:
                answer = send(index)
            except Exception as error:  # noqa: BLE001 - counted and reported, the client carries on
                with lock:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            with lock:
                answers.append({**answer, "client_ms": (time.perf_counter() - began) * 1000, "t": time.time()})

    threads = [threading.Thread(target=client_loop, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if "start" not in clock:
        raise SystemExit(f"The clients failed before the clock started: {errors[0]}")
    return {"requests": len(answers) + len(errors), "failures": len(errors), **summarise(answers),
            "errors": sorted(set(errors))[:5], "started": clock["started"]}


def run_endpoint(url: str, endpoint: str, args: argparse.Namespace) -> dict:
    """One timed round against the app at ``url`` through ``endpoint``, with Gradio's traces if --profile."""
    if endpoint == "gradio_client":
        result = threaded_round(lambda: gradio_client_sender(url, args), args.clients, args.seconds)
    else:
        environment = {"GENIMG_LOCUST_BACKEND": args.backend, "GENIMG_LOCUST_STEPS": str(args.steps),
                       "GENIMG_LOCUST_PRECISION": args.precision}
        user = LOCUST_USERS[endpoint]
        with tempfile.TemporaryDirectory(prefix="genimg-loadtest-") as workdir:
            locust_round(url, user, args.clients, WARM_UP_S, Path(workdir), "warm-up", environment)
            result = locust_round(url, user, args.clients, args.seconds, Path(workdir), endpoint, environment)
    return {**result, "server_p50_ms": server_phases(url, result["started"]) if args.profile else None}


def server_phases(url: str, since: float) -> dict | None:
    """Medians of Gradio's own traces (GRADIO_PROFILING=1) of ``/generate_one`` since ``since`` (time.time):
    queue wait, preprocess, the function call, postprocess (saving images to the cache) and their total."""
    try:
        with urllib.request.urlopen(url + "gradio_api/profiling/traces", timeout=10) as response:
            traces = json.loads(response.read())
    except OSError:
        return None  # an app given by --url that runs without GRADIO_PROFILING=1
    traces = [t for t in traces if t["fn_name"] == "generate_one" and t["timestamp"] >= since]
    phases = ("queue_wait", "preprocess", "fn_call", "postprocess", "postprocess_save_pil_to_cache", "total")
    return {phase: percentile([t[f"{phase}_ms"] for t in traces], 0.5) for phase in phases} if traces else None


def engine_ratio(args: argparse.Namespace, report: dict, calls: int = 20) -> dict:
    """What the engine alone delivers at the round's mean batch, and the round's images/s as a share of it:
    ``generate_batch`` of that many one-image requests, median of ``calls`` timed calls after two warm-up calls, in
    this process (the app has stopped by then)."""
    import genimg

    batch = max(1, round(report["mean_batch"] or 1))
    generator = genimg.load(args.backend, precision=args.precision)
    prompts, seeds, times = [PROMPTS[i % len(PROMPTS)] for i in range(batch)], list(range(batch)), []
    for call in range(calls + 2):
        began = time.perf_counter()
        generator.generate_batch(prompts, seeds, steps=args.steps or None)
        times.append(time.perf_counter() - began)
    engine = batch / sorted(times[2:])[calls // 2]
    return {"batch": batch, "images_per_s": engine, "ratio": report["images_per_s"] / engine}


def runs(args: argparse.Namespace) -> list[dict]:
    """Every timed round the arguments ask for, as reports."""
    if args.in_process:
        import genimg
        from genimg.serve.batching import MicroBatcher

        generator = genimg.load(args.backend, precision=args.precision)
        sizes = [1, args.max_batch or 8] if args.compare_batching else [args.max_batch or 8]
        batchers = {size: MicroBatcher(generator, size) for size in sizes}  # each shared by all the clients
        return [{"endpoint": "in-process", "max_batch": size, **threaded_round(
            lambda: in_process_sender(batcher, args), args.clients, args.seconds)} for size, batcher in batchers.items()]
    if args.url:
        url = check_loopback(args.url)
        return [{"endpoint": endpoint, **run_endpoint(url, endpoint, args)} for endpoint in args.endpoint]
    apps = ([(1, "genimg"), (args.max_batch or 8, "genimg"), (args.max_batch or 8, "gradio")]
            if args.compare_batching else [(args.max_batch, args.batching)])
    reports = []
    for max_batch, batching in apps:
        environment = {"GENIMG_MAX_BATCH": max_batch, "GENIMG_BATCHING": batching,
                       "GRADIO_PROFILING": "1" if args.profile else None}
        with LaunchedApp(args.log, {key: str(value) for key, value in environment.items() if value}) as app:
            reports += [{"endpoint": endpoint, "max_batch": max_batch, "batching": batching,
                         **run_endpoint(app.url, endpoint, args)} for endpoint in args.endpoint]
    return reports


def line(report: dict) -> str:
    batch = "" if report["mean_batch"] is None else f", mean batch {report['mean_batch']:.1f}"
    if report["engine_p50_ms"] is not None:
        batch += f", engine p50 {report['engine_p50_ms']:,.1f} ms, overhead p50 {report['overhead_p50_ms']:,.1f} ms"
    settings = "".join([f", max batch {report['max_batch']}" if report.get("max_batch") else "",
                        f" ({report['batching']} batching)" if report.get("batching") else ""])
    percentiles = "n/a" if report["p50_ms"] is None else f"{report['p50_ms']:,.0f} / {report['p95_ms']:,.0f} ms"
    return (f"{report['endpoint']} x{report['clients']} clients{settings}: {report['requests']} requests, "
            f"{report['failures']} failed, p50/p95 {percentiles}, {report['images_per_s']:.2f} images/s{batch}")


def print_reports(reports: list[dict], compared: int) -> None:
    """The reports, one line each; with ``compared`` (the rounds per setting of --compare-batching), each batched
    round's images/s as a multiple of the same endpoint's without batching."""
    for report in reports:
        print(line(report))
        for message in report["errors"]:
            print(f"  error: {message}")
        if report["server_p50_ms"]:
            print("  server phases p50 (ms): " + ", ".join(f"{name} {value:.1f}"
                                                           for name, value in report["server_p50_ms"].items()))
        if report["engine"]:
            print(f"  engine alone (generate_batch at batch {report['engine']['batch']}, in process): "
                  f"{report['engine']['images_per_s']:.1f} images/s; delivered {100 * report['engine']['ratio']:.0f}%")
    for index, report in enumerate(reports[compared:] if compared else [], start=compared):
        unbatched = reports[index % compared]["images_per_s"]
        if unbatched > 0:
            print(f"{report['endpoint']}, max batch {report['max_batch']} ({report['batching'] or 'genimg'} batching):"
                  f" {report['images_per_s'] / unbatched:.2f}x the images/s of no batching")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg.serve.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", default="gan")
    parser.add_argument("--steps", type=int, default=0, help="0 = the backend's default")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--endpoint", nargs="+", choices=["gradio", "gradio_client", "rest"], default=["gradio"],
                        help="each in turn against one app: /generate_one over Gradio's HTTP API (Locust), the same "
                             "through gradio_client sessions, POST /v1/image (Locust)")
    parser.add_argument("--url", help="an app already running on 127.0.0.1 (default: start app.py)")
    parser.add_argument("--max-batch", type=int, help="GENIMG_MAX_BATCH for the app this starts")
    parser.add_argument("--batching", choices=["genimg", "gradio"], help="GENIMG_BATCHING for the app this starts")
    parser.add_argument("--compare-batching", action="store_true",
                        help="/generate_one without batching, with genimg's micro-batcher, then with Gradio's "
                             "batch=True (starts the app three times)")
    parser.add_argument("--in-process", action="store_true",
                        help="no app, no HTTP: the clients call genimg's micro-batcher directly")
    parser.add_argument("--log", type=Path, help="write the started app's output here")
    parser.add_argument("--profile", action="store_true",
                        help="start the app with GRADIO_PROFILING=1 and report Gradio's per-phase medians")
    parser.add_argument("--engine-ratio", action="store_true",
                        help="then time generate_batch in this process at each round's mean batch size")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_bounds(args.clients, args.seconds)
    if args.compare_batching and args.url:
        raise SystemExit("--compare-batching starts its own apps; leave out --url.")
    if args.compare_batching and "rest" in args.endpoint:
        raise SystemExit("--compare-batching compares /generate_one's batching; leave out --endpoint rest.")
    reports = [{"backend": args.backend, "clients": args.clients, "seconds": args.seconds, "max_batch": None,
                "batching": None, "server_p50_ms": None, **report} for report in runs(args)]
    for report in reports:
        report["engine"] = engine_ratio(args, report) if args.engine_ratio else None
    if args.json:
        print(json.dumps({"reports": reports}, indent=2))
    else:
        print_reports(reports, (1 if args.in_process else len(args.endpoint)) * args.compare_batching)
    return 0 if all(report["requests"] > report["failures"] for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
