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
        stock, genimg_path, tiny_decoder = result["rows"]
        assert stock["label"] == "stock diffusers" and stock["speedup_vs_stock"] == 1.0
        assert genimg_path["label"].startswith("genimg.load fp32")
        # The generator's own notes: it ran genimg's loop, not the pipeline's __call__.
        assert any(note.startswith("fast path") for note in genimg_path["notes"])
        assert genimg_path["max_pixel_diff_vs_stock"] <= 1  # the same weights and noise give the same images (fp32)
        assert "tiny decoder" in tiny_decoder["label"]
        assert tiny_decoder["stage_ms"]["decode"] > 0 and genimg_path["stage_ms"]["denoise"] > 0
        assert all(row["median_ms_per_image"] > 0 and row["images_per_s"] > 0 for row in result["rows"])
    assert "| stock diffusers |" in (tmp_path / "gpu-bench.md").read_text()


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
