"""One process against Ray Serve replicas, side by side: ``POST /v1/image`` under the same Locust load.

    python -m genimg.bench.scaling --replicas 2 --clients 8 --seconds 20 --rounds 3 --out assets/bench/serving

Starts ``python app.py`` (one process) and ``python -m genimg serve --replicas N`` (Ray on this machine) on free
loopback ports, both drawing ``latent-lcm`` 1 step with the same options, then runs Locust's RestUser against each
in turn, alternating which goes first, for ``--rounds`` rounds of ``--seconds``: images/s, p50/p95 and the mean batch
per round and their medians. A one-client round per server gives the serving overhead per request (Server-Timing:
the request's time in the server minus the engine's). Last, a replica is killed under load and the report counts the
answers: images, clear refusals (503), failures, and how soon images came again and from a new process.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genimg.hardware import cpu_name
from genimg.serve.launch import LaunchedApp, free_port
from genimg.serve.locust_run import locust_round

ROOT = Path(__file__).resolve().parents[2]


class RayServe:
    """``python -m genimg serve`` on a free loopback port, stopped with Ctrl-C's signal (Serve and Ray shut down)."""

    def __init__(self, replicas: int, log_path: Path, extra: tuple = ()):
        self.port, self.replicas, self.log_path, self.extra = free_port(), replicas, log_path, list(extra)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "RayServe":
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "genimg", "serve", "--replicas", str(self.replicas), "--port", str(self.port),
             "--cpus", str(os.cpu_count()), *self.extra], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if "genimg serving" in self.log_path.read_text():
                return self
            if self.process.poll() is not None:
                raise SystemExit(f"genimg serve exited early; see {self.log_path}")
            time.sleep(1)
        self.__exit__()
        raise SystemExit(f"genimg serve did not start within 300 s; see {self.log_path}")

    def __exit__(self, *_) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def rest_round(url: str, clients: int, seconds: float, workdir: Path, name: str, kill_after_s: float | None = None
               ) -> dict:
    """Locust's RestUser against ``url``; with ``kill_after_s``, a replica is killed that far into the round."""
    kill = None if kill_after_s is None else lambda: kill_one_replica(url, delay_s=kill_after_s)
    result = locust_round(url, "RestUser", clients, seconds, workdir, name, while_running=kill)
    if kill is not None:
        killed = result.pop("while_running")
        result["killed"] = {**killed, "after_s": round(killed["at"] - result["started"], 1)}
    return result


