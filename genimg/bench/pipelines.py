"""SD-family pipelines built from configs with random weights (nothing downloaded): the SD-1.5 and SD-Turbo
architectures at full size, the same families shrunk to seconds on a CPU (``tiny``), an LCM-distilled variant, and
``save_pipeline`` which writes them as diffusers pipeline folders that ``genimg.load("latent", model=folder)`` and
stock ``DiffusionPipeline.from_pretrained`` both read. Used by the GPU benchmark, the GPU check and the tests."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROMPT = "a photograph of an astronaut riding a horse"


@dataclass(frozen=True)
class Architecture:
    name: str
    unet: dict
    text: dict
    scheduler: str  # diffusers scheduler class name
    scheduler_config: dict
    steps: int
    guidance: float
    resolution: int = 512
    vae: dict = field(default_factory=lambda: dict(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215))
    tiny_decoder: dict = field(default_factory=dict)  # AutoencoderTiny defaults are TAESD's


SD_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                   steps_offset=1)
SD15 = Architecture(
    "sd15",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
              layers_per_block=2),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=49408,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768),
    scheduler="DPMSolverMultistepScheduler", scheduler_config=dict(SD_SCHEDULE, algorithm_type="dpmsolver++"),
    steps=4, guidance=7.5)  # SD-1.5 at 4 steps (with classifier-free guidance: 2 UNet rows a step)
SD_TURBO = Architecture(
    "sd-turbo",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
              attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, layers_per_block=2),
    text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
              vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024),
    scheduler="EulerDiscreteScheduler", scheduler_config=dict(SD_SCHEDULE, timestep_spacing="trailing"),
    steps=1, guidance=0.0)
ARCHITECTURES = {arch.name: arch for arch in (SD15, SD_TURBO)}


def tiny(arch: Architecture) -> Architecture:
    """The same architecture family shrunk to seconds on a CPU (64x64 images, 8x8 latents)."""
    turbo = arch.name == "sd-turbo"
    unet = dict(sample_size=8, block_out_channels=(32, 64), cross_attention_dim=32, layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                attention_head_dim=(2, 4) if turbo else 8, use_linear_projection=turbo)
    text = dict(arch.text, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=1000, projection_dim=32)
    vae = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4, sample_size=64,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               scaling_factor=0.18215)
    tiny_decoder = dict(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4,
                        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    return Architecture(arch.name + "-tiny", unet, text, arch.scheduler, arch.scheduler_config, min(arch.steps, 2),
                        arch.guidance, 64, vae, tiny_decoder)


def byte_level_tokenizer():
    """A CLIP tokenizer without merges (every character is a token): real tokenization, nothing downloaded."""
    from transformers import CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable + [256 + n for n in range(256 - len(printable))]
    chars = [chr(code) for code in codes]
    tokens = chars + [char + "</w>" for char in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[], model_max_length=77)


def build_components(arch: Architecture, seed: int = 0, device: str = "cpu") -> dict:
    """Random-weight fp32 models of ``arch``, initialised on ``device`` (fast for SD sizes on a GPU); same seed, same
    weights."""
    import diffusers
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    with torch.device(device):
        models = {"unet": UNet2DConditionModel(**arch.unet).eval(), "vae": AutoencoderKL(**arch.vae).eval(),
                  "text_encoder": CLIPTextModel(CLIPTextConfig(**arch.text)).eval(),
                  "tiny_decoder": AutoencoderTiny(**arch.tiny_decoder).eval()}
    # Outside the device context: schedulers keep their tables on the CPU (diffusers calls .numpy() on them).
    return {**models, "tokenizer": byte_level_tokenizer(),
            "scheduler": getattr(diffusers, arch.scheduler)(**arch.scheduler_config)}


def lcm(arch: Architecture) -> Architecture:
    """The same architecture as an LCM-distilled model: the UNet takes the guidance scale as an embedding
    (``time_cond_proj_dim``), LCMScheduler, no unconditional pass; diffusers' LatentConsistencyModelPipeline."""
    return dataclasses.replace(arch, name=arch.name + "-lcm", unet=dict(arch.unet, time_cond_proj_dim=32),
                               scheduler="LCMScheduler", scheduler_config=dict(SD_SCHEDULE, steps_offset=1),
                               steps=min(arch.steps, 2), guidance=8.5)


def save_pipeline(arch: Architecture, folder: Path, components: dict | None = None,
                  dtype: torch.dtype = torch.float32) -> Path:
    """``arch`` (random weights, or the ``components`` given) saved as a diffusers pipeline folder; the tiny decoder
    goes to ``folder/tiny-decoder`` (an AutoencoderTiny folder, for ``tiny_decoder=``). Returns ``folder``."""
    from diffusers import LatentConsistencyModelPipeline, StableDiffusionPipeline

    components = components or build_components(arch)
    parts = {k: components[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    if arch.scheduler == "LCMScheduler":
        pipeline = LatentConsistencyModelPipeline(**parts, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)
    else:
        pipeline = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                           requires_safety_checker=False)
    folder = Path(folder)
    pipeline.to(dtype=dtype).save_pretrained(folder)
    components["tiny_decoder"].to(dtype=dtype).save_pretrained(folder / "tiny-decoder")
    return folder
