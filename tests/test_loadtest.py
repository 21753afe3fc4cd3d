"""The load test: bounded, loopback only, its own threaded clients, and short real runs against app.py (REST under
Locust, gradio_client in threads) and against the micro-batcher in process."""
import json
import time

import pytest

from genimg.serve import loadtest


@pytest.mark.parametrize("url", ["http://example.com:7860/", "http://10.0.0.2:7860/", "https://hf.space/app"])
@pytest.mark.parametrize("endpoint", ["rest", "gradio_client"])
def test_only_loopback_apps_are_driven(url, endpoint):
    with pytest.raises(SystemExit, match="only drives apps on this machine"):
        loadtest.main(["--url", url, "--seconds", "1", "--endpoint", endpoint])


@pytest.mark.parametrize("arguments, message", [
    (["--clients", "0"], "Keep the clients"), (["--clients", "65"], "Keep the clients"),
    (["--seconds", "0"], "Keep the clients"), (["--seconds", "99999"], "Keep the clients"),
    (["--url", "http://127.0.0.1:1/", "--compare-batching"], "leave out --url"),
    (["--compare-batching", "--endpoint", "gradio", "rest"], "leave out --endpoint rest"),
    (["--endpoint", "websocket"], "2")])  # argparse's exit code for an unknown choice
def test_unbounded_or_contradictory_runs_are_refused(arguments, message):
    with pytest.raises(SystemExit, match=message):
        loadtest.main(arguments)


def test_threaded_clients_warm_up_unmeasured_then_count_answers_and_failures():
    sent = []

    def make_sender():
        def send(index: int) -> dict:
            sent.append(index)
            time.sleep(0.005)
            if index % 5 == 4:
                raise RuntimeError("the server said no")
            return {"batched_with": 2, "engine_ms": 1.0}
        return send

    result = loadtest.threaded_round(make_sender, clients=3, seconds=0.3)
    measured = len(sent) - 3 * loadtest.WARM_UP_REQUESTS
    assert result["requests"] == measured and 0 < result["failures"] < measured
    assert result["errors"] == ["RuntimeError: the server said no"]
    assert result["p95_ms"] >= result["p50_ms"] >= 5 and result["mean_batch"] == 2
    assert result["overhead_p50_ms"] == pytest.approx(result["p50_ms"] - 1.0)
    assert result["images_per_s"] == pytest.approx((measured - result["failures"]) / 0.3, rel=0.3)


def test_a_failed_warm_up_calls_the_round_off():
    def make_sender():
        def send(index: int) -> dict:
            raise ConnectionError("refused")
        return send

    with pytest.raises(SystemExit, match="failed before the clock started: warm-up: ConnectionError: refused"):
        loadtest.threaded_round(make_sender, clients=2, seconds=1)


@pytest.mark.slow
def test_rest_under_locust_and_gradio_client_against_one_app(capsys, tmp_path):
    assert loadtest.main(["--clients", "2", "--seconds", "3", "--backend", "gan", "--endpoint", "gradio_client", "rest",
                          "--json", "--profile", "--engine-ratio", "--log", str(tmp_path / "app.log")]) == 0
    gradio_client, rest = json.loads(capsys.readouterr().out)["reports"]
    assert (gradio_client["endpoint"], rest["endpoint"]) == ("gradio_client", "rest")
    for report in (gradio_client, rest):
        assert report["requests"] >= 2 and report["failures"] == 0 and report["errors"] == []
        assert report["p95_ms"] >= report["p50_ms"] > 0 and report["clients"] == 2
        assert report["images_per_s"] == pytest.approx(report["requests"] / 3, rel=0.5)
        assert report["mean_batch"] >= 1 and report["processes"] == 1
        # the generation is part of what the client waited for; the rest is what serving added
        assert 0 < report["engine_p50_ms"] < report["p50_ms"] and report["overhead_p50_ms"] > 0
        engine = report["engine"]  # generate_batch alone, in the test process, at the round's mean batch
        assert engine["batch"] == max(1, round(report["mean_batch"])) and engine["images_per_s"] > 0
        assert engine["ratio"] == pytest.approx(report["images_per_s"] / engine["images_per_s"])
    phases = gradio_client["server_p50_ms"]  # Gradio's own traces of the timed /generate_one requests
    assert phases["total"] >= phases["fn_call"] > 0 and phases["queue_wait"] >= 0
    assert rest["server_p50_ms"] is None  # POST /v1/image does not pass through Gradio's queue
    # gradio_client's protocol (queue, event polling, file download) costs more than one HTTP exchange
    assert gradio_client["overhead_p50_ms"] > rest["overhead_p50_ms"]


@pytest.mark.slow
def test_in_process_clients_share_the_micro_batcher(capsys):
    assert loadtest.main(["--in-process", "--clients", "3", "--seconds", "1", "--backend", "gan", "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)["reports"]
    assert report["endpoint"] == "in-process" and report["max_batch"] == 8 and report["failures"] == 0
    assert report["requests"] > 0 and 1 <= report["mean_batch"] <= 3 and report["engine_p50_ms"] > 0