def kill_one_replica(url: str, delay_s: float) -> dict:
    """After ``delay_s``, SIGKILL the process that draws the next image (its pid comes with the answer)."""
    import urllib.request

    time.sleep(delay_s)
    request = urllib.request.Request(url + "/v1/image", data=b'{"prompt": "a red apple", "steps": 1}',
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        pid = json.loads(response.headers["Genimg-Info"])["pid"]
    os.kill(pid, signal.SIGKILL)
    return {"pid": pid, "at": time.time()}


def machine() -> str:
    return f"{cpu_name()}, {platform.system()} {platform.release()}"


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("GENIMG_LOCUST_STEPS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="genimg-scaling-"))
    report = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "machine": machine(),
              "command": "python -m genimg.bench.scaling " + " ".join(sys.argv[1:]), "clients": args.clients,
              "seconds": args.seconds, "replicas": args.replicas, "load_before": os.getloadavg(), "rounds": []}
    with LaunchedApp(log_path=workdir / "app.log") as app, RayServe(args.replicas, workdir / "serve.log") as ray, \
            RayServe(args.replicas, workdir / "direct.log", ["--direct"]) as direct:
        targets = {"one process (app.py)": app.url.rstrip("/"), f"Ray Serve, {args.replicas} replicas": ray.url,
                   f"Ray Serve, {args.replicas} replicas, --direct": direct.url}
        for name, url in targets.items():  # warm-up: every batch size the run will use compiles its first call
            rest_round(url, args.clients, 10, workdir, "warm")
        for round_ in range(args.rounds):  # each round in another order: no server always runs first or last
            names = list(targets)
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name, url in ((name, targets[name]) for name in order):
                report["rounds"].append({"target": name, "round": round_, "clients": args.clients,
                                         **rest_round(url, args.clients, args.seconds, workdir, f"r{round_}")})
        for name, url in targets.items():
            report["rounds"].append({"target": name, "round": "one client", "clients": 1,
                                     **rest_round(url, 1, args.seconds / 2, workdir, "one")})
        for key, url in (("kill", ray.url), ("kill_direct", direct.url)):
            report[key] = rest_round(url, args.clients, max(args.seconds, 20), workdir, key, kill_after_s=5)
            report[key].update(after_kill(workdir / f"{key}.json", report[key]["killed"]))
    report["load_after"] = os.getloadavg()
    return report


def after_kill(details: Path, killed: dict) -> dict:
    """What the answers say of the kill: images before and after it, the first image after it, and the first image
    from a process that was not drawing before (the replacement replica)."""
    answers = json.loads(details.read_text()) if details.exists() else []
    before = [a for a in answers if a["t"] < killed["at"]]
    after = [a for a in answers if a["t"] >= killed["at"]]
    known = {a["pid"] for a in before}
    new = [a["t"] - killed["at"] for a in after if a["pid"] not in known]
    return {"images_before_kill": len(before), "images_after_kill": len(after),
            "first_image_after_kill_s": min((a["t"] - killed["at"] for a in after), default=None),
            "first_image_from_new_replica_s": min(new, default=None),
            "processes": sorted({a["pid"] for a in answers})}


def summary(report: dict) -> dict:
    """Per target, the medians over the loaded rounds, and the ratio the scaling target is about."""
    medians = {}
    for target in dict.fromkeys(r["target"] for r in report["rounds"]):
        loaded = [r for r in report["rounds"] if r["target"] == target and r["round"] != "one client"]
        single = next(r for r in report["rounds"] if r["target"] == target and r["round"] == "one client")
        medians[target] = {key: statistics.median(r[key] for r in loaded)
                           for key in ("images_per_s", "p50_ms", "p95_ms", "mean_batch")}
        medians[target]["failures"] = sum(r["failures"] for r in loaded)
        medians[target]["one_client_overhead_p50_ms"] = single["server_overhead_p50_ms"]
        medians[target]["one_client_engine_p50_ms"] = single["engine_p50_ms"]
    return medians


def markdown(report: dict) -> str:
    medians = summary(report)
    single = next(iter(medians.values()))
    lines = [f"# One process against Ray Serve replicas: POST /v1/image under Locust ({report['date']})", "",
             f"Machine: {report['machine']}. Load average before / after: "
             f"{' '.join(f'{v:.1f}' for v in report['load_before'])} / "
             f"{' '.join(f'{v:.1f}' for v in report['load_after'])}. Command: `{report['command']}`.",
             f"latent-lcm, 1 step, fp32, {report['clients']} Locust users sending one request after another, "
             f"{report['seconds']:.0f} s per round, rounds interleaved; medians over the rounds.", "",
             "| server | images/s | x one process | p50 ms | p95 ms | mean batch | failures | overhead p50, 1 client "
             "(ms) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for target, row in medians.items():
        lines.append(f"| {target} | {row['images_per_s']:.1f} | {row['images_per_s'] / single['images_per_s']:.2f} | "
                     f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['mean_batch']:.1f} | {row['failures']} | "
                     f"{row['one_client_overhead_p50_ms']:.1f} |")
    lines += ["", "Overhead: the request's time in the server (Server-Timing `server`: from the ingress, or with "
                  "`--direct` the replica, receiving it to the answer) minus the engine's (`engine`), one client.", "",
              "## Every round", "", "| server | round | users | images/s | p50 ms | p95 ms | mean batch | failures |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['target']} | {r['round']} | {r['clients']} | {r['images_per_s']:.1f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {(r['mean_batch'] or 0):.1f} | {r['failures']} |" for r in report["rounds"]]
    lines += ["", "## A replica killed under load", ""]
    for key, label in (("kill", "`genimg serve`"), ("kill_direct", "`genimg serve --direct`")):
        kill = report[key]
        failures = "; ".join(kill.get("errors", []))
        lines += [f"{label}: SIGKILL to the replica process {kill['killed']['pid']}, {kill['killed']['after_s']} s "
                  f"into a {max(report['seconds'], 20):.0f} s round of {report['clients']} users: {kill['requests']} "
                  f"requests, {kill['failures']} not answered with an image (Locust counts a 503 or 500 as a failure)"
                  f"{': ' + failures if failures else ''}; {kill['images_before_kill']} images before the kill, "
                  f"{kill['images_after_kill']} after it. The first image after the kill came "
                  f"{_seconds(kill['first_image_after_kill_s'])} after it, the first from the replacement replica "
                  f"{_seconds(kill['first_image_from_new_replica_s'])} after it.", ""]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "never in the round" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.replicas <= 16 and 1 <= args.rounds <= 10
            and 1 <= args.seconds <= 600):
        raise SystemExit("Keep --clients 1-64, --replicas 1-16, --rounds 1-10 and --seconds 1-600.")
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scaling-{report['date'][:10]}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
