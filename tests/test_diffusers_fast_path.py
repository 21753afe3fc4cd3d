"""genimg's own loop on model= pipelines: given the same starting noise it draws what stock diffusers draws, for each
SD family it runs (tiny random pipelines built from configs, saved to temporary folders: SD 1.x with DPM-Solver++ and
with PNDM, SD 2.x v-prediction, SD-Turbo, LCM, SDXL and SDXL-Turbo); other pipelines fall back to their own __call__
and say so."""
import dataclasses

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

import genimg
from genimg.backends.base import seeded_noise
from genimg.bench.pipelines import PROMPT, SD_SCHEDULE, SD15, SD_TURBO, byte_level_tokenizer, lcm, save_pipeline, tiny

# Same modules, same noise, fp32 on the CPU: the only difference left is how each side rounds [-1, 1] to 0-255.
MAX_PIXEL_DIFFERENCE = 1

FAMILIES = {
    "sd15-dpm++-cfg": tiny(SD15),
    "sd15-pndm": dataclasses.replace(tiny(SD15), scheduler="PNDMScheduler",  # SD 1.5's own scheduler: no generator
                                     scheduler_config=dict(SD_SCHEDULE, skip_prk_steps=True), steps=3),
    "sd2-v-prediction-ddim": dataclasses.replace(tiny(SD_TURBO), scheduler="DDIMScheduler", steps=3, guidance=7.5,
                                                 scheduler_config=dict(SD_SCHEDULE, prediction_type="v_prediction")),
    "sd-turbo": tiny(SD_TURBO),
    "lcm": lcm(tiny(SD15)),  # 2 steps: LCM draws fresh noise between steps, from the same seed on both sides
}
# SDXL: two text encoders, a pooled embedding and the image size as added conditioning; guided, and Turbo-style.
XL_FAMILIES = {"sdxl": dict(steps=3, guidance=5.0, turbo=False), "sdxl-turbo": dict(steps=1, guidance=0.0, turbo=True)}


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory):
    folders = {name: save_pipeline(arch, tmp_path_factory.mktemp(name)) for name, arch in FAMILIES.items()}
    folders.update({name: sdxl_folder(tmp_path_factory.mktemp(name), turbo=family["turbo"])
                    for name, family in XL_FAMILIES.items()})
    return folders


def stock_images(folder, steps: int, noise, seed: int, guidance=None) -> list:
    pipeline = DiffusionPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    extra = {} if guidance is None else {"guidance_scale": guidance}
    return pipeline(PROMPT, num_inference_steps=steps, num_images_per_prompt=len(noise), latents=noise,
                    generator=torch.Generator().manual_seed(seed), **extra).images


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=int) for image in images])


@pytest.mark.parametrize("family", [*FAMILIES, *XL_FAMILIES])
def test_the_fast_path_draws_what_stock_diffusers_draws(family, family_folders, monkeypatch):
    folder = family_folders[family]
    steps, guidance = ((FAMILIES[family].steps, FAMILIES[family].guidance) if family in FAMILIES else
                       (XL_FAMILIES[family]["steps"], XL_FAMILIES[family]["guidance"]))
    guidance = None if family.startswith(("sd15", "sdxl-")) and guidance > 1 else guidance  # None: the default
    generator = genimg.load("latent", device="cpu", model=str(folder))
    noise = seeded_noise((2, *generator.latent_shape), 3, "cpu", torch.float32)
    theirs = pixels(stock_images(folder, steps, noise, seed=3, guidance=guidance))
    # The fast path never calls the pipeline's __call__.
    monkeypatch.setattr(type(generator.pipeline), "__call__", lambda *a, **k: pytest.fail("__call__ was used"))
    result = generator.generate(PROMPT, steps=steps, batch_size=2, seed=3, guidance=guidance)
    ours = pixels(result.images)
    assert generator.fast_path and any(note.startswith("fast path") for note in result.info["notes"])
    assert np.abs(ours - theirs).max() <= MAX_PIXEL_DIFFERENCE
    assert ours.std() > 5  # not a blank image agreeing with a blank image
    other_seed = pixels(generator.generate(PROMPT, steps=steps, batch_size=2, seed=4, guidance=guidance).images)
    assert np.abs(other_seed - ours).mean() > 1  # the noise matters, so agreeing means something
    assert result.info["guidance"] == (generator.default_guidance if guidance is None else guidance)
    assert all(result.timings[stage] > 0 for stage in ("text_encode", "denoise", "decode", "to_pil"))


