"""The GPU benchmark end to end on tiny SD-1.5 / SD-Turbo-shaped models on the CPU, before anybody spends GPU time."""
import json
from pathlib import Path

import pytest
import torch

from genimg.bench.gpu import main
from genimg.bench.pipelines import ARCHITECTURES, SD15, SD_TURBO, build_components, byte_level_tokenizer, tiny


def test_full_size_configs_are_the_published_architectures():
    assert SD15.unet["block_out_channels"] == (320, 640, 1280, 1280) and SD15.unet["cross_attention_dim"] == 768
    assert SD15.text["hidden_size"] == 768 and SD15.text["num_hidden_layers"] == 12
    assert SD_TURBO.unet["attention_head_dim"] == (5, 10, 20, 20) and SD_TURBO.unet["use_linear_projection"]
    assert SD_TURBO.text["hidden_size"] == 1024 and SD_TURBO.text["num_hidden_layers"] == 23
    assert SD_TURBO.steps == 1 and SD_TURBO.guidance == 0.0
    assert SD15.steps == 4 and SD15.guidance > 1.0  # the speed target's setting, guided


def test_tokenizer_pads_to_clip_context():
    ids = byte_level_tokenizer()(["a cat", ""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids.shape == (2, 77) and int(ids.max()) < 1000


def test_same_seed_same_weights():
    first, second = build_components(tiny(SD15)), build_components(tiny(SD15))
    assert all(torch.equal(a, b) for a, b in zip(first["unet"].parameters(), second["unet"].parameters()))


@pytest.mark.slow
def test_tiny_run_times_genimg_load_generators_against_stock(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["--tiny", "--out", str(tmp_path), "--rounds", "1", "--batch-sizes", "1", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert [(r["architecture"], r["batch_size"]) for r in report["results"]] == [
        (f"{name}-tiny", batch) for name in ARCHITECTURES for batch in (1, 2)]
    for result in report["results"]:
        stock, stock_tiny, genimg_path, tiny_decoder = result["rows"]
        assert stock["label"] == "stock diffusers" and stock["speedup_vs_stock"] == 1.0
        assert stock_tiny["label"] == "stock diffusers + tiny decoder"
        assert genimg_path["label"].startswith("genimg.load fp32")
        # The generator's own notes: it ran genimg's loop, not the pipeline's __call__.
        assert any(note.startswith("fast path") for note in genimg_path["notes"])
        assert genimg_path["max_pixel_diff_vs_stock"] <= 1  # the same weights and noise give the same images (fp32)
        assert "tiny decoder" in tiny_decoder["label"]
        # Every row is compared with stock diffusers from the same noise, the tiny-decoder row with stock diffusers
        # decoding with the same AutoencoderTiny: fp32 on both sides gives the same image.
        assert tiny_decoder["max_pixel_diff_vs_stock"] <= 1
        # FLOPs per image (FlopCounterMode): the tiny decoder costs less than the KL decoder; no peak on a CPU.
        assert 0 < tiny_decoder["flops_per_image"] < genimg_path["flops_per_image"] == stock["flops_per_image"]
        assert genimg_path["peak_share"] is None and report["peak_tflops"] is None
        assert tiny_decoder["stage_ms"]["decode"] > 0 and genimg_path["stage_ms"]["denoise"] > 0
        assert all(row["median_ms_per_image"] > 0 and row["images_per_s"] > 0 for row in result["rows"])
    markdown = (tmp_path / "gpu-bench.md").read_text()
    assert "| stock diffusers |" in markdown and "## Targets" not in markdown  # no compiled rows, no targets


def test_the_benchmark_has_no_copy_of_the_fast_path():
    import genimg.bench.gpu as gpu

    source = Path(gpu.__file__).read_text()
    assert "genimg.load(" in source and "denoise" not in source and "prepare_module" not in source


def test_quantized_rows_follow_the_fastest_kl_decoder_row():
    from genimg.bench.gpu import genimg_rows

    rows = genimg_rows(compile=True, cuda=True, tiny_decoder="folder", quantize=("int8", "fp8"))
    assert [row.get("quantize") for row in rows] == [None, None, None, "int8", "fp8"]
    assert rows[3] == dict(rows[1], quantize="int8") and "tiny_decoder" not in rows[3]
    assert genimg_rows(compile=False, cuda=False, tiny_decoder=None) == [
        dict(channels_last=True, fuse_qkv=True, cuda_graphs=False)]


def test_batches_over_the_request_limit_reach_the_generator(tmp_path):
    """The throughput rows run batch 32, twice the limit of one request; the benchmark raises it per generator."""
    from genimg.bench.gpu import GenimgPath
    from genimg.bench.pipelines import save_pipeline
    from genimg.errors import InvalidRequest
    from genimg.options import MAX_BATCH_SIZE

    arch = tiny(SD_TURBO)
    folder = save_pipeline(arch, tmp_path / "turbo")
    path = GenimgPath(arch, folder, "cpu", "fp32")
    assert len(path(MAX_BATCH_SIZE + 1)) == MAX_BATCH_SIZE + 1
    with pytest.raises(InvalidRequest, match="batch_size"):
        path.generator.max_batch_size = MAX_BATCH_SIZE
        path(MAX_BATCH_SIZE + 1)


def test_peak_table_knows_the_cards_and_the_targets_say_hit_or_missed():
    from genimg.bench.gpu_report import check_targets, markdown, peak_tflops

    assert peak_tflops("NVIDIA H100 80GB HBM3") == peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops("cpu") is None

    def row(label, ms, options, stock_ratio=1.0):
        return {"label": label, "median_ms_per_image": ms, "min_ms_per_image": ms, "max_ms_per_image": ms,
                "images_per_s": 1000 / ms, "speedup_vs_stock": stock_ratio, "options": options, "load_ms": 2000.0,
                "first_call_ms": 20000.0, "pixels_within_8_of_stock": 1.0, "max_pixel_diff_vs_stock": 3.0}

    report = {"device": "NVIDIA H200", "command": "python -m genimg.bench.gpu", "peak_tflops": 989.0,
              "compile_cache": {"load": {"loaded": True, "load_s": 1.5}}, "results": [
                  {"architecture": "sd-turbo", "resolution": 512, "steps": 1, "guidance": 0.0, "batch_size": 1,
                   "dtype": "fp16", "rows": [row("stock diffusers", 100.0, {}),
                                             row("compiled", 11.0, {"compile": True}, 9.1),
                                             row("compiled tiny", 7.0, {"compile": True, "tiny_decoder": "x"}),
                                             row("fp8", 9.0, {"compile": True, "quantize": "fp8"})]}]}
    checks = {check["target"]: check for check in check_targets(report)}
    assert checks["sd-turbo batch 1, compiled KL: ms <= 12"]["verdict"] == "hit"
    assert checks["sd-turbo batch 1, compiled tiny: ms <= 6"]["verdict"] == "missed"
    first = next(check for name, check in checks.items() if name.startswith("first compiled image"))
    assert first["value"] == 23.5 and first["verdict"] == "hit"  # cache 1.5 s + load 2 s + first call 20 s
    assert len(checks) == 3  # the quantised row is held to no target; sd15 and batch 8 are not in this run
    assert "| sd-turbo batch 1, compiled tiny: ms <= 6 | compiled tiny | 7.00 | missed |" in markdown(report)
