"""genimg: fast text-to-image generation.

    import genimg
    generator = genimg.load("latent-lcm", precision="bf16", tiny_decoder=True)
    result = generator.generate("a slice of pizza", steps=2, batch_size=4, seed=0)
    result.images, result.timings  # PIL images; {"text_encode": ms, "denoise": ms, "decode": ms, "total": ms, ...}
"""
from __future__ import annotations

from genimg.errors import (GenerationTimeout, GenimgError, InvalidRequest, ModelLoadError, NonFiniteOutput,
                           OutOfMemory, RequestTooLarge, UnsupportedOption)
from genimg.options import Request, SpeedOptions
from genimg.registry import BACKENDS, DEFAULT_CACHE
from genimg.timing import Generation

__all__ = ["load", "BACKENDS", "Generation", "Request", "SpeedOptions", "GenimgError", "InvalidRequest",
           "ModelLoadError", "UnsupportedOption", "RequestTooLarge", "GenerationTimeout", "OutOfMemory",
           "NonFiniteOutput"]


def load(backend: str, device: str = "auto", precision: str = "fp32", model: str | None = None, **speed_options):
    """A generator for ``backend`` (cached: the same arguments return the same loaded generator).

    ``speed_options``: scheduler, compile, channels_last, tiny_decoder, cuda_graphs, fuse_qkv, guidance_cutoff,
    engine ("torch" or "openvino"), text_engine (None: as engine; "openvino-int8": the text encoder
    on OpenVINO with int8 weights), quantize (None, "int8", "fp8"), pruned (the channel-pruned gan or latent weights),
    and match_concepts (draw the known emoji nearest
    to the prompt; on by default for the embedded models). See SpeedOptions.
    ``model``: for ``latent``, any diffusers text-to-image pipeline id or local folder instead of the embedded one.
    """
    unknown = set(speed_options) - set(SpeedOptions.__dataclass_fields__)
    if unknown:
        raise InvalidRequest(f"Unknown speed option(s) {', '.join(sorted(unknown))}: "
                             f"choose from {', '.join(SpeedOptions.__dataclass_fields__)}.")
    options = SpeedOptions(device=device, precision=precision, **speed_options)
    return DEFAULT_CACHE.get(backend, options, model)
