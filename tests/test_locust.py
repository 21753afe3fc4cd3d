"""The Locust load test (genimg/serve/locustfile.py) against the app, how its results are read back
(genimg.serve.locust_run) and the side-by-side report's arithmetic (genimg.bench.scaling). Locust is only ever
imported in a subprocess: importing it monkey-patches the interpreter with gevent, which breaks this test process
(ssl, threads)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genimg.bench import scaling
from genimg.serve import locust_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("user", ["RestUser", "GradioUser"])
def test_both_paths_under_locust(app_url, tmp_path, user):
    result = locust_run.locust_round(app_url, user, 2, 4, tmp_path, "run")
    assert result["requests"] > 0 and result["failures"] == 0 and result["errors"] == [], result
    assert result["p95_ms"] >= result["p50_ms"] > 0 and result["images_per_s"] > 0 and result["processes"] == 1
    details = json.loads((tmp_path / "run.json").read_text())  # every answer, with what the server said of it
    assert len(details) == result["requests"]
    assert all(d["client_ms"] >= d["server_ms"] >= d["engine_ms"] > 0 and d["batched_with"] >= 1 for d in details)


def test_the_locustfile_itself_refuses_other_hosts():
    result = subprocess.run([sys.executable, "-m", "locust", "-f", str(locust_run.LOCUSTFILE), "--headless", "-u", "1",
                             "-t", "2s", "--host", "http://192.0.2.1:8000", "RestUser"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
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


def test_the_counts_are_locusts_final_statistics(tmp_path):
    path = tmp_path / "run_stats.json"
    path.write_text(json.dumps([{"name": "(join)", "num_requests": 41, "num_failures": 0},
                                {"name": "/generate_one", "num_requests": 40, "num_failures": 10}]))
    assert locust_run.read_stats(path, "/generate_one") == {"requests": 40, "failures": 10}
    assert locust_run.read_stats(path, "POST /v1/image") == {"requests": 0, "failures": 0}  # none finished
    assert locust_run.read_stats(tmp_path / "absent.json", "/generate_one")["requests"] == 0


def test_the_answers_give_rate_percentiles_batch_engine_and_overhead():
    answers = [{"batched_with": 2, "engine_ms": 10.0, "server_ms": 12.0, "client_ms": 15.0, "pid": 1, "t": 100.5},
               {"batched_with": 4, "engine_ms": 20.0, "server_ms": 21.0, "client_ms": 30.0, "pid": 2, "t": 101.0},
               {"batched_with": 3, "engine_ms": 30.0, "server_ms": 33.0, "client_ms": 40.0, "pid": 2, "t": 102.0}]
    summary = locust_run.summarise(answers)
    # three images from the first request's start (100.5 s - 15 ms) to the last answer (102.0 s)
    assert summary["images_per_s"] == pytest.approx(3 / 1.515)
    assert summary["p50_ms"] == 30.0 and summary["p95_ms"] == 40.0
    assert summary["mean_batch"] == 3.0 and summary["engine_p50_ms"] == 20.0 and summary["processes"] == 2
    assert summary["overhead_p50_ms"] == 10.0 and summary["server_overhead_p50_ms"] == 2.0
    empty = locust_run.summarise([])
    assert empty["images_per_s"] == 0.0 and empty["p50_ms"] is None and empty["mean_batch"] is None


@pytest.mark.parametrize("url, users, seconds", [("http://10.0.0.2:7860", 2, 5), ("http://127.0.0.1:7860", 0, 5),
                                                 ("http://127.0.0.1:7860", 65, 5), ("http://127.0.0.1:7860", 2, 0),
                                                 ("http://127.0.0.1:7860", 2, 3601)])
def test_a_round_off_this_machine_or_unbounded_is_refused_before_locust_starts(tmp_path, url, users, seconds):
    with pytest.raises(SystemExit, match="only drives apps on this machine|Keep the clients"):
        locust_run.locust_round(url, "RestUser", users, seconds, tmp_path, "refused")
    assert not list(tmp_path.iterdir())
