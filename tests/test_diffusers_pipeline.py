"""Loading diffusers pipelines: the embedded folder with stock diffusers, and any folder through genimg."""
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import BertConfig, BertModel

import genimg
from genimg.assets import ASSETS
from genimg.text import load_text_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny_pipeline_folder(tmp_path_factory):
    """A random, tiny SD-style pipeline (BERT text encoder, 32x32 images) saved as a diffusers folder."""
    torch.manual_seed(0)
    text_encoder = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=64), add_pooling_layer=False)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), cross_attention_dim=32, norm_num_groups=32,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=load_tokenizer(), unet=unet,
                                       scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    folder = tmp_path_factory.mktemp("tiny-pipeline")
    pipeline.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_any_pipeline_folder_loads_and_reports_stage_timings(tiny_pipeline_folder):
    generator = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder))
    result = generator.generate("a cat", steps=2, batch_size=2, seed=1)
    assert len(result.images) == 2 and result.images[0].size == (32, 32)
    assert result.timings["text_encode"] > 0 and result.timings["denoise"] > 0 and result.timings["decode"] > 0
    again = generator.generate("a cat", steps=2, batch_size=2, seed=1)
    assert np.array_equal(np.asarray(result.images[1]), np.asarray(again.images[1]))
    assert "drawn_as" not in result.info  # concept matching is for the embedded emoji models only
    matching = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder), match_concepts=True)
    assert any("concept matching" in note for note in matching.generate("a cat", steps=1).info["notes"])


@pytest.mark.slow
def test_embedded_folder_is_a_stock_stable_diffusion_pipeline():
    pipeline = StableDiffusionPipeline.from_pretrained(ASSETS / "latent", text_encoder=load_text_model(),
                                                       tokenizer=load_tokenizer(), safety_checker=None)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline("red heart", num_inference_steps=2, output_type="np",
                      generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 64, 64, 3)
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05


def test_a_model_that_is_neither_folder_nor_hub_id_is_refused(tmp_path):
    with pytest.raises(genimg.ModelLoadError, match="neither a local folder"):
        genimg.load("latent", device="cpu", model="no such model")


def test_hub_ids_fail_with_a_clear_message_when_offline():
    with pytest.raises(genimg.ModelLoadError, match="network"):
        genimg.load("latent", device="cpu", model="genimg-test/does-not-exist")


@pytest.mark.slow
def test_a_guidance_cutoff_on_a_pipeline_matches_the_embedded_sampler():
    """The embedded folder loaded as a model= pipeline (genimg's loop on the folder's modules, the pipeline's own
    encode_prompt) gives the embedded generator's cutoff images, pixel for pixel."""
    from genimg.backends.diffusers_pipeline import DiffusersGenerator
    from genimg.options import SpeedOptions

    def pipeline(**options):
        return DiffusersGenerator(SpeedOptions(device="cpu", **options), str(ASSETS / "latent"),
                                  text_encoder=load_text_model(), tokenizer=load_tokenizer())

    embedded = genimg.load("latent", device="cpu", match_concepts=False, guidance_cutoff=0.5)
    ours = np.asarray(embedded.generate("a red apple", steps=4, seed=1).images[0], dtype=int)
    theirs = pipeline(guidance_cutoff=0.5).generate("a red apple", steps=4, seed=1, guidance=5.0)
    full = pipeline().generate("a red apple", steps=4, seed=1, guidance=5.0)
    assert np.abs(np.asarray(theirs.images[0], dtype=int) - ours).max() == 0
    assert np.abs(np.asarray(full.images[0], dtype=int) - ours).max() > 0


@pytest.mark.slow
def test_a_pipeline_decodes_with_the_autoencoder_tiny_it_is_given(tiny_pipeline_folder, tmp_path):
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(16, 16), decoder_block_out_channels=(16, 16),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4).save_pretrained(tmp_path)
    generator = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder), tiny_decoder=str(tmp_path))
    assert type(generator.pipeline.vae).__name__ == "AutoencoderTiny"
    result = generator.generate("a cat", steps=1, batch_size=2)
    assert [image.size for image in result.images] == [(32, 32)] * 2
    assert any(str(tmp_path) in note for note in result.info["notes"])
    unnamed = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder), tiny_decoder=True)
    assert type(unnamed.pipeline.vae).__name__ == "AutoencoderKL"
    assert any("tiny_decoder='madebyollin/taesd'" in note for note in unnamed.notes)
    with pytest.raises(genimg.ModelLoadError, match="neither a local folder"):
        genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder), tiny_decoder="no such decoder")
    with pytest.raises(genimg.InvalidRequest, match="tiny_decoder"):
        genimg.load("latent", device="cpu", tiny_decoder="  ")


def test_best_of_is_refused_for_a_pipeline_with_its_reason(tiny_pipeline_folder):
    generator = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder))
    with pytest.raises(genimg.UnsupportedOption, match="best_of"):
        generator.generate("a cat", steps=1, best_of=2)
