"""The engine race's bookkeeping: labels, fp32 references, which engine wins, the targets, the report lines."""
import dataclasses

from genimg.bench.config import STOCK, BenchConfig
from genimg.bench.engines import (_fp32_score, engine_kind, engine_lines, engine_sweep, engine_targets,
                                  engine_winners, fp32_reference, pruning_sweep, race_sweep, uses_engines)


def row(config: BenchConfig, ms: float, score: float = 50.0) -> dict:
    return {"config": dataclasses.asdict(config), "label": config.label, "backend": config.backend,
            "steps": config.steps, "batch_size": config.batch_size, "latency_ms": {"median": ms}, "score": score,
            "first_call_ms": 1000.0, "pixel_diff_vs_fp32": {"mean": 1.0, "max": 9.0}}


def test_labels_name_the_engine_and_the_quantisation():
    assert BenchConfig("latent", steps=4, engine="openvino", quantize="int8").label == \
        "latent 4 steps openvino+fp32+int8 bs1"
    assert BenchConfig(STOCK, steps=4, engine="openvino", precision="bf16").label == \
        "stock diffusers 4 steps openvino+bf16 bs1"


def test_the_fp32_reference_keeps_what_changes_the_images_and_drops_the_engine():
    config = BenchConfig("latent", steps=4, engine="openvino", quantize="int8", guidance_cutoff=0.5, precision="bf16")
    assert fp32_reference(config) == BenchConfig("latent", steps=4, guidance_cutoff=0.5)
    assert fp32_reference(BenchConfig("latent-lcm", steps=1, compile=True, tiny_decoder=True, batch_size=8)) == \
        BenchConfig("latent-lcm", steps=1, tiny_decoder=True, batch_size=8)


def test_the_sweep_has_every_peer_and_every_engine():
    configs = engine_sweep()
    assert uses_engines(configs) and not uses_engines([BenchConfig("gan")])
    stock = {(c.engine, c.precision, c.quantize) for c in configs if c.backend == STOCK}
    assert stock == {("torch", "fp32", None), ("openvino", "fp32", None), ("openvino", "bf16", None),
                     ("openvino", "fp32", "int8")}
    latent = {(c.engine, c.quantize) for c in configs if c.backend == "latent"}
    assert {("openvino", "int8"), ("torch", "int8"), ("openvino", None), ("torch", None)} <= latent


def test_the_race_puts_the_int8_peer_in_both_precisions_beside_genimgs_fastest_settings():
    configs = race_sweep()
    peers = {(c.precision, c.quantize) for c in configs if c.backend == STOCK and c.engine == "openvino"}
    assert peers == {("fp32", "int8"), ("bf16", "int8")}
    assert BenchConfig(STOCK, steps=4) in configs and BenchConfig("latent", steps=4) in configs  # fp32 references
    ours = [c for c in configs if c.backend == "latent" and c.engine == "openvino"]
    assert {c.guidance_cutoff for c in ours} == {None, 0.5, 0.25} and {c.precision for c in ours} == {"fp32", "bf16"}
    assert {c.steps for c in configs} == {4}


def test_the_unet_target_is_read_against_the_peers_fastest_int8_unet():
    calls = [{"label": "stock diffusers openvino+fp32+int8", "quantize": "int8", "ms_per_call": 9.0},
             {"label": "stock diffusers openvino+bf16+int8", "quantize": "int8", "ms_per_call": 7.0},
             {"label": "genimg openvino+bf16+int8", "quantize": "int8", "ms_per_call": 8.0}]
    target = engine_targets([], calls)["unet_per_call"]
    assert target["target_ms"] == 7.0 and target["value"] == 8.0 and not target["hit"]


def test_the_pruning_sweep_pairs_every_pruned_row_with_its_unpruned_twin_and_the_peer():
    configs = pruning_sweep()
    pruned = [c for c in configs if c.pruned]
    assert pruned and all(dataclasses.replace(c, pruned=False) in configs for c in pruned)
    assert {c.backend for c in pruned} == {"latent", "gan"}
    assert BenchConfig(STOCK, steps=4, engine="openvino", quantize="int8") in configs


