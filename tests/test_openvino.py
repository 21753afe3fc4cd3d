"""engine="openvino": the converted module gives the torch module's outputs, is cached on disk (a second load converts
nothing), follows the precision, and int8 quantises the graph."""
import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

import genimg
from genimg.accel import prepare_module
from genimg.accel.openvino import OpenVINOModule, cache_root, weights_hash
from genimg.options import SpeedOptions
from genimg.registry import GeneratorCache


def tiny_unet(dtype=torch.float32) -> UNet2DConditionModel:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), cross_attention_dim=32, norm_num_groups=32,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)
    return unet.to(dtype).eval()


class SmallNet(torch.nn.Module):
    """A convolution and a Linear: converts in a moment, for what does not need a UNet."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.linear = torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.Linear(16, 8)

    def forward(self, images, scale: float = 1.0):
        return self.linear(self.conv(images).mean((2, 3))) * scale


def unet_inputs(batch: int, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((batch, 4, 8, 8), generator=generator).to(dtype)
    context = torch.randn((batch, 5, 32), generator=generator).to(dtype)
    return latents, torch.tensor(500), context


def call(unet, latents, timestep, context):
    """As sampling.denoise calls it."""
    with torch.inference_mode():
        return unet(latents, timestep, encoder_hidden_states=context, return_dict=False)[0]


def test_openvino_matches_torch_and_a_second_load_converts_nothing(tmp_path):
    unet, notes = tiny_unet(), []
    converted = OpenVINOModule(unet, "fp32", name="UNet", notes=notes, cache_dir=tmp_path)
    inputs = unet_inputs(2)
    output = call(converted, *inputs)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, call(unet, *inputs), atol=1e-4, rtol=1e-4)
    assert converted.stats["converted"] == 1 and converted.stats["loaded_from_cache"] == 0
    assert converted.config.cross_attention_dim == 32  # attributes fall through to the torch module
    assert any("converted" in note for note in notes)

    other_batch = unet_inputs(3, seed=1)  # another batch size: the same converted model, compiled at its shapes
    torch.testing.assert_close(call(converted, *other_batch), call(unet, *other_batch), atol=1e-4, rtol=1e-4)
    assert converted.stats == {**converted.stats, "converted": 1, "loaded_from_cache": 0, "compiled": 2}
    call(converted, *unet_inputs(2, seed=2))  # a batch size seen before: nothing new
    assert converted.stats == {**converted.stats, "converted": 1, "loaded_from_cache": 0, "compiled": 2}

    restarted_notes = []
    restarted = OpenVINOModule(tiny_unet(), "fp32", name="UNet", notes=restarted_notes, cache_dir=tmp_path)
    torch.testing.assert_close(call(restarted, *inputs), output)
    assert restarted.stats["converted"] == 0 and restarted.stats["loaded_from_cache"] == 1
    assert any("read from the disk cache" in note for note in restarted_notes)


def test_the_disk_cache_key_changes_with_weights_precision_and_quantisation(tmp_path):
    unet = tiny_unet()
    changed = tiny_unet()
    with torch.no_grad():
        changed.conv_in.bias.add_(1)
    assert weights_hash(unet) == weights_hash(tiny_unet()) != weights_hash(changed)
    from torch.utils import _pytree as pytree

    flat, spec = pytree.tree_flatten((unet_inputs(1), {"return_dict": False}))
    keys = {OpenVINOModule(module, quantize=quantize, cache_dir=tmp_path).cache_key(flat, spec)
            for module, quantize in ((unet, None), (changed, None), (unet, "int8"))}
    assert len(keys) == 3


def test_bf16_follows_the_callers_dtype_and_constants_are_part_of_the_signature(tmp_path):
    images = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    converted = OpenVINOModule(SmallNet().to(torch.bfloat16), "bf16", cache_dir=tmp_path)
    with torch.inference_mode():
        output, reference = converted(images.to(torch.bfloat16)), SmallNet()(images)
        doubled = converted(images.to(torch.bfloat16), scale=2.0)  # a new constant: a new graph, not a stale one
    assert output.dtype == torch.bfloat16
    assert (output.float() - reference).abs().max() < 0.05 * reference.abs().max()
    torch.testing.assert_close(doubled.float(), 2 * output.float(), atol=0.02, rtol=0.02)
    assert converted.stats["converted"] == 2


def test_int8_quantises_the_graph_with_calibration_and_stays_close(tmp_path):
    import openvino as ov

    notes, batches = [], [torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) for seed in range(4)]
    quantized = OpenVINOModule(SmallNet(), "fp32", "int8", calibration=lambda: [((x,), {}) for x in batches],
                               calibration_id="test", notes=notes, cache_dir=tmp_path)
    images = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        output, reference = quantized(images), SmallNet()(images)
    assert any("calibrated on 4 real calls" in note for note in notes)
    saved = ov.Core().read_model(next(tmp_path.glob("*/model.xml")))
    assert any(op.get_type_name() == "FakeQuantize" for op in saved.get_ops())
    assert any(op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8 for op in saved.get_ops())
    assert not torch.equal(output, reference)
    assert (output - reference).abs().mean() < 0.1 * reference.abs().mean()


def test_int8_without_calibration_compresses_weights_only(tmp_path):
    notes = []
    quantized = OpenVINOModule(SmallNet(), "fp32", "int8", notes=notes, cache_dir=tmp_path)
    images = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        output, reference = quantized(images), SmallNet()(images)
    assert not torch.equal(output, reference)
    assert (output - reference).abs().mean() < 0.05 * reference.abs().mean()
    assert any("compressed its weights to int8" in note for note in notes)


def test_prepare_module_picks_the_engine_and_says_what_it_ignores():
    notes = []
    module = prepare_module(tiny_unet(), SpeedOptions(device="cpu", engine="openvino", compile=True).validated(), notes)
    assert isinstance(module, OpenVINOModule)
    assert any("torch.compile is not used" in note for note in notes)
    assert cache_root().parts[-2:] == (cache_root().parts[-2], "openvino")


def test_engine_openvino_off_the_cpu_is_a_note_not_an_engine():
    import dataclasses

    notes = []
    options = dataclasses.replace(SpeedOptions(device="cpu").validated(), device="cuda", engine="openvino")
    module = prepare_module(tiny_unet(), options, notes)
    assert not isinstance(module, OpenVINOModule)
    assert any("OpenVINO on the CPU only" in note for note in notes)


def test_bad_engine_is_refused_with_the_choices():
    with pytest.raises(genimg.InvalidRequest, match="torch, openvino"):
        SpeedOptions(device="cpu", engine="onnx").validated()


@pytest.mark.slow
def test_embedded_lcm_on_openvino_draws_the_torch_images_and_restarts_from_disk():
    options = SpeedOptions(device="cpu", engine="openvino", match_concepts=False)
    torch_images = genimg.load("latent-lcm", device="cpu", match_concepts=False).generate("a red apple", steps=2)
    first = GeneratorCache().get("latent-lcm", options)
    result = first.generate("a red apple", steps=2)
    difference = np.abs(np.asarray(result.images[0], dtype=np.int16) - np.asarray(torch_images.images[0], np.int16))
    assert difference.max() <= 2
    restarted = GeneratorCache().get("latent-lcm", options)  # a fresh load, as after a restart of the app
    restarted.generate("a red apple", steps=2)
    assert restarted.unet.stats["converted"] == 0 and restarted.decode_fn.stats["converted"] == 0
    assert restarted.unet.stats["loaded_from_cache"] == 1


class DynamicBatchNet(SmallNet):
    openvino_dynamic_batch = True  # as a module OpenVINO cannot compile at static shapes says


def test_one_compiled_model_per_batch_size_unless_the_module_asks_for_a_dynamic_batch(tmp_path):
    images = [torch.randn((batch, 4, 8, 8), generator=torch.Generator().manual_seed(batch)) for batch in (1, 2, 1)]
    for net, compiled in ((SmallNet(), 2), (DynamicBatchNet(), 1)):
        converted = OpenVINOModule(net, "fp32", name=type(net).__name__, cache_dir=tmp_path)
        for batch in images:
            with torch.inference_mode():
                torch.testing.assert_close(converted(batch), net(batch), atol=1e-5, rtol=1e-5)
        assert converted.stats["compiled"] == compiled and converted.stats["converted"] == 1


class SequenceNet(torch.nn.Module):
    """(B, L) token ids and mask -> (B, 8): an embedding and a masked mean, as a sentence encoder pools."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.linear = torch.nn.Embedding(50, 16), torch.nn.Linear(16, 8)

    def forward(self, ids, mask):
        weights = mask.unsqueeze(-1).float()
        return self.linear((self.embed(ids) * weights).sum(1) / weights.sum(1).clamp(min=1))


