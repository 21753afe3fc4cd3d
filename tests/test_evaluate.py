import json

import numpy as np
import pytest
import torch

from genimg.cli import main
from genimg.errors import InvalidRequest
from genimg.evaluate.prompt_match import (CONFIGS, PARAPHRASES, RetrievalIndex, check_targets, name_prompts,
                                         paraphrase_prompts, select_configs, target_ranks, to_markdown, top_k)
from genimg.train.data import find_font, load_dataset, procedural_dataset

needs_font = pytest.mark.skipif(find_font() is None, reason="Noto Color Emoji not installed "
                                "(apt-get install fonts-noto-color-emoji): the emoji dataset cannot be rendered")


@pytest.fixture(scope="module")
def emoji():
    return load_dataset("emoji")  # rendered once into the test session's temporary cache


def test_ranks_count_strictly_better_columns_and_ties_go_to_the_target():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.3, 0.3, 0.2], [0.0, 1.0, 2.0]])
    ranks = target_ranks(scores, [0, 1, 0])
    assert ranks.tolist() == [0, 0, 2]
    assert top_k(ranks, 1) == pytest.approx(2 / 3) and top_k(ranks, 3) == 1.0


def test_real_images_retrieve_themselves_by_pixels():
    world = procedural_dataset()
    ranks = RetrievalIndex(world).ranks(world.images, range(len(world)))
    assert "judge" not in ranks  # no judge given: pixels only
    assert top_k(ranks["pixels"], 1) == 1.0


def test_a_wrong_mapping_scores_low():
    world = procedural_dataset()
    wrong_targets = [(i + 13) % len(world) for i in range(len(world))]  # another shape in another colour
    ranks = RetrievalIndex(world).ranks(world.images, wrong_targets)["pixels"]
    assert top_k(ranks, 1) == 0.0 and top_k(ranks, 5) <= 0.1


def test_name_draw_is_fixed_and_a_smaller_limit_is_a_prefix():
    world = procedural_dataset()
    full, short = name_prompts(world, limit=10, seed=3), name_prompts(world, limit=4, seed=3)
    assert full == name_prompts(world, limit=10, seed=3)
    assert short.prompts == full.prompts[:4] and len(set(full.targets)) == 10
    assert all(world.names[t] == p for p, t in zip(full.prompts, full.targets))


def test_configs_are_selected_by_label_or_backend():
    assert [c.label for c in select_configs(["latent-lcm"])] == [
        "latent-lcm-1", "latent-lcm-1-tiny", "latent-lcm-2", "latent-lcm-4", "latent-lcm-4-tiny"]
    assert [c.label for c in select_configs(["gan", "latent-lcm-2"])] == ["gan", "latent-lcm-2"]
    assert select_configs(None) == list(CONFIGS)
    with pytest.raises(InvalidRequest, match="Unknown backend"):
        select_configs(["diffusion"])


def test_openvino_and_int8_configs_are_chosen_by_label_or_as_engines():
    picked = select_configs(["latent-lcm-1-tiny-openvino-int8"])
    assert [(c.backend, c.steps, c.tiny_decoder, c.engine, c.quantize) for c in picked] == [
        ("latent-lcm", 1, True, "openvino", "int8")]
    engines = select_configs(["engines"])
    # the four, and the Live tab's (fp32, and bf16 where the CPU has it)
    assert len(engines) == 6 and all(c.engine == "openvino" for c in engines)
    assert [c.precision for c in engines if c.label.startswith("latent-lcm-1-tiny-live")] == [None, "bf16"]
    assert not any(c.engine != "torch" or c.quantize for c in CONFIGS)  # the default run stays the same
    assert [c.label for c in select_configs(["pruned"])] == ["gan-pruned", "latent-pruned"]
    assert not any(c.pruned for c in CONFIGS + tuple(engines))


def test_targets_are_checked_per_metric_and_rendered():
    row = {"config": "gan", "backend": "gan", "steps": None, "latency_ms_per_image": 12.0,
           "names": {"judge_top1": 0.5, "judge_top5": 0.9, "pixels_top1": 0.1, "pixels_top5": 0.2}}
    checks = check_targets([row, {"config": "oracle"}])
    assert [(c["metric"], c["met"]) for c in checks] == [("judge_top5", True), ("pixels_top5", False)]
    broken = {"config": "vae", "backend": "vae", "steps": None, "latency_ms_per_image": None, "error": "OSError: gone"}
    report = {"dataset": {"num_emoji": 24}, "prompt_sets": {"names": 1}, "rows": [row, broken], "targets": checks,
              "settings": {"latency_batch_size": 8, "device": "cpu", "precision": "fp32"}}
    markdown = to_markdown(report)
    assert "| gan | – | 12.0 | 50.0 / 90.0 | 10.0 / 20.0 | – | – |" in markdown and "MISSED" in markdown
    assert "| vae | not evaluated: OSError: gone |" in markdown


@needs_font
def test_paraphrase_targets_exist_and_are_not_dataset_captions(emoji):
    prompt_set = paraphrase_prompts(emoji)
    assert len(prompt_set.prompts) == len(PARAPHRASES) >= 40
    captions = {caption.lower() for captions in emoji.captions for caption in captions}
    assert not [p for p in PARAPHRASES if p.lower() in captions]


