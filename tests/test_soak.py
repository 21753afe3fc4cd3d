"""The soak tool: its bounds, its summary, and a short real run against app.py with the sampler running."""
import json

import pytest

from genimg.serve import soak


@pytest.mark.parametrize("arguments", [["--requests", "0"], ["--clients", "0"], ["--max-seconds", "0"],
                                       ["--requests", "10", "--disconnects", "6"], ["--sample-s", "0"]])
def test_unbounded_or_contradictory_soaks_are_refused(arguments):
    with pytest.raises(SystemExit):
        soak.main(arguments)


def test_drift_is_measured_after_warm_up_between_the_first_and_last_tenths():
    samples = [soak.Sample(i, i * 10, 1000.0 if i < 3 else 1100.0 + i, 20, 9, 1.0, 5, 2) for i in range(30)]
    report = soak.summarise(soak.SoakReport(requests=300, clients=1, warm_up_requests=30), samples)
    # 27 samples after warm-up (requests_done >= 30), a tenth of them is 2: samples 3-4 against 28-29
    assert report.rss_warm_mb == 1103.5 and report.rss_end_mb == 1128.5
    assert report.rss_drift_pct == pytest.approx(100 * 25 / 1103.5, abs=0.01)
    assert report.rss_max_mb == 1129.0 and report.fds_end == 20 and report.temp_max_files == 5


@pytest.mark.slow
def test_a_short_soak_samples_the_server_and_serves_every_request(tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert soak.main(["--requests", "24", "--clients", "2", "--disconnects", "1", "--sample-s", "1",
                      "--out", str(out), "--log", str(tmp_path / "app.log")]) == 0, capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["served"] == 23 and report["errors"] == 0 and report["disconnects"] == 1
    assert len(report["samples"]) >= 2 and all(s["rss_mb"] > 100 and s["open_fds"] > 0 for s in report["samples"])
    assert report["samples"][-1]["requests_done"] == 24 and report["temp_max_files"] > 0
    assert report["rss_drift_pct"] is not None and set(report["latency_p50_ms"]) <= {
        f"{endpoint} {backend} bs{batch}" for endpoint, backend, _, batch in soak.MIX}
