"""The 2x upscaler: its model, its training pairs, its training script, genimg.upscale and the upscale= option."""
import numpy as np
import pytest
import torch
from PIL import Image

import genimg
from genimg.models.judge import Judge, perceptual_distance
from genimg.models.upscaler import PatchDiscriminator, Upscaler
from genimg.train import TrainConfig, run
from genimg.train.data import load_dataset
from genimg.train.upscaler_data import (degraded_pairs, downscale, gaussian_blur, generator_pairs,
                                        held_out_indices, to_tensor, training_indices)


def test_an_untrained_upscaler_is_a_bilinear_upsample_of_any_size():
    images = torch.rand(2, 3, 20, 24) * 2 - 1
    output = Upscaler()(images)
    assert output.shape == (2, 3, 40, 48)
    bilinear = torch.nn.functional.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(output, bilinear)
    assert PatchDiscriminator()(output).shape[:2] == (2, 1)


def test_held_out_emoji_never_reach_training():
    held_out, train = set(held_out_indices(3789)), set(training_indices(3789))
    assert held_out and not held_out & train and len(held_out | train) == 3789


def test_degraded_pairs_keep_the_glyph_as_target_and_blur_only_the_input():
    glyphs = to_tensor(load_dataset("procedural", size=128).images[:8])
    inputs, targets = degraded_pairs(glyphs, torch.Generator().manual_seed(0))
    assert inputs.shape == (8, 3, 64, 64) and targets.shape == (8, 3, 128, 128)
    assert inputs.min() >= -1 and inputs.max() <= 1
    sharp = downscale(glyphs[:1])
    blurred = gaussian_blur(sharp, torch.tensor([1.0]))
    assert torch.allclose(gaussian_blur(sharp, torch.tensor([0.0])), sharp, atol=1e-5)
    assert (blurred - sharp).abs().mean() > 0.005


def test_the_procedural_world_has_no_generator_drawings():
    drawings, emoji = generator_pairs(load_dataset("procedural"), "procedural")
    assert drawings.shape == (0, 64, 64, 3) and len(emoji) == 0


def test_perceptual_distance_is_zero_for_identical_images_and_grows_with_blur():
    judge = Judge().eval()
    glyphs = to_tensor(load_dataset("procedural", size=128).images[:4])
    blurred = gaussian_blur(glyphs, torch.full((4,), 2.0))
    with torch.no_grad():
        assert torch.allclose(perceptual_distance(judge, glyphs, glyphs), torch.zeros(4), atol=1e-6)
        assert (perceptual_distance(judge, blurred, glyphs) > 0).all()


def test_upscaler_trains_a_few_steps_and_reloads(tmp_path):
    out = tmp_path / "upscaler"
    summary = run("upscaler", TrainConfig(out_dir=str(out), dataset="procedural", steps=3, batch_size=4))
    assert summary["steps"] == 3 and summary["adversarial_from_step"] == 1  # 40% of 3 steps: the GAN phase ran
    assert set(summary["last"]) == {"l1", "perceptual", "d", "g_adv"}
    model = Upscaler.from_pretrained(out, torch_dtype=torch.float32)
    trained = model.tail.weight.abs().sum()
    assert trained > 0  # moved away from the zero-initialised (bilinear) start
    assert (out / "README.md").read_text().startswith("# genimg upscaler")


def test_the_shipped_upscaler_doubles_a_64_px_image():
    image = Image.fromarray(load_dataset("procedural").images[3])
    upscaled = genimg.upscale(image)
    assert upscaled.size == (128, 128) and upscaled.mode == "RGB"
    assert genimg.upscale(image, factor=1).size == (64, 64)
    # close to the 64 px picture it was given, at twice the size
    assert np.abs(np.asarray(upscaled.resize((64, 64), Image.BOX), np.float32)
                  - np.asarray(image, np.float32)).mean() < 8


@pytest.mark.parametrize("factor", [3, 0, True, "2", 2.5])
def test_upscale_refuses_factors_other_than_1_and_2(factor):
    with pytest.raises(genimg.InvalidRequest, match="factor must be 1"):
        genimg.upscale(Image.new("RGB", (64, 64)), factor=factor)


def test_upscale_refuses_huge_images_and_unknown_options():
    with pytest.raises(genimg.InvalidRequest, match="at most 512"):
        genimg.upscale(Image.new("RGB", (600, 64)))
    with pytest.raises(genimg.InvalidRequest, match="Unknown option"):
        genimg.upscale(Image.new("RGB", (64, 64)), tiny_decoder=True)


@pytest.mark.slow
def test_upscale_2_ends_a_generation_with_its_own_stage():
    generator = genimg.load("gan", device="cpu", upscale=2)
    result = generator.generate("a slice of pizza", batch_size=2, seed=1)
    assert [image.size for image in result.images] == [(128, 128)] * 2
    assert result.timings["upscale"] > 0 and result.info["upscale"] == 2
    plain = genimg.load("gan", device="cpu").generate("a slice of pizza", batch_size=2, seed=1)
    assert plain.images[0].size == (64, 64) and "upscale" not in plain.timings
    # the upscaled image is the same drawing, twice as large
    difference = np.abs(np.asarray(result.images[0].resize((64, 64), Image.BOX), np.float32)
                        - np.asarray(plain.images[0], np.float32)).mean()
    assert difference < 10


def test_a_model_pipeline_refuses_upscale():
    with pytest.raises(genimg.UnsupportedOption, match="draws at its own resolution"):
        genimg.load("latent", device="cpu", model="some/pipeline", upscale=2)


def test_the_cost_report_names_machine_load_command_and_targets():
    from tools.upscale_cost import markdown

    rows = {"torch fp32": {"ms_per_image": 10.0, "ms_per_image_upscaled": 12.0, "ratio": 1.2,
                           "upscale_stage_ms_per_image": 1.5},
            "openvino bf16": {"ms_per_image": 3.0, "ms_per_image_upscaled": 4.5, "ratio": 1.5,
                              "upscale_stage_ms_per_image": 1.2}}
    context = {"date": "2026-12-04 16:00 UTC", "cpu": "AMD EPYC (2 cores)", "threads": 2, "load_before": "1 1 1",
               "load_after": "2 2 2", "command": "python -m tools.upscale_cost"}
    text = markdown(rows, "latent-lcm", 1, 8, 15, context)
    assert "AMD EPYC" in text and "before 1 1 1, after 2 2 2" in text and "`python -m tools.upscale_cost`" in text
    assert "| torch fp32 | 10.00 | 12.00 | 1.20x | 1.50 |" in text
    assert "1.35x the time without it: hit by torch fp32;" in text and "hit by torch fp32, openvino bf16." in text
