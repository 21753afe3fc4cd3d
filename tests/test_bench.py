"""The benchmark on a tiny sweep: every output is written and consistent with itself (no timing thresholds)."""
import csv
import json

import pytest

from genimg.cli import build_parser
from genimg.bench.config import STOCK, BenchConfig, BenchSettings, full_sweep, quick_sweep
from genimg.bench.run import run_bench
from genimg.bench.report import write_report
from genimg.cli.bench import settings_from


def test_labels_and_quality_keys():
    config = BenchConfig("latent", batch_size=8, steps=4, precision="bf16", compile=True, prompt_cache=False)
    assert config.label == "latent 4 steps bf16+compile+no prompt cache bs8"
    assert config.quality_key == BenchConfig("latent", steps=4, precision="bf16", compile=True)
    assert BenchConfig(STOCK, steps=1).label == "stock diffusers 1 step fp32 bs1"


def test_sweeps_compare_with_stock_at_the_same_steps_and_hold_a_teacher():
    for sweep in (quick_sweep(4), full_sweep(4)):
        stock = [c for c in sweep if c.backend == STOCK]
        assert stock and all(c.steps == 4 and c.precision == "fp32" for c in stock)
        assert any(c.backend == "latent" and c.steps == 20 and c.precision == "fp32" for c in sweep)
        assert any(c.backend == "gan" and c.batch_size == 1 for c in sweep)
        assert len(set(sweep)) == len(sweep)
    assert not any(c.compile for c in quick_sweep())


def test_cli_quick_settings():
    args = build_parser().parse_args(["bench", "--quick", "--out", "somewhere", "--json"])
    settings = settings_from(args)
    assert args.handler.__module__ == "genimg.cli.bench"
    assert (settings.rounds, settings.warmup_rounds, len(settings.prompts), settings.images_per_prompt) == (5, 1, 4, 1)


@pytest.fixture(scope="module")
def report():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread is the least disturbed by other work on a small shared machine
    configs = [BenchConfig("gan", precision="bf16"), BenchConfig("latent", steps=20),
               BenchConfig(STOCK, steps=2), BenchConfig("latent", steps=2),
               BenchConfig("latent", steps=2, precision="bf16"), BenchConfig("latent", steps=2, guidance_cutoff=0.5),
               BenchConfig("latent-lcm", steps=1, precision="bf16", tiny_decoder=True, batch_size=2)]
    settings = BenchSettings(warmup_rounds=1, rounds=3, floor_rounds=2, prompts=("a red apple", "a sun"),
                             images_per_prompt=1, device="cpu", progress=False)
    try:
        return run_bench(configs, settings)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_every_row_is_timed_and_scored(report):
    assert len(report["rows"]) == 7
    for row in report["rows"]:
        latency = row["latency_ms"]
        assert latency["n"] == 3
        assert latency["min"] <= latency["q1"] <= latency["median"] <= latency["q3"] <= latency["max"]
        assert 0 <= row["score"] <= 100
        assert row["first_call_ms"] == pytest.approx(row["load_ms"] + row["first_generation_ms"])
        assert row["images_per_s"] == pytest.approx(1000 / latency["median"])
        assert row["stages_ms"]
    by_label = {row["label"]: row for row in report["rows"]}
    # the same weights, steps and seeds give the same images, so stock and genimg fp32 score alike
    stock_score = by_label["stock diffusers 2 steps fp32 bs1"]["score"]
    assert by_label["latent 2 steps fp32 bs1"]["score"] == pytest.approx(stock_score)


@pytest.mark.slow
def test_ratios_come_from_the_medians(report):
    rows = {row["label"]: row for row in report["rows"]}
    stock = rows["stock diffusers 2 steps fp32 bs1"]
    for row in report["rows"]:
        if row["backend"] in ("latent", "latent-lcm"):
            assert row["speedup_vs_stock"] == pytest.approx(stock["latency_ms"]["median"] / row["latency_ms"]["median"])
            assert row["same_steps_and_weights"] == (row["label"] in ("latent 2 steps fp32 bs1",
                                                                      "latent 2 steps bf16 bs1",
                                                                      "latent 2 steps fp32+cfg_cutoff0.5 bs1"))
        else:
            assert "speedup_vs_stock" not in row
    assert report["machine"]["stock_vs_genimg_fp32_max_pixel_diff"] == 0  # the same weights give the same images
    for floor in report["floors"]:
        assert floor["ratio"] == pytest.approx(floor["end_to_end_ms"] / floor["floor_ms"])
        assert floor["floor_ms"] == pytest.approx(floor["components_ms"]["unet"] + floor["components_ms"]["decoder"])
    targets = report["targets"]
    assert {"speedup_vs_stock", "floor_ratio", "fast_latent", "gan_bs1"} <= set(targets)
    # Guidance on every step (as stock runs it) is reported on its own when a cutoff row is the fastest.
    assert ("speedup_vs_stock_full_guidance" in targets) == ("cfg_cutoff" in targets["speedup_vs_stock"]["row"])



@pytest.mark.slow
def test_outputs_are_written_and_agree(report, tmp_path):
    paths = write_report(report, tmp_path, "cpu-bench", command="python -m genimg bench --quick")
    assert all(path.exists() and path.stat().st_size > 0 for path in paths.values())
    saved = json.loads(paths["json"].read_text())
    assert saved["command"] == "python -m genimg bench --quick" and len(saved["rows"]) == 7
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == [r["label"] for r in report["rows"]]
    assert all(r["score"] not in ("", None) for r in rows)
    table = paths["md"].read_text()
    assert "| config | ms / image |" in table and "python -m genimg bench --quick" in table
    assert all(row["label"] in table for row in report["rows"])
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("cutoff, batches", [(None, [2, 2, 2, 2]), (0.5, [2, 2, 1, 1])])
def test_the_compute_floor_runs_the_unet_passes_the_sampler_runs(cutoff, batches):
    from genimg.bench.runners import FloorRunner, GenimgRunner

    runner = GenimgRunner(BenchConfig("latent", steps=4, guidance_cutoff=cutoff), "cpu")
    runner.load()
    floor = FloorRunner(runner)
    assert [context.shape[0] for context in floor.unet_calls] == batches
    assert [sample.shape[0] for sample in floor.unet_inputs] == batches
