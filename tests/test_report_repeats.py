"""Compare over repeats (genimg.serve.report): median and p90 per stage, the warm-up apart."""
from genimg.serve import report
from tests.test_report import generation


def test_compare_rows_over_repeats_give_median_and_p90_per_stage_with_the_warm_up_apart():
    runs = [generation(total_ms=ms) for ms in (50.0, 40.0, 90.0, 45.0, 41.0)]
    row = report.compare_row("1. a", {"backend": "gan"}, runs, 50.0, None, warm_up_ms=900.0)
    assert row["repeats"] == 5 and row["runs_ms"] == [50.0, 40.0, 90.0, 45.0, 41.0]
    assert row["latency_ms"] == 45.0 and row["latency_p90_ms"] == 90.0 and row["warm_up_ms"] == 900.0
    assert row["denoising_ms"] == row["denoising_p90_ms"] == 30.0
    table = report.compare_table([row])[0]
    assert table["median ms"] == 45.0 and table["p90 ms"] == 90.0 and table["warm-up ms"] == 900.0
    assert "denoising 30.0 / 30.0" in table["stages ms (median / p90)"] and "latency" not in table[
        "stages ms (median / p90)"]


def test_percentile_is_nearest_rank():
    assert report.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert report.percentile(list(range(1, 11)), 0.9) == 9 and report.percentile([7.0], 0.9) == 7.0
