import pytest

from genimg.errors import InvalidRequest, UnsupportedOption
from genimg.options import Request, SpeedOptions, clean_prompt, resolve_device


def test_auto_device_is_cpu_without_accelerators():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto") == expected


def test_fp16_on_cpu_is_refused_with_a_hint_to_bf16():
    with pytest.raises(UnsupportedOption, match="bf16"):
        SpeedOptions(device="cpu", precision="fp16").validated()


@pytest.mark.parametrize("precision", ["fp8", "", "FP32"])
def test_unknown_precision_is_refused(precision):
    with pytest.raises(InvalidRequest, match="precision"):
        SpeedOptions(device="cpu", precision=precision).validated()


def test_unknown_device_is_refused():
    with pytest.raises(InvalidRequest, match="device"):
        SpeedOptions(device="tpu").validated()


def test_prompt_is_cleaned_of_control_and_bidi_characters():
    assert clean_prompt("  a\u202e red\x00 heart\n ") == "a red heart"


def test_a_lone_surrogate_is_refused_with_a_message_and_a_whole_emoji_is_kept():
    with pytest.raises(InvalidRequest, match="lone surrogate \\(U\\+D83D\\)"):
        clean_prompt("a cat \ud83d")
    assert clean_prompt("\U0001F600 face") == "\U0001F600 face"


@pytest.mark.parametrize("prompt", ["", "   ", "\u200b\u202e", None, 42])
def test_empty_or_non_text_prompts_are_refused(prompt):
    with pytest.raises(InvalidRequest):
        clean_prompt(prompt)


@pytest.mark.parametrize("field, value", [("steps", 0), ("steps", 101), ("steps", 2.5), ("batch_size", 0),
                                          ("batch_size", 17), ("seed", -1), ("seed", "7"), ("guidance", -1.0),
                                          ("batch_size", True)])
def test_out_of_range_or_mistyped_values_are_refused(field, value):
    with pytest.raises(InvalidRequest, match=field):
        Request(prompt="a cat", **{field: value}).validated()


def test_valid_request_passes_and_normalises():
    request = Request(prompt=" a cat ", steps=4.0, batch_size=2, seed=7, guidance=2).validated()
    assert request == Request(prompt="a cat", steps=4, batch_size=2, seed=7, guidance=2.0)


def test_guidance_on_every_step_is_no_cutoff_and_anything_else_goes_on_to_be_checked():
    from genimg.options import guidance_cutoff_or_none

    assert [guidance_cutoff_or_none(v) for v in (None, "", 1, 1.0)] == [None] * 4
    assert guidance_cutoff_or_none(0.25) == 0.25
    assert guidance_cutoff_or_none(True) is True  # not taken for 1: validated() refuses it
    with pytest.raises(InvalidRequest, match="guidance_cutoff"):
        SpeedOptions(guidance_cutoff=guidance_cutoff_or_none(True)).validated()


@pytest.mark.parametrize("upscale", [0, 3, 4, True, "2", 1.5, None])
def test_upscale_is_1_or_2_and_nothing_else(upscale):
    with pytest.raises(InvalidRequest, match="upscale is 1 .off. or 2"):
        SpeedOptions(device="cpu", upscale=upscale).validated()
    assert SpeedOptions(device="cpu", upscale=2).validated().upscale == 2


def test_a_front_ends_upscale_checkbox_becomes_a_factor():
    from genimg.options import upscale_factor

    assert [upscale_factor(value) for value in (None, "", False, True, 1, 2)] == [1, 1, 1, 2, 1, 2]
    assert upscale_factor(3) == 3  # passed on, for validated() to refuse


@pytest.mark.parametrize("text_engine", ["onnx", "int8", ""])
def test_unknown_text_engine_is_refused_with_the_choices(text_engine):
    with pytest.raises(InvalidRequest, match="openvino-int8"):
        SpeedOptions(device="cpu", text_engine=text_engine).validated()


def test_the_text_engine_follows_the_engine_unless_given():
    assert SpeedOptions(device="cpu").text_engine_resolved == "torch"
    assert SpeedOptions(device="cpu", engine="openvino").text_engine_resolved == "openvino"
    assert SpeedOptions(device="cpu", text_engine="openvino-int8").text_engine_resolved == "openvino-int8"
