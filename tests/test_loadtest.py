"""The load test: bounded, loopback only, and a tiny real run against app.py."""
import json

import pytest

from genimg.serve import loadtest


def test_percentiles_are_latencies_that_happened():
    assert loadtest.percentile([], 0.5) is None
    assert loadtest.percentile([30.0, 10.0, 20.0], 0.5) == 20.0
    assert loadtest.percentile(list(range(1, 101)), 0.95) == 95


@pytest.mark.parametrize("url", ["http://example.com:7860/", "http://10.0.0.2:7860/", "https://hf.space/app"])
def test_only_loopback_apps_are_driven(url):
    with pytest.raises(SystemExit, match="only drives apps on this machine"):
        loadtest.main(["--url", url, "--seconds", "1"])


@pytest.mark.parametrize("arguments", [["--clients", "0"], ["--seconds", "0"], ["--seconds", "99999"],
                                       ["--url", "http://127.0.0.1:1/", "--compare-batching"]])
def test_unbounded_or_contradictory_runs_are_refused(arguments):
    with pytest.raises(SystemExit):
        loadtest.main(arguments)


@pytest.mark.slow
def test_a_tiny_load_test_serves_every_request(capsys, tmp_path):
    assert loadtest.main(["--clients", "2", "--seconds", "3", "--backend", "gan", "--json", "--profile",
                          "--engine-ratio", "--compare-endpoints", "--log", str(tmp_path / "app.log")]) == 0
    output = json.loads(capsys.readouterr().out)
    [report, rest], [ratio, _] = output["reports"], output["engine_ratios"]
    assert rest["endpoint"] == "rest" and rest["served"] >= 2 and rest["errors"] == 0
    assert 0 < rest["engine_p50_ms"] < rest["p50_ms"] and rest["overhead_p50_ms"] > 0
    assert report["served"] >= 2 and report["errors"] == 0
    assert report["p95_ms"] >= report["p50_ms"] > 0 and report["images_per_s"] > 0
    assert report["mean_batch"] >= 1 and report["clients"] == 2
    assert 0 < report["engine_p50_ms"] < report["p50_ms"]  # the generation is part of what the client waited for
    phases = report["server_p50_ms"]  # Gradio's own traces of the requests that were timed
    assert phases["total"] >= phases["fn_call"] > 0 and phases["queue_wait"] >= 0
    assert ratio["batch"] == max(1, round(report["mean_batch"])) and ratio["engine_images_per_s"] > 0
    assert ratio["ratio"] == pytest.approx(report["images_per_s"] / ratio["engine_images_per_s"])
