"""Each speed option changes what it should, says so where it cannot apply, and keeps same seed -> same images."""
import numpy as np
import pytest
import torch

import genimg
from genimg.accel import CudaGraphed, Frozen, add_note, prepare_module
from genimg.errors import InvalidRequest
from genimg.options import SpeedOptions

CPU_ONLY = not torch.cuda.is_available()


class TinyConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, images):
        return self.conv(images)


def test_notes_are_added_once():
    notes = []
    add_note(notes, "x")
    add_note(notes, "x")
    assert notes == ["x"]


def test_channels_last_changes_the_weights_memory_format():
    module = prepare_module(TinyConvNet(), SpeedOptions(device="cpu", channels_last=True), [])
    assert module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not TinyConvNet().conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_wraps_the_module_and_says_warm_up_is_not_latency():
    notes = []
    module = TinyConvNet()
    compiled = prepare_module(module, SpeedOptions(device="cpu", compile=True), notes)
    assert isinstance(compiled, Frozen) and isinstance(compiled.compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.compiled._orig_mod is module and compiled.conv is module.conv
    assert any("torch.compile" in note and "never in latency" in note for note in notes)


def test_compiled_on_cpu_calls_its_kernels_from_cpp_and_computes_the_same():
    module = TinyConvNet().eval()
    compiled = prepare_module(module, SpeedOptions(device="cpu", compile=True), [])
    assert compiled.inductor_settings == {"freezing": True, "cpp_wrapper": True}
    images = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(compiled(images), module(images), atol=1e-5)


@pytest.mark.skipif(not CPU_ONLY, reason="checks the CPU fallback")
def test_cuda_graphs_are_a_noted_no_op_on_cpu():
    notes, module = [], TinyConvNet()
    assert prepare_module(module, SpeedOptions(device="cpu", cuda_graphs=True), notes) is module
    assert notes == ["CUDA graphs need a CUDA GPU; ignored on cpu."]


@pytest.mark.skipif(CPU_ONLY, reason="needs a CUDA GPU")
def test_cuda_graphs_replay_the_same_result():
    module = TinyConvNet().cuda().eval()
    graphed = CudaGraphed(module)
    images = torch.randn(2, 3, 8, 8, device="cuda")
    with torch.inference_mode():
        expected = module(images)
        first, second = graphed(images), graphed(images * 1)
    assert torch.allclose(first, expected, atol=1e-5) and torch.allclose(second, expected, atol=1e-5)


def test_fused_qkv_on_a_module_without_attention_is_a_noted_no_op():
    notes = []
    prepare_module(TinyConvNet(), SpeedOptions(device="cpu", fuse_qkv=True), notes, name="toy")
    assert notes == ["fused QKV: the toy has no attention projections to fuse; ignored."]


@pytest.mark.slow
def test_bf16_puts_every_model_in_bf16():
    generator = genimg.load("latent-lcm", device="cpu", precision="bf16", tiny_decoder=True)
    assert next(generator.unet.parameters()).dtype == torch.bfloat16
    assert next(generator.decoder.parameters()).dtype == torch.bfloat16
    assert next(generator.text.model.parameters()).dtype == torch.bfloat16
    assert generator.generate("a sun", steps=1).images[0].size == (64, 64)


@pytest.mark.slow
def test_tiny_decoder_is_used_and_noted():
    from diffusers import AutoencoderKL, AutoencoderTiny

    tiny = genimg.load("latent-lcm", device="cpu", tiny_decoder=True)
    assert isinstance(tiny.decoder, AutoencoderTiny) and tiny.latent_scale == 1.0
    assert any("tiny decoder" in note for note in tiny.generate("a sun", steps=1).info["notes"])
    assert isinstance(genimg.load("latent-lcm", device="cpu").decoder, AutoencoderKL)


@pytest.mark.slow
def test_fused_qkv_fuses_the_unet_and_vae_attention():
    generator = genimg.load("latent", device="cpu", fuse_qkv=True)
    fused = [m for m in generator.unet.modules() if getattr(m, "fused_projections", False)]
    assert fused and all(hasattr(m, "to_qkv") or hasattr(m, "to_kv") for m in fused)
    assert any(getattr(m, "fused_projections", False) for m in generator.decoder.modules())
    assert generator.generate("a sun", steps=2).images


@pytest.mark.slow
def test_options_that_do_not_apply_to_the_gan_are_noted():
    generator = genimg.load("gan", device="cpu", tiny_decoder=True, scheduler="euler", fuse_qkv=True)
    notes = " ".join(generator.generate("a sun").info["notes"])
    assert "tiny decoder" in notes and "scheduler" in notes and "fused QKV" in notes


@pytest.mark.slow
def test_scheduler_option_picks_the_sampler():
    from diffusers import EulerDiscreteScheduler

    assert isinstance(genimg.load("latent", device="cpu", scheduler="euler").scheduler, EulerDiscreteScheduler)


@pytest.mark.slow
@pytest.mark.parametrize("backend, options", [("latent", {}), ("latent", {"precision": "bf16", "fuse_qkv": True}),
                                              ("latent-lcm", {"precision": "bf16", "tiny_decoder": True,
                                                              "channels_last": True})])
def test_same_seed_same_images_across_repeated_calls(backend, options):
    """The generator reuses one scheduler; its state must not leak from one generation into the next."""
    generator = genimg.load(backend, device="cpu", **options)
    first = generator.generate("a rocket", steps=3, batch_size=2, seed=5).images
    generator.generate("a banana", steps=2, seed=9)  # a different run in between
    again = generator.generate("a rocket", steps=3, batch_size=2, seed=5).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again))