@pytest.mark.parametrize("family", ["sd15-dpm++-cfg", "sdxl"])
def test_a_negative_prompt_draws_what_stock_diffusers_draws_with_it(family, family_folders):
    folder = family_folders[family]
    generator = genimg.load("latent", device="cpu", model=str(folder))
    noise = seeded_noise((1, *generator.latent_shape), 5, "cpu", torch.float32)
    stock = DiffusionPipeline.from_pretrained(folder)
    stock.set_progress_bar_config(disable=True)
    theirs = pixels(stock(PROMPT, num_inference_steps=2, latents=noise, negative_prompt="blurry",
                          generator=torch.Generator().manual_seed(5)).images)
    result = generator.generate(PROMPT, steps=2, seed=5, negative_prompt="blurry")
    assert np.abs(pixels(result.images) - theirs).max() <= MAX_PIXEL_DIFFERENCE
    assert result.info["negative_prompt"]["used"] is True
    without = pixels(generator.generate(PROMPT, steps=2, seed=5).images)
    assert np.abs(without - theirs).mean() > 0.1  # the negative prompt changed the image


def test_prompt_embeddings_are_cached_and_batches_keep_each_requests_image(family_folders):
    generator = genimg.load("latent", device="cpu", model=str(family_folders["lcm"]))
    calls = []
    generator.pipeline.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    alone = [generator.generate(prompt, seed=seed).images[0] for prompt, seed in (("a cat", 1), ("a dog", 2))]
    assert len(calls) == 2
    batched = generator.generate_batch(["a cat", "a dog"], [1, 2])
    assert len(calls) == 2  # both prompts came from the cache
    assert np.abs(pixels([b.images[0] for b in batched]) - pixels(alone)).max() <= MAX_PIXEL_DIFFERENCE
    assert batched[0].info["batched_with"] == 2 and batched[1].info["seed"] == 2


def test_an_lcm_unet_ignores_the_guidance_cutoff_and_says_so(family_folders):
    generator = genimg.load("latent", device="cpu", model=str(family_folders["lcm"]), guidance_cutoff=0.5)
    assert any("guidance cutoff" in note and "ignored" in note for note in generator.notes)


def test_a_guidance_cutoff_skips_the_unconditional_pass(family_folders):
    folder = str(family_folders["sd15-dpm++-cfg"])
    full, cut = (genimg.load("latent", device="cpu", model=folder, guidance_cutoff=cutoff) for cutoff in (None, 0.5))
    batches = []
    cut.pipeline.unet.register_forward_pre_hook(lambda module, args: batches.append(len(args[0])))
    different = pixels(cut.generate(PROMPT, steps=2).images) - pixels(full.generate(PROMPT, steps=2).images)
    assert batches == [2, 1] and np.abs(different).max() > 0


