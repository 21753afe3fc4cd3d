"""``python -m genimg serve``: genimg on Ray Serve (genimg.serve.cluster), on this machine or a running cluster.

    python -m genimg serve --replicas 2 --port 8000
    python -m genimg serve --min-replicas 1 --max-replicas 4 --num-gpus 1 --address auto --host 0.0.0.0

Starts Ray here (no dashboard, a small object store, no usage reporting, every address on 127.0.0.1) unless
``--address`` names a cluster to join, deploys, prints where it listens, and blocks; Ctrl-C (or SIGTERM) shuts Serve
and Ray down and leaves no process behind.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from genimg.cli.generate import add_load_options, load_options
from genimg.errors import GenimgError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve POST /v1/image from Ray Serve replicas (docs/scaling.md)")
    add_load_options(parser)
    parser.add_argument("--replicas", type=int, default=1, help="generator replicas (default 1)")
    parser.add_argument("--min-replicas", type=int, help="autoscaling: at least this many replicas")
    parser.add_argument("--max-replicas", type=int, help="autoscaling: at most this many replicas")
    parser.add_argument("--target-ongoing-requests", type=float,
                        help="autoscaling: requests per replica to aim at (default: the batch size)")
    parser.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per replica (default 1)")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per replica (1: a replica per GPU)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0,
                        help="how long a replica waits to fill a batch once a request is there (default 2)")
    parser.add_argument("--direct", action="store_true",
                        help="the replicas answer HTTP themselves: one hop less per request, but a replica that dies "
                             "fails its requests in flight (Ray's 500) instead of retrying them (docs/scaling.md)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", help="join this Ray cluster ('auto': the one started on this machine) instead "
                                          "of starting Ray here")
    parser.add_argument("--cpus", type=int, help="CPUs Ray may use when it starts here (default: all)")
    parser.set_defaults(handler=main)


def settings_from(args: argparse.Namespace):
    from genimg.serve.cluster import ClusterSettings

    options = load_options(args)
    precision = options.pop("precision")
    options = {name: value for name, value in options.items() if value not in (None, False) or name == "pruned"}
    if args.replicas < 1 or (args.min_replicas is not None and args.min_replicas < 0):
        raise GenimgError("--replicas must be at least 1 and --min-replicas at least 0.")
    if args.max_replicas is not None and args.max_replicas < max(1, args.min_replicas or 0):
        raise GenimgError("--max-replicas must be at least 1 and at least --min-replicas.")
    return ClusterSettings(backend=args.backend, precision=precision, speed_options=options, replicas=args.replicas,
                           min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                           target_ongoing_requests=args.target_ongoing_requests, num_cpus=args.num_cpus,
                           num_gpus=args.num_gpus, batch_wait_ms=args.batch_wait_ms,
                           direct=args.direct)


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except GenimgError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import ray
    from ray import serve

    from genimg.serve.cluster import APP_NAME, deploy, start_ray

    stop = threading.Event()

    def stop_on_signals() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

    stop_on_signals()
    try:
        start_ray(args.address, args.cpus)
        # ray.init installs a SIGTERM handler that ends the process at once, leaving Ray's agents behind: a
        # SIGTERM (systemd, Kubernetes, `kill`) stops Serve and Ray as Ctrl-C does.
        stop_on_signals()
        url = deploy(settings, args.host, args.port)
        replicas = (f"{settings.min_replicas or 1}-{settings.max_replicas} replicas (autoscaling)"
                    if settings.max_replicas else f"{settings.replicas} replica(s)")
        print(f"genimg serving {settings.backend} on {replicas}: POST {url}", flush=True)
        print(f"the app can draw on it: GENIMG_RAY_ADDRESS={ray.get_runtime_context().gcs_address} python app.py",
              flush=True)
        stop.wait()
    except GenimgError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if ray.is_initialized():
            if args.address:  # a cluster we joined keeps running; only our application goes
                serve.delete(APP_NAME)
            else:
                serve.shutdown()
            ray.shutdown()
        print("genimg serve: stopped", flush=True)
    return 0