@pytest.mark.slow
def test_generating_many_prompts_in_one_batch_matches_generate():
    import genimg
    from genimg.evaluate.prompt_match import generate_for_prompts

    generator = genimg.load("gan", device="cpu")
    images = generate_for_prompts(generator, ["red heart", "rocket"], None, seed=5)
    single = np.asarray(generator.generate("red heart", batch_size=1, seed=5).images[0])
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    # The same noise and prompt as generate(); a batch of two may round a few pixels differently.
    assert np.abs(images[0].astype(int) - single).max() <= 2
    assert np.abs(images[0].astype(int) - images[1]).mean() > 10


@pytest.mark.slow
@needs_font
def test_evaluate_cli_writes_the_report(emoji, tmp_path, capsys):
    assert main(["evaluate", "--backends", "gan", "--limit", "2", "--latency-runs", "1", "--out", str(tmp_path),
                 "--misses", str(tmp_path / "misses"), "--json"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert {"dataset", "prompt_sets", "settings", "rows", "targets", "per_prompt", "seconds"} <= set(report)
    assert report["prompt_sets"] == {"names": 2, "paraphrases": len(PARAPHRASES)}
    assert [row["config"] for row in report["rows"]] == ["oracle", "gan"]
    gan = report["rows"][1]
    for prompt_set in ("names", "paraphrases", "paraphrases_matched"):
        assert set(gan[prompt_set]) == {"judge_top1", "judge_top5", "pixels_top1", "pixels_top5"}
        assert all(0.0 <= value <= 1.0 for value in gan[prompt_set].values())
    assert gan["names_kept_by_matching"] == 1.0  # a name is its own nearest caption
    assert gan["latency_ms_per_image"] > 0
    assert {(c["prompt_set"], c["metric"]) for c in report["targets"]} == {
        (s, m) for s in ("names", "paraphrases", "paraphrases_matched") for m in ("judge_top5", "pixels_top5")}
    matched = report["per_prompt"]["gan"]["paraphrases_matched"]
    assert [entry["prompt"] for entry in matched] == list(PARAPHRASES)
    assert len(report["per_prompt"]["gan"]["names"]) == 2
    assert (tmp_path / "eval.md").read_text().startswith("Top-1 / top-5")
    families = report["families"]["gan"]["paraphrases"]
    assert sum(family["count"] for family in families.values()) == len(PARAPHRASES)
    assert "Top-5 by family, names" in (tmp_path / "eval.md").read_text()
    missed = [entry for entry in matched if entry["judge_rank"] >= 5 or entry["pixels_rank"] >= 5]
    assert (tmp_path / "misses" / "gan-paraphrases_matched.png").exists() == bool(missed)


def test_upscaler_targets_compare_against_bicubic_and_lanczos():
    from genimg.evaluate.upscaler import check_targets, psnr, to_markdown

    truth = {"upscaler": {"psnr_db": 31.0, "perceptual": 0.01, "judge_embedding_distance": 0.0001},
             "bicubic": {"psnr_db": 29.0, "perceptual": 0.02, "judge_embedding_distance": 0.0002},
             "lanczos": {"psnr_db": 29.6, "perceptual": 0.009, "judge_embedding_distance": 0.0002}}
    report = {"held_out_emoji": 3, "truth": truth, "sheet_emoji": ["a", "b"],
              "prompt_match": {"gan": {"score_64": 50.0, "score_upscaled": 49.5, "change": -0.5}}}
    report["targets"] = check_targets(report)
    assert report["targets"]["psnr_hit"] and not report["targets"]["perceptual_better_than_bicubic_and_lanczos"]
    assert report["targets"]["prompt_match_hit"] and report["targets"]["largest_prompt_match_drop"] == 0.5
    assert "**+2.00 dB**, hit" in to_markdown(report) and "| gan | 50.00 | 49.50 | -0.50 |" in to_markdown(report)
    same = np.full((1, 4, 4, 3), 100, np.uint8)
    assert psnr(same, same)[0] > 90 and abs(psnr(same + 1, same)[0] - 48.13) < 0.01


@needs_font
@pytest.mark.slow
def test_evaluate_upscaler_writes_report_json_and_contact_sheet(emoji, tmp_path, capsys):
    from PIL import Image

    from genimg.evaluate.upscaler import METHODS, PROMPT_CONFIGS, SHEET_EMOJI

    assert main(["evaluate", "--upscaler", "--limit", "2", "--device", "cpu", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads((tmp_path / "upscaler.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert set(report["truth"]) == set(METHODS) and report["held_out_emoji"] == len(emoji) // 20 + 1
    assert all(row["psnr_db"] > 15 and row["perceptual"] >= 0 for row in report["truth"].values())
    assert set(report["prompt_match"]) == {label for label, *_ in PROMPT_CONFIGS}
    assert Image.open(tmp_path / "upscaler.png").size == (4 * 132, 18 + SHEET_EMOJI * 132)
    assert "| bicubic |" in (tmp_path / "upscaler.md").read_text()
    assert Image.open(tmp_path / "upscaler-generations.png").size == (3 * 132, 18 + 6 * 132)