def sdxl_folder(folder, turbo: bool = False):
    """A tiny SDXL pipeline (two text encoders, added text and time conditioning); ``turbo``: SDXL-Turbo's
    trailing Euler timesteps and no zeroed unconditional embedding."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    text = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                          vocab_size=1000, projection_dim=32)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=80, cross_attention_dim=64)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, sample_size=16)
    StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(text), unet=unet,
                              text_encoder_2=CLIPTextModelWithProjection(text), tokenizer=byte_level_tokenizer(),
                              tokenizer_2=byte_level_tokenizer(), force_zeros_for_empty_prompt=not turbo,
                              scheduler=EulerDiscreteScheduler(**SD_SCHEDULE, **(
                                  {"timestep_spacing": "trailing"} if turbo else {}))).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_other_pipelines_fall_back_to_their_own_call_and_say_so(tmp_path):
    from diffusers import StableDiffusionPAGPipeline

    from genimg.bench.pipelines import build_components

    parts = build_components(tiny(SD15))  # perturbed-attention guidance: a pipeline genimg's loop does not run
    StableDiffusionPAGPipeline(**{k: parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")},
                               safety_checker=None, feature_extractor=None, requires_safety_checker=False
                               ).save_pretrained(tmp_path / "pag")
    generator = genimg.load("latent", device="cpu", model=str(tmp_path / "pag"), guidance_cutoff=0.5)
    result = generator.generate("a cat", steps=2, batch_size=2, seed=1)
    assert not generator.fast_path
    assert any(note.startswith("fallback: StableDiffusionPAGPipeline runs through its own __call__")
               for note in result.info["notes"])
    assert any(note.startswith("guidance cutoff") and "ignored" in note for note in result.info["notes"])
    assert len(result.images) == 2 and result.timings["text_encode"] > 0 and result.timings["decode"] > 0
    again = generator.generate_batch(["a cat", "a dog"], [1, 2], steps=2)
    assert np.array_equal(np.asarray(again[0].images[0]), np.asarray(result.images[0]))
    steered = generator.generate("a cat", steps=2, seed=1, negative_prompt="blurry")
    assert steered.info["negative_prompt"]["note"] == "negative prompt: handed to the pipeline's __call__."


def test_the_loop_refuses_pipelines_it_does_not_know():
    from genimg.backends.diffusers_pipeline import loop_refusal

    class NotAPipeline:
        pass

    assert "not one of the pipelines" in loop_refusal(NotAPipeline())


@pytest.mark.parametrize("family", ["sd15-dpm++-cfg", "sd-turbo"])
def test_image_to_image_starts_from_the_encoded_image_and_runs_only_the_asked_steps(family, family_folders):
    from PIL import Image

    generator = genimg.load("latent", device="cpu", model=str(family_folders[family]))
    height, width = generator.image_size
    red, blue = Image.new("RGB", (width, height), "red"), Image.new("RGB", (width, height), "blue")
    calls = []
    handle = generator.pipeline.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = generator.img2img(red, "a cat", strength=0.5, steps=1, seed=4)
    finally:
        handle.remove()
    assert len(calls) == 1  # one step of a 2-step schedule (a guided step is one UNet call on a batch of two)
    assert result.images[0].size == (width, height) and result.timings["image_encode"] > 0
    assert (result.info["strength"], result.info["schedule_steps"]) == (0.5, 2)
    again = generator.img2img(red, "a cat", strength=0.5, steps=1, seed=4)
    other = generator.img2img(blue, "a cat", strength=0.5, steps=1, seed=4)
    assert np.array_equal(pixels(again.images), pixels(result.images))  # same image, prompt and seed: same pixels
    assert not np.array_equal(pixels(other.images), pixels(result.images))  # the starting image is used


def test_a_fallback_pipeline_refuses_image_to_image_with_the_reason(tmp_path):
    from diffusers import StableDiffusionPAGPipeline
    from PIL import Image

    from genimg.bench.pipelines import build_components

    parts = build_components(tiny(SD15))
    StableDiffusionPAGPipeline(**{k: parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")},
                               safety_checker=None, feature_extractor=None, requires_safety_checker=False
                               ).save_pretrained(tmp_path / "pag")
    generator = genimg.load("latent", device="cpu", model=str(tmp_path / "pag"))
    with pytest.raises(genimg.UnsupportedOption, match="StableDiffusionPAGPipeline runs through its own __call__"):
        generator.img2img(Image.new("RGB", (32, 32), "red"), "a cat")
