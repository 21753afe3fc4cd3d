"""quantize: the option is validated once with errors that say what to choose; torchao int8 changes the weights and
keeps the outputs close; the recipe follows the device; calibration inputs are real calls of the module."""
import dataclasses

import pytest
import torch

import genimg
from genimg.accel import prepare_module
from genimg.accel.quantize import quantize_torch, record_calls, torchao_config
from genimg.options import SpeedOptions, check_quantize, cuda_supports_fp8


class TinyMlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32))

    def forward(self, inputs):
        return self.layers(inputs)


def test_torchao_int8_changes_the_weights_and_keeps_the_output_close():
    module, notes = TinyMlp(), []
    inputs = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = module(inputs)
    quantized = prepare_module(module, SpeedOptions(device="cpu", quantize="int8").validated(), notes)
    weight = quantized.layers[0].weight
    assert type(weight).__name__ == "Int8Tensor" and weight.qdata.dtype == torch.int8  # torchao's int8 weights
    with torch.inference_mode():
        output = quantized(inputs)
    assert not torch.equal(output, reference)
    assert (output - reference).abs().max() < 0.05 * reference.abs().max()
    assert any("Int8DynamicActivationInt8WeightConfig" in note for note in notes)
    assert any("compile=True" in note for note in notes)  # eager int8 is slow, and the note says so


def test_a_module_without_linear_layers_is_left_alone_and_says_so():
    conv, notes = torch.nn.Conv2d(3, 4, 3), []
    assert quantize_torch(conv, SpeedOptions(device="cpu", quantize="int8"), notes, "decoder") is conv
    assert type(conv.weight) is torch.nn.Parameter
    assert any("no Linear layers" in note for note in notes)


def test_the_recipe_follows_the_device():
    cpu = SpeedOptions(device="cpu", quantize="int8")
    assert type(torchao_config(cpu)).__name__ == "Int8DynamicActivationInt8WeightConfig"
    assert type(torchao_config(dataclasses.replace(cpu, device="cuda"))).__name__ == "Int8WeightOnlyConfig"
    fp8 = dataclasses.replace(cpu, device="cuda", quantize="fp8")
    assert type(torchao_config(fp8)).__name__ == "Float8DynamicActivationFloat8WeightConfig"


def test_fp8_needs_a_card_with_fp8_units():
    assert cuda_supports_fp8((9, 0)) and cuda_supports_fp8((8, 9))
    assert not cuda_supports_fp8((8, 6)) and not cuda_supports_fp8(None)
    check_quantize("fp8", "cuda", capability=(9, 0))  # an H100: fine
    with pytest.raises(genimg.UnsupportedOption, match="8.9.*this GPU has 8.0.*int8"):
        check_quantize("fp8", "cuda", capability=(8, 0))
    with pytest.raises(genimg.UnsupportedOption, match="on a CPU use quantize='int8'"):
        SpeedOptions(device="cpu", quantize="fp8").validated()
    with pytest.raises(genimg.UnsupportedOption, match="not on MPS"):
        check_quantize("int8", "mps")


def test_unknown_quantize_is_refused_with_the_choices():
    with pytest.raises(genimg.InvalidRequest, match="None or one of int8, fp8"):
        SpeedOptions(device="cpu", quantize="int4").validated()
    with pytest.raises(genimg.InvalidRequest, match="Unknown speed option"):
        genimg.load("gan", device="cpu", quantise="int8")


def test_record_calls_keeps_every_call_and_removes_its_hook():
    module = TinyMlp()
    first, second = torch.randn(2, 64), torch.randn(3, 64)
    calls = record_calls(module, lambda: (module(first), module(inputs=second)))
    assert len(calls) == 2 and torch.equal(calls[0][0][0], first) and torch.equal(calls[1][1]["inputs"], second)
    module(first)
    assert not module._forward_pre_hooks


@pytest.mark.slow
def test_gan_calibration_calls_are_real_prompts_and_seeded_noise():
    from genimg.backends.calibration import CALIBRATION_BATCH_SIZE, calibration_prompts, pooled_calls

    prompts = calibration_prompts()
    assert len(set(prompts)) == len(prompts) == 16
    generator = genimg.load("gan", device="cpu", match_concepts=False)
    calls = pooled_calls(generator, generator.model.config.z_dim)
    (noise, pooled), _ = calls[0]
    assert noise.shape == (CALIBRATION_BATCH_SIZE, generator.model.config.z_dim) and pooled.shape[0] == noise.shape[0]
    assert torch.equal(pooled_calls(generator, generator.model.config.z_dim)[0][0][0], noise)  # seeded
    assert not torch.equal(calls[1][0][1], pooled)  # other prompts in the next batch
