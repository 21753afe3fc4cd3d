"""Channel pruning gives models their own config describes, keeps the strongest channels, and refuses widths it
cannot build; the pruned option loads the shipped variants and is refused where none exists."""
import pytest
import torch
from diffusers import UNet2DConditionModel

import genimg
from genimg.accel.prune import parameter_count, prune_generator, prune_unet
from genimg.errors import UnsupportedOption
from genimg.models.gan import TextConditionalGenerator


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 96, 128),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=24,
        attention_head_dim=8, norm_num_groups=32).eval()


def test_a_pruned_unet_is_the_narrower_config_and_survives_a_save_and_load(tmp_path):
    unet = tiny_unet()
    pruned = prune_unet(unet, (32, 64, 96))
    assert tuple(pruned.config.block_out_channels) == (32, 64, 96)
    assert parameter_count(pruned) < 0.7 * parameter_count(unet)
    assert tuple(unet.config.block_out_channels) == (32, 96, 128)  # the input model is left whole
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 24)
    with torch.no_grad():
        out = pruned(sample, torch.tensor([10, 500]), context).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()
    pruned.save_pretrained(tmp_path / "unet")
    reloaded = UNet2DConditionModel.from_pretrained(tmp_path / "unet").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(sample, torch.tensor([10, 500]), context).sample, out)


def test_pruning_nothing_changes_nothing():
    unet = tiny_unet()
    same = prune_unet(unet, (32, 96, 128))
    sample, context = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 24)
    with torch.no_grad():
        assert torch.allclose(same(sample, torch.tensor([3]), context).sample,
                              unet(sample, torch.tensor([3]), context).sample)


@pytest.mark.parametrize("widths", [(32, 64), (32, 80, 96), (32, 96, 160), (32, 32, 96)])
def test_widths_that_are_not_a_narrowing_in_whole_groups_are_refused(widths):
    with pytest.raises(ValueError, match="block_out_channels"):
        prune_unet(tiny_unet(), widths)


def test_a_pruned_generator_keeps_its_strongest_channels():
    torch.manual_seed(0)
    generator = TextConditionalGenerator(z_dim=8, text_dim=16, channels=(16, 8, 8, 8, 8)).eval()
    with torch.no_grad():
        generator.decoder.seed.weight.view(16, 16, -1)[5] *= 100  # seed channel 5 is by far the strongest
    pruned = prune_generator(generator, (4, 6, 6, 6, 4))
    assert tuple(pruned.config.channels) == (4, 6, 6, 6, 4)
    assert parameter_count(pruned) < parameter_count(generator)
    kept_rows = pruned.decoder.seed.weight.view(4, 16, -1)
    assert any(torch.equal(rows, generator.decoder.seed.weight.view(16, 16, -1)[5]) for rows in kept_rows)
    images = pruned(torch.randn(3, 8), torch.randn(3, 16))
    assert images.shape == (3, 3, 64, 64) and images.abs().max() <= 1


def test_a_generator_cannot_be_widened():
    with pytest.raises(ValueError, match="narrow"):
        prune_generator(TextConditionalGenerator(z_dim=8, text_dim=16, channels=(16, 8, 8, 8, 8)),
                        (32, 8, 8, 8, 8))


@pytest.mark.parametrize("backend, model", [("vae", None), ("latent-lcm", None), ("latent", "some/pipeline")])
def test_pruned_is_refused_where_no_pruned_weights_ship(backend, model):
    with pytest.raises(UnsupportedOption, match="pruned"):
        genimg.load(backend, device="cpu", model=model, pruned=True)


@pytest.mark.parametrize("backend, module, unpruned", [("gan", "model", 2_686_819), ("latent", "unet", 9_134_308)])
def test_pruned_variants_in_the_models_folder_load_run_and_are_smaller(pruned_models, backend, module, unpruned):
    generator = genimg.load(backend, device="cpu", pruned=True)
    result = generator.generate("a red apple", steps=2 if backend == "latent" else None, seed=1)
    assert result.images[0].size == (64, 64)
    assert any(note.startswith("pruned:") for note in result.info["notes"])
    assert parameter_count(getattr(generator, module)) < 0.75 * unpruned


def test_a_missing_pruned_folder_says_which_command_makes_it(tmp_path):
    from genimg.assets import optional_model
    from genimg.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="python -m genimg train prune-gan"):
        optional_model("gan-pruned", "python -m genimg train prune-gan", folder=tmp_path)
    (tmp_path / "gan-pruned").mkdir()
    assert optional_model("gan-pruned", "x", folder=tmp_path) == tmp_path / "gan-pruned"