class DynamicSequenceNet(SequenceNet):
    openvino_dynamic_sequence = True  # as genimg.text.SentencePooler says


def test_a_module_that_asks_for_a_dynamic_sequence_gets_one_model_for_every_batch_and_length(tmp_path):
    generator = torch.Generator().manual_seed(0)
    shapes = ((1, 3), (1, 7), (2, 5), (1, 3))
    inputs = [(torch.randint(0, 50, shape, generator=generator), torch.ones(shape, dtype=torch.long))
              for shape in shapes]
    # Static shapes: one conversion and one compiled model per length (3, 7, 5); dynamic: one of each.
    for net, models in ((SequenceNet(), 3), (DynamicSequenceNet(), 1)):
        converted = OpenVINOModule(net, "fp32", name=type(net).__name__, cache_dir=tmp_path)
        for ids, mask in inputs:
            with torch.inference_mode():
                torch.testing.assert_close(converted(ids, mask), net(ids, mask), atol=1e-5, rtol=1e-5)
        assert converted.stats["compiled"] == converted.stats["converted"] == models


def test_the_film_generators_ask_for_a_dynamic_batch():
    from genimg.accel.openvino import needs_dynamic_batch
    from genimg.models.cvae import TextConditionalVAE
    from genimg.models.gan import TextConditionalGenerator

    assert needs_dynamic_batch(TextConditionalGenerator()) and needs_dynamic_batch(TextConditionalVAE())
    assert not needs_dynamic_batch(tiny_unet())


def test_weights_hash_takes_channels_last_bf16_weights():
    model = torch.nn.Sequential(torch.nn.Conv2d(128, 32, 1), torch.nn.Conv2d(32, 3, 3)).to(torch.bfloat16)
    plain = weights_hash(model)
    assert weights_hash(model.to(memory_format=torch.channels_last)) == plain