@pytest.mark.slow
def test_prompt_cache_serves_repeats_and_can_be_cleared():
    text = genimg.load("gan", device="cpu").text
    text.clear_cache()
    first = text.encode(["a red apple"])
    assert "a red apple" in text._cache and torch.equal(text.encode(["a red apple"]).tokens, first.tokens)
    text.clear_cache()
    assert not text._cache


@pytest.mark.slow
def test_options_reach_the_modules_of_a_diffusers_pipeline():
    from genimg.assets import ASSETS
    from genimg.backends.diffusers_pipeline import DiffusersGenerator
    from genimg.text import load_text_model, load_tokenizer

    options = SpeedOptions(device="cpu", channels_last=True, fuse_qkv=True, tiny_decoder=True)
    generator = DiffusersGenerator(options, str(ASSETS / "latent"), text_encoder=load_text_model(),
                                   tokenizer=load_tokenizer())
    unet, vae = generator.pipeline.unet, generator.pipeline.vae
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert any(getattr(m, "fused_projections", False) for m in unet.modules())
    assert any(getattr(m, "fused_projections", False) for m in vae.modules())
    result = generator.generate("a red apple", steps=2)
    assert result.images and any("tiny decoder" in note for note in result.info["notes"])


def test_every_wrapper_answers_for_the_module_inside_it():
    from genimg.accel.wrapper import ModuleWrapper

    inner = torch.nn.Linear(2, 3)
    inner.config = {"in_channels": 2}  # what diffusers reads through a wrapped UNet
    for wrapper in (CudaGraphed(inner), Frozen(inner)):
        assert wrapper.config == {"in_channels": 2} and wrapper.out_features == 3
    with pytest.raises(AttributeError):
        ModuleWrapper().anything  # nothing wrapped yet: a plain AttributeError, no recursion


def test_compile_mode_is_max_autotune_on_cuda_and_unchanged_on_the_cpu():
    from genimg.accel.inductor import compile_mode

    # Not validated: no CUDA GPU is needed to ask which mode a CUDA generator would compile with.
    assert compile_mode(SpeedOptions(device="cuda", compile=True, cuda_graphs=True)) == "max-autotune"
    assert compile_mode(SpeedOptions(device="cuda", compile=True)) == "max-autotune"  # CUDA graphs included
    assert compile_mode(SpeedOptions(device="cuda", compile=True, max_autotune=False)) is None
    assert compile_mode(SpeedOptions(device="cuda", compile=True, cuda_graphs=True,
                                     max_autotune=False)) == "reduce-overhead"
    assert compile_mode(SpeedOptions(device="cpu", compile=True, cuda_graphs=True)) is None
    with pytest.raises(InvalidRequest, match="max_autotune"):
        SpeedOptions(device="cpu", max_autotune="yes").validated()


def test_compile_cache_files_round_trip_in_chunks(tmp_path, monkeypatch):
    import torch

    from genimg.accel import compile_cache

    class Info:
        artifacts = {"inductor": ["a", "b"], "autotune": ["c"]}

    payload = np.random.default_rng(0).bytes(20_000)  # random: zlib cannot shrink it, so it takes 21 chunks
    loaded = []
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (payload, Info()))
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: loaded.append(data) or Info())
    (tmp_path / "step.99.bin").write_bytes(b"stale")  # an earlier save's chunk is replaced, not mixed in
    saved = compile_cache.save_compile_cache(tmp_path, "step", chunk_bytes=1000)
    chunks = compile_cache.chunk_paths(tmp_path, "step")
    assert saved["saved"] and saved["chunks"] == len(chunks) > 1 and saved["artifacts"] == {"inductor": 2,
                                                                                             "autotune": 1}
    assert all(path.stat().st_size <= 1000 for path in chunks) and not (tmp_path / "step.99.bin").exists()
    result = compile_cache.load_compile_cache(tmp_path, "step")
    assert loaded == [payload] and result["loaded"] and result["artifacts"]["inductor"] == 2
    cold = compile_cache.load_compile_cache(tmp_path / "missing", "step")
    assert cold["loaded"] is False and "cold start" in cold["reason"]
    compile_cache.save_compile_cache(tmp_path, "another")
    everything = compile_cache.load_compile_caches(tmp_path / "missing", tmp_path)  # every step's cache there
    assert everything["groups"] == [f"{tmp_path}/another", f"{tmp_path}/step"]
    assert everything["artifacts"] == {"inductor": 4, "autotune": 2}
    assert compile_cache.load_compile_caches(tmp_path / "missing")["loaded"] is False
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)
    assert compile_cache.save_compile_cache(tmp_path, "other") == {"saved": False,
                                                                    "reason": "nothing was compiled in this process"}


def test_compile_on_cuda_brings_channels_last_graphs_and_diffusers_settings_and_the_cpu_keeps_its_own():
    from genimg.accel.inductor import CUDA_INDUCTOR_SETTINGS

    def prepared(device):
        notes = []
        # torch.compile compiles on the first call, so preparing for CUDA needs no GPU.
        wrapper = prepare_module(torch.nn.Conv2d(4, 8, 3), SpeedOptions(device=device, compile=True), notes)
        return wrapper, wrapper.compiled._orig_mod, notes

    wrapper, conv, notes = prepared("cuda")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and wrapper.clone_outputs
    assert "channels_last: part of compile=True on CUDA." in notes
    assert any("mode='max-autotune'" in note for note in notes)
    assert wrapper.inductor_settings == {"freezing": True, **CUDA_INDUCTOR_SETTINGS}
    wrapper, conv, notes = prepared("cpu")
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last) and not wrapper.clone_outputs
    assert wrapper.inductor_settings == {"freezing": True, "cpp_wrapper": True}
    assert not any("channels_last" in note or "max-autotune" in note for note in notes)
