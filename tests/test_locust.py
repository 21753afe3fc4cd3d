"""The Locust load test (genimg/serve/locustfile.py) against the app, and the side-by-side report's arithmetic
(genimg.bench.scaling). Locust is only ever imported in a subprocess: importing it monkey-patches the interpreter
with gevent, which breaks this test process (ssl, threads)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from genimg.bench import scaling

ROOT = Path(__file__).resolve().parents[1]


def locust(host: str, users: str, csv_prefix: Path, details: Path, seconds: int = 8) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(scaling.LOCUSTFILE), "--headless", "-u", "2",
                           "-r", "2", "-t", f"{seconds}s", "--host", host, "--csv", str(csv_prefix), "--only-summary",
                           "--stop-timeout", "60", *users.split()], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "GENIMG_LOCUST_DETAILS": str(details)})


@pytest.mark.slow
def test_both_paths_under_locust(app_url, tmp_path):
    result = locust(app_url.rstrip("/"), "RestUser GradioUser", tmp_path / "run", tmp_path / "details.json")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run_stats.csv") as file:
        rows = {row["Name"]: row for row in csv.DictReader(file)}
    for name in ("POST /v1/image", "/generate_one"):
        assert int(rows[name]["Request Count"]) > 0 and int(rows[name]["Failure Count"]) == 0, rows[name]
    details = json.loads((tmp_path / "details.json").read_text())
    assert details and all(d["engine_ms"] > 0 and d["server_ms"] >= d["engine_ms"] for d in details)


def test_other_hosts_are_refused(tmp_path):
    result = locust("http://192.0.2.1:8000", "RestUser", tmp_path / "run", tmp_path / "details.json", seconds=2)
    assert result.returncode != 0 and "only drives servers on this machine" in result.stderr + result.stdout


def test_completed_event_reads_gradio_streams():
    script = """
import pytest
from genimg.serve.locustfile import completed_event
stream = 'event: generating\\ndata: null\\n\\nevent: complete\\ndata: [{"url": "http://x/file=a.png"}, {"pid": 3}]\\n'
assert completed_event(stream) == ({"url": "http://x/file=a.png"}, {"pid": 3})
with pytest.raises(RuntimeError, match="Gradio error"):
    completed_event('event: error\\ndata: "The model would not load"\\n')
with pytest.raises(RuntimeError, match="without a result"):
    completed_event("event: heartbeat\\ndata: null\\n")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_the_kill_is_read_from_the_answers(tmp_path):
    answers = [{"pid": 1, "t": 10.0}, {"pid": 2, "t": 11.0}, {"pid": 2, "t": 12.5}, {"pid": 3, "t": 14.0}]
    (tmp_path / "kill.json").write_text(json.dumps(answers))
    after = scaling.after_kill(tmp_path / "kill.json", {"pid": 1, "at": 12.0})
    assert after["images_before_kill"] == 2 and after["images_after_kill"] == 2
    assert after["first_image_after_kill_s"] == 0.5 and after["first_image_from_new_replica_s"] == 2.0


def test_a_round_without_answers_reads_as_zero(tmp_path):
    path = tmp_path / "stats.csv"
    path.write_text("Type,Name,Request Count,Failure Count,Requests/s,50%,95%\n,Aggregated,0,0,0,N/A,N/A\n")
    assert scaling.read_stats(path, "POST /v1/image")["requests"] == 0