def test_a_pruned_row_is_judged_against_the_unpruned_model():
    rows = [row(BenchConfig("latent", steps=4), 100, score=50),
            row(BenchConfig("latent", steps=4, pruned=True), 70, score=44)]
    assert fp32_reference(BenchConfig("latent", steps=4, pruned=True)) == BenchConfig("latent", steps=4)
    assert _fp32_score(rows, rows[1]) == 50
    assert engine_kind(rows[1]) == "torch fp32 pruned"


def test_a_pruned_row_that_lost_more_than_2_points_is_not_the_fastest_config_for_the_target():
    fast = dict(steps=4, engine="openvino", quantize="int8", guidance_cutoff=0.5)
    rows = [row(BenchConfig(STOCK, steps=4, engine="openvino", quantize="int8"), 64),
            row(BenchConfig("latent", steps=4), 77, score=42),
            row(BenchConfig("latent", **fast), 47, score=43.7),
            row(BenchConfig("latent", pruned=True, **fast), 42, score=37.0)]  # 6.7 below its unpruned twin
    target = engine_targets(rows, [])["vs_fastest_peer"]
    assert target["row"] == rows[2]["label"] and target["value"] == 64 / 47


def test_the_winner_per_backend_is_the_fastest_engine_kind():
    rows = [row(BenchConfig("latent", steps=4), 100), row(BenchConfig("latent", steps=4, compile=True), 60),
            row(BenchConfig("latent", steps=4, engine="openvino"), 50),
            row(BenchConfig("latent", steps=4, engine="openvino", quantize="int8"), 40),
            row(BenchConfig("gan"), 5)]
    winners = engine_winners(rows)
    assert len(winners) == 1  # the GAN has one engine kind here: nothing to race
    assert winners[0]["winner"] == "openvino int8" and winners[0]["ms"] == 40
    assert winners[0]["by_engine"] == {"torch fp32": 100, "torch+compile fp32": 60, "openvino fp32": 50,
                                       "openvino int8": 40}
    assert engine_kind(rows[1]) == "torch+compile fp32"


def test_targets_compare_with_the_fastest_peer_and_respect_the_score():
    rows = [row(BenchConfig(STOCK, steps=4, engine="openvino", quantize="int8"), 90),
            row(BenchConfig(STOCK, steps=4, engine="openvino"), 100),
            row(BenchConfig("latent", steps=4), 120, score=45),
            row(BenchConfig("latent", steps=4, engine="openvino", quantize="int8"), 30, score=40),  # lost 5 points
            row(BenchConfig("latent", steps=4, engine="openvino"), 45, score=45),
            row(BenchConfig("latent-lcm", steps=1, tiny_decoder=True, batch_size=8, engine="openvino"), 3.5)]
    unet_calls = [{"label": "stock diffusers UNet, OpenVINO fp32 int8", "quantize": "int8", "ms_per_call": 11.0},
                  {"label": "genimg UNet, OpenVINO fp32 int8", "quantize": "int8", "ms_per_call": 10.5}]
    targets = engine_targets(rows, unet_calls)
    assert targets["vs_fastest_peer"]["row"] == "latent 4 steps openvino+fp32 bs1"  # the int8 row lost too much
    assert targets["vs_fastest_peer"]["value"] == 2.0 and targets["vs_fastest_peer"]["hit"]
    assert targets["unet_per_call"]["hit"] and targets["lcm_bs8"]["hit"]
    text = "\n".join(engine_lines({"rows": rows, "engines": {"unet_calls": unet_calls,
                                                             "winners": engine_winners(rows), "targets": targets}}))
    assert "**2.00x**" in text and "1.00 / 9" in text and "| genimg UNet, OpenVINO fp32 int8 | 10.50 |" in text
