"""Locust, headless and bounded, against a server on this machine, and what its files say afterwards.

Locust runs in a subprocess only: importing it monkey-patches the interpreter with gevent (threads, ssl, sockets),
which would break the caller. Locust's final statistics (--json-file) give the requests and failures; its failure
CSV the messages. The locustfile (``genimg/serve/locustfile.py``) writes, per answered request, what the server said
of it and the client's own time (GENIMG_LOCUST_DETAILS): the rate and the percentiles come from those, the same way
as for genimg's own threaded clients. (Locust's stats CSV is rewritten once a second and can miss a run's last
second, a third of a 3 s round.)
"""
from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from genimg.timing import percentile

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "genimg" / "serve" / "locustfile.py"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_USERS, MAX_SECONDS = 64, 3600
# The Locust statistics row of each user class's timed request.
REQUEST_NAMES = {"RestUser": "POST /v1/image", "GradioUser": "/generate_one"}


def check_loopback(url: str) -> str:
    """``url`` with a trailing slash, if it names this machine; otherwise the run is refused."""
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"The load test only drives apps on this machine (127.0.0.1), not {host!r}.")
    return url if url.endswith("/") else url + "/"


def check_bounds(users: int, seconds: float) -> None:
    if not (1 <= users <= MAX_USERS and 0 < seconds <= MAX_SECONDS):
        raise SystemExit(f"Keep the clients between 1 and {MAX_USERS} and the seconds between 0 and {MAX_SECONDS}.")


def locust_round(url: str, user: str, users: int, seconds: float, workdir: Path, name: str,
                 environment: dict | None = None, while_running: Callable[[], dict] | None = None) -> dict:
    """Locust's ``user`` class (RestUser, GradioUser): ``users`` users sending one request after another for
    ``seconds`` (a request under way then may finish, up to 30 s more); ``while_running()``, if given, is called
    as the round starts and its answer kept under "while_running". Locust's statistics and the answers' summary."""
    check_bounds(users, seconds)
    details = workdir / f"{name}.json"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
               "-r", str(users), "-t", f"{max(1, round(seconds))}s", "--host", check_loopback(url).rstrip("/"),
               "--csv", str(workdir / name), "--json-file", str(workdir / f"{name}_stats"), "--only-summary",
               "--stop-timeout", "30", user]
    started = time.time()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(environment or {}), "GENIMG_LOCUST_DETAILS": str(details)})
    during = while_running() if while_running else None
    process.wait(timeout=seconds + 120)
    answers = json.loads(details.read_text()) if details.exists() else []
    result = {**read_stats(workdir / f"{name}_stats.json", REQUEST_NAMES[user]), **summarise(answers),
              "errors": read_failures(workdir / f"{name}_failures.csv"), "started": started}
    return result if during is None else {**result, "while_running": during}


def read_stats(path: Path, name: str) -> dict:
    """From Locust's final statistics, how many ``name`` requests were sent and how many failed."""
    entries = json.loads(path.read_text()) if path.exists() else []
    entry = next((e for e in entries if e["name"] == name), {"num_requests": 0, "num_failures": 0})
    return {"requests": entry["num_requests"], "failures": entry["num_failures"]}


def read_failures(path: Path, most: int = 5) -> list[str]:
    """The first ``most`` distinct failures Locust saw (its message, how often)."""
    if not path.exists():
        return []
    with open(path) as file:
        return [f"{row['Error']} (x{row['Occurrences']})" for row in csv.DictReader(file)][:most]


def summarise(answers: list[dict]) -> dict:
    """What the answered requests say (each with ``client_ms``, ``t``: when it ended, and what the server said):
    images/s from the first request's start to the last answer, the client's p50/p95, how many requests shared a
    batch (mean), the engine's time (median), the client's time minus the engine's (median, per request: what
    serving adds), the server's time minus the engine's (median) and how many processes drew."""
    latencies = [a["client_ms"] for a in answers]
    span_s = max(a["t"] for a in answers) - min(a["t"] - a["client_ms"] / 1000 for a in answers) if answers else 0
    batches = [a["batched_with"] for a in answers if a.get("batched_with")]
    timed = [a for a in answers if a.get("engine_ms") is not None]
    return {"images_per_s": len(answers) / span_s if span_s > 0 else 0.0,
            "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "mean_batch": statistics.fmean(batches) if batches else None,
            "engine_p50_ms": percentile([a["engine_ms"] for a in timed], 0.5),
            "overhead_p50_ms": percentile([a["client_ms"] - a["engine_ms"] for a in timed], 0.5),
            "server_overhead_p50_ms": percentile([a["server_ms"] - a["engine_ms"] for a in timed
                                                  if a.get("server_ms")], 0.5),
            "processes": len({a.get("pid") for a in answers})}
