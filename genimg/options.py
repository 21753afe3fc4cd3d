"""Request and speed options: frozen dataclasses validated once at the boundary."""
from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass

from genimg.errors import InvalidRequest, UnsupportedOption

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
ENGINES = ("torch", "openvino")
# How the MiniLM text encoder runs: "openvino-int8" is OpenVINO with NNCF int8 weights (activations in float).
TEXT_ENGINES = ("torch", "openvino", "openvino-int8")
QUANTIZE = ("int8", "fp8")
FP8_MIN_CAPABILITY = (8, 9)  # fp8 tensor cores: Ada (8.9), Hopper (9.0) and later
MAX_PROMPT_CHARS = 1000
MAX_STEPS = 100
MAX_BATCH_SIZE = 16
MAX_BEST_OF = 8  # candidates drawn per image kept (best_of): the judge keeps the one that fits the prompt best
MAX_SEED = 2**32 - 1
MAX_GUIDANCE = 30.0
UPSCALE_FACTORS = (1, 2)  # 1: the models' own 64 px; 2: the 2x upscaler (128 px)


def resolve_device(device: str = "auto") -> str:
    """Pick cuda, then mps, then cpu for ``auto``; refuse a device that is not there."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise InvalidRequest(f"Unknown device {device!r}: choose one of {', '.join(DEVICES)}.")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UnsupportedOption("CUDA was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UnsupportedOption("MPS was asked for but is not available here; use device='auto' or 'cpu'.")
    return device


@dataclass(frozen=True)
class SpeedOptions:
    """How a generator runs; part of the cache key of a loaded generator."""

    device: str = "auto"
    precision: str = "fp32"
    scheduler: str | None = None
    compile: bool = False
    channels_last: bool = False
    tiny_decoder: bool | str = False  # True: the embedded tiny decoder; a str: an AutoencoderTiny hub id or folder
    cuda_graphs: bool = False
    fuse_qkv: bool = False
    # Draw the known emoji nearest to the prompt (genimg.concepts). None: on for the embedded emoji models.
    match_concepts: bool | None = None
    # Classifier-free guidance only for this leading fraction of the steps; later steps run the conditional pass alone
    # (diffusers' "dynamic CFG" recipe: the unconditional pass is half the UNet work of a guided step). None: all steps.
    guidance_cutoff: float | None = None
    # What runs the modules: "torch" (eager, or inductor with compile=True) or "openvino" (CPU: converted once, cached
    # on disk, see genimg.accel.openvino).
    engine: str = "torch"
    # None, "int8" (CPU: NNCF static int8 with engine="openvino", torchao dynamic int8 with torch; CUDA: torchao int8
    # weight-only) or "fp8" (CUDA, compute capability >= 8.9). See genimg.accel.quantize.
    quantize: str | None = None
    # The channel-pruned weights (genimg.accel.prune, fine-tuned by distillation) of the embedded 'gan' and 'latent'
    # models: fewer channels, fewer FLOPs, at the quality cost their model cards and docs/benchmarks.md report.
    pruned: bool = False
    # 2: end with the 2x upscaler (genimg.models.upscaler): 128x128 images from the 64x64 models, timed as the stage
    # "upscale". Embedded backends only (a model= pipeline draws at its own resolution). 1: off.
    upscale: int = 1
    # What runs the MiniLM text encoder: None follows ``engine`` ("torch", or "openvino" with float weights: the same
    # embeddings); "openvino-int8" compresses its weights to int8 (cosine to fp32 >= 0.998, see genimg.text).
    text_engine: str | None = None
    # compile=True on CUDA: inductor's max-autotune with CUDA graphs and channels_last (Triton templates benchmarked
    # per matmul and convolution; minutes on the first compile, which a loaded compile cache skips:
    # genimg.accel.compile_cache). None: on for CUDA; False: inductor's default choices (faster to compile), CUDA
    # graphs only with cuda_graphs=True. The CPU compile keeps its own settings either way.
    max_autotune: bool | None = None

    def validated(self) -> "SpeedOptions":
        """Return a copy with the device resolved; raise on anything the hardware cannot do."""
        if self.precision not in PRECISIONS:
            raise InvalidRequest(f"Unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        if not isinstance(self.tiny_decoder, bool) and not (isinstance(self.tiny_decoder, str)
                                                            and self.tiny_decoder.strip()):
            raise InvalidRequest(f"tiny_decoder is True/False or an AutoencoderTiny hub id or folder, "
                                 f"got {self.tiny_decoder!r}.")
        cutoff = self.guidance_cutoff
        if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, (int, float))
                                   or not 0 < cutoff <= 1):
            raise InvalidRequest(f"guidance_cutoff must be a fraction of the steps in (0, 1], got {cutoff!r}.")
        if not isinstance(self.pruned, bool):
            raise InvalidRequest(f"pruned is True or False, got {self.pruned!r}.")
        if isinstance(self.upscale, bool) or self.upscale not in UPSCALE_FACTORS:
            raise InvalidRequest(f"upscale is 1 (off) or 2 (the 2x upscaler: 64 -> 128 px), got {self.upscale!r}.")
        if self.max_autotune is not None and not isinstance(self.max_autotune, bool):
            raise InvalidRequest(f"max_autotune is None, True or False, got {self.max_autotune!r}.")
        if self.engine not in ENGINES:
            raise InvalidRequest(f"Unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}.")
        if self.text_engine is not None and self.text_engine not in TEXT_ENGINES:
            raise InvalidRequest(f"Unknown text_engine {self.text_engine!r}: choose None (follow engine) or one "
                                 f"of {', '.join(TEXT_ENGINES)}.")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise InvalidRequest(f"Unknown quantize {self.quantize!r}: choose None or one of {', '.join(QUANTIZE)}.")
        device = resolve_device(self.device)
        if self.precision == "fp16" and device == "cpu":
            raise UnsupportedOption(
                "fp16 is extremely slow or unsupported on a CPU; use precision='bf16' for half precision on CPU."
            )
        check_engine(self.engine, device)
        check_engine("openvino" if (self.text_engine or "").startswith("openvino") else "torch", device)
        check_quantize(self.quantize, device)
        return dataclasses.replace(self, device=device)

    @property
    def text_engine_resolved(self) -> str:
        """The text encoder's engine: ``text_engine``, or the generator's ``engine`` when that is None."""
        return self.text_engine or self.engine

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def check_engine(engine: str, device: str) -> None:
    """OpenVINO runs here on the CPU only (on another device it is ignored with a note), and must be installed."""
    import importlib.util

    if engine == "openvino" and device == "cpu" and importlib.util.find_spec("openvino") is None:
        raise UnsupportedOption("engine='openvino' needs the openvino package: pip install openvino "
                                "(or use engine='torch').")


def cuda_supports_fp8(capability: tuple[int, int] | None) -> bool:
    """Whether a card of this compute capability has fp8 tensor cores (torchao's float8 matmuls need them)."""
    return capability is not None and tuple(capability) >= FP8_MIN_CAPABILITY


def check_quantize(quantize: str | None, device: str, capability: tuple[int, int] | None = None) -> None:
    """Refuse a quantisation this device cannot run, saying what to choose instead."""
    if quantize is None:
        return
    if device == "mps":
        raise UnsupportedOption("quantize works on a CPU (int8) or a CUDA GPU (int8, fp8), not on MPS; "
                                "use quantize=None.")
    if quantize == "fp8":
        if device == "cpu":
            raise UnsupportedOption("fp8 needs a CUDA GPU with fp8 units (H100, L4, RTX 40xx); on a CPU use "
                                    "quantize='int8'.")
        if capability is None:
            import torch

            capability = torch.cuda.get_device_capability(device)
        if not cuda_supports_fp8(capability):
            raise UnsupportedOption(f"fp8 needs compute capability >= 8.9 (Ada, Hopper); this GPU has "
                                    f"{capability[0]}.{capability[1]}. Use quantize='int8' (weight-only).")


def guidance_cutoff_or_none(cutoff):
    """A front end's guidance cutoff as SpeedOptions takes it: guidance on every step (1, or nothing given) is None, so
    it shares one cached generator and one label; anything else is passed on for ``validated`` to check."""
    if cutoff is None or cutoff == "" or (not isinstance(cutoff, bool) and cutoff == 1):
        return None
    return cutoff


def upscale_factor(upscale):
    """A front end's upscale as SpeedOptions takes it: a checkbox (True/False), nothing (1) or a factor; anything else
    is passed on for ``validated`` to refuse."""
    if upscale is None or upscale == "" or upscale is False:
        return 1
    if upscale is True:
        return 2
    return upscale


def clean_prompt(prompt) -> str:
    """Strip control/bidi characters and whitespace; refuse empty or absurdly long prompts."""
    if not isinstance(prompt, str):
        raise InvalidRequest(f"The prompt must be text, not {type(prompt).__name__}.")
    surrogate = next((ch for ch in prompt if unicodedata.category(ch) == "Cs"), None)
    if surrogate is not None:  # half of a UTF-16 pair (a client that split an emoji): the tokenizer cannot take it
        raise InvalidRequest("The prompt is not valid Unicode text: it holds a lone surrogate "
                             f"(U+{ord(surrogate):04X}), half of a character. Send the whole character, as UTF-8.")
    # Categories Cc (control) and Cf (format: bidi overrides, zero-width marks) hide or reorder text.
    kept = "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf") else " " for ch in prompt)
    cleaned = " ".join(kept.split())
    if not cleaned:
        raise InvalidRequest("The prompt is empty: describe the image you want, e.g. 'a slice of pizza'.")
    if len(cleaned) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"The prompt has {len(cleaned)} characters; the limit is {MAX_PROMPT_CHARS}.")
    return cleaned


