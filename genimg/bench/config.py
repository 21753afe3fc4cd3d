"""What the benchmark runs: one ``BenchConfig`` per row (a backend, its speed options, the request shape), the
sweeps, and the settings of a run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genimg.options import SpeedOptions

TIMING_PROMPT = "a slice of pizza"
STOCK = "stock"  # the backend name of the stock diffusers baseline
PROMPTS = ("a slice of pizza", "a red apple", "a grinning face", "a dog face", "a rocket", "a red heart", "a sun",
           "a snowman", "a banana", "a cat face", "a soccer ball", "a birthday cake")
LATENT_BACKENDS = ("latent", "latent-lcm", STOCK)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked configuration: a backend, its speed options and the request shape."""

    backend: str  # gan | vae | latent | latent-lcm | stock (diffusers StableDiffusionPipeline, embedded weights)
    batch_size: int = 1
    steps: int | None = None
    precision: str = "fp32"
    scheduler: str | None = None
    compile: bool = False
    channels_last: bool = False
    tiny_decoder: bool = False
    fuse_qkv: bool = False
    cuda_graphs: bool = False
    prompt_cache: bool = True
    guidance_cutoff: float | None = None
    engine: str = "torch"  # "openvino": genimg's OpenVINO engine; for stock, its UNet and VAE decoder run by OpenVINO
    quantize: str | None = None  # "int8": NNCF static int8 (openvino) or torchao dynamic int8 (torch)
    pruned: bool = False  # the channel-pruned weights (gan, latent)

    def speed_options(self, device: str) -> SpeedOptions:
        # Concept matching off: the prompts reach the models as typed, as they reach stock diffusers.
        return SpeedOptions(device=device, precision=self.precision, scheduler=self.scheduler, compile=self.compile,
                            channels_last=self.channels_last, tiny_decoder=self.tiny_decoder,
                            cuda_graphs=self.cuda_graphs, fuse_qkv=self.fuse_qkv, match_concepts=False,
                            guidance_cutoff=self.guidance_cutoff, engine=self.engine, quantize=self.quantize,
                            pruned=self.pruned)

    @property
    def options_label(self) -> str:
        flags = (["pruned"] if self.pruned else []) + (["openvino"] if self.engine == "openvino" else [])
        flags.append(self.precision)
        flags += [self.quantize] if self.quantize else []
        flags += [name for name in ("compile", "channels_last", "fuse_qkv", "tiny_decoder", "cuda_graphs")
                  if getattr(self, name)]
        if self.guidance_cutoff is not None:
            flags.append(f"cfg_cutoff{self.guidance_cutoff:g}")
        if self.scheduler:
            flags.append(self.scheduler)
        if not self.prompt_cache:
            flags.append("no prompt cache")
        return "+".join(flags)

    @property
    def label(self) -> str:
        name = "stock diffusers" if self.backend == STOCK else self.backend
        steps = f" {self.steps} step{'s' if self.steps != 1 else ''}" if self.steps else ""
        return f"{name}{steps} {self.options_label} bs{self.batch_size}"

    @property
    def quality_key(self) -> "BenchConfig":
        """What the images depend on: not the batch size, not whether the prompt embedding came from the cache."""
        return dataclasses.replace(self, batch_size=1, prompt_cache=True)

    @property
    def is_latent(self) -> bool:
        return self.backend in LATENT_BACKENDS


@dataclass(frozen=True)
class BenchSettings:
    warmup_rounds: int = 2
    rounds: int = 10
    floor_rounds: int = 10
    prompts: tuple = PROMPTS
    images_per_prompt: int = 2
    device: str = "auto"
    progress: bool = True


def quick_sweep(stock_steps: int = 4) -> list[BenchConfig]:
    """About a minute on 2 CPU cores: no torch.compile, batch 1 and one small batch."""
    return [
        BenchConfig("gan"), BenchConfig("gan", precision="bf16", channels_last=True),
        BenchConfig("latent", steps=20),  # the teacher at its default steps: the quality reference
        BenchConfig(STOCK, steps=stock_steps), BenchConfig("latent", steps=stock_steps),
        BenchConfig("latent", steps=stock_steps, precision="bf16"),
        BenchConfig("latent-lcm", steps=1, precision="bf16", tiny_decoder=True, batch_size=4),
    ]


def full_sweep(stock_steps: int = 4, big_batch: int = 8) -> list[BenchConfig]:
    """Backends x options x batch sizes, fp32 and bf16 alike (which is faster depends on the CPU: bf16 wins where it
    has native bf16 units, e.g. Zen 4, and loses on CPUs that emulate it); 10-15 minutes on 2 CPU cores."""
    s, bf16 = stock_steps, dict(precision="bf16")
    return [
        BenchConfig("gan"), BenchConfig("gan", **bf16), BenchConfig("gan", channels_last=True, **bf16),
        BenchConfig("gan", channels_last=True, compile=True, **bf16),
        BenchConfig("gan", channels_last=True, compile=True),
        BenchConfig("gan", channels_last=True, batch_size=big_batch, **bf16),
        BenchConfig("vae"), BenchConfig("vae", channels_last=True, **bf16),
        BenchConfig("latent", steps=20),
        BenchConfig(STOCK, steps=s), BenchConfig(STOCK, steps=s, batch_size=big_batch),
        BenchConfig("latent", steps=s), BenchConfig("latent", steps=s, **bf16),
        BenchConfig("latent", steps=s, prompt_cache=False, **bf16),
        BenchConfig("latent", steps=s, fuse_qkv=True, **bf16),
        BenchConfig("latent", steps=s, channels_last=True, **bf16),
        BenchConfig("latent", steps=s, scheduler="euler", **bf16),
        BenchConfig("latent", steps=s, compile=True, **bf16), BenchConfig("latent", steps=s, compile=True),
        # Guidance on the first half of the steps only (diffusers' dynamic CFG): same weights and steps, fewer passes.
        BenchConfig("latent", steps=s, compile=True, guidance_cutoff=0.5, **bf16),
        BenchConfig("latent", steps=s, compile=True, guidance_cutoff=0.5),
        BenchConfig("latent", steps=s, compile=True, batch_size=big_batch, **bf16),
        BenchConfig("latent", steps=s, compile=True, batch_size=big_batch),
        BenchConfig("latent", steps=s, compile=True, guidance_cutoff=0.5, batch_size=big_batch),
        BenchConfig("latent", steps=s, compile=True, tiny_decoder=True, **bf16),
        BenchConfig("latent-lcm", steps=4, **bf16),
        BenchConfig("latent-lcm", steps=2, tiny_decoder=True, **bf16),
        BenchConfig("latent-lcm", steps=1, tiny_decoder=True, **bf16),
        BenchConfig("latent-lcm", steps=1, tiny_decoder=True, compile=True, batch_size=big_batch, **bf16),
        BenchConfig("latent-lcm", steps=1, tiny_decoder=True, compile=True, batch_size=big_batch),
    ]