def clean_negative_prompt(negative_prompt) -> str | None:
    """Cleaned like the prompt; None or blank means none."""
    if negative_prompt is None or (isinstance(negative_prompt, str) and not negative_prompt.strip()):
        return None
    try:
        return clean_prompt(negative_prompt)
    except InvalidRequest as error:
        raise InvalidRequest(f"Negative prompt: {error}") from error


def _checked_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _int_in_range(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidRequest(f"{name} must be a whole number, got {value!r}.")
    if not low <= int(value) <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {int(value)}.")
    return int(value)


@dataclass(frozen=True)
class Request:
    """One generation: what to draw, how many, and with which randomness."""

    prompt: str
    steps: int | None = None
    batch_size: int = 1
    seed: int = 0
    guidance: float | None = None
    # Conditions classifier-free guidance's unconditional pass in place of the empty prompt (guided backends only).
    negative_prompt: str | None = None
    # Candidates drawn per image (in the same batch); the judge keeps the one that fits the prompt best. 1: no choice.
    best_of: int = 1
    # A prompt's scene of several objects (or a small one): each object drawn alone by the model, then arranged as the
    # scene says (BaseGenerator._draw_layout). False: the model draws the whole scene itself.
    layout: bool = True

    def validated(self, max_batch_size: int = MAX_BATCH_SIZE) -> "Request":
        """A copy with every field checked; ``max_batch_size``: a generator whose caller raised its limit (the GPU
        benchmark's batch 32) passes its own."""
        guidance = self.guidance
        if guidance is not None:
            if (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                    or not 0 <= guidance <= MAX_GUIDANCE):
                raise InvalidRequest(f"guidance must be a number between 0 and {MAX_GUIDANCE}, got {guidance!r}.")
            guidance = float(guidance)
        return Request(
            prompt=clean_prompt(self.prompt),
            steps=None if self.steps is None else _int_in_range("steps", self.steps, 1, MAX_STEPS),
            batch_size=_int_in_range("batch_size", self.batch_size, 1, max_batch_size),
            seed=_int_in_range("seed", self.seed, 0, MAX_SEED),
            guidance=guidance,
            negative_prompt=clean_negative_prompt(self.negative_prompt),
            best_of=_int_in_range("best_of", self.best_of, 1, MAX_BEST_OF),
            layout=_checked_bool("layout", self.layout),
        )
