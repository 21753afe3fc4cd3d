"""genimg: fast text-to-image generation.

    import genimg
    generator = genimg.load("latent-lcm", precision="bf16", tiny_decoder=True)
    result = generator.generate("a slice of pizza", steps=2, batch_size=4, seed=0)
    result.images, result.timings  # PIL images; {"text_encode": ms, "denoise": ms, "decode": ms, "total": ms, ...}
"""
from __future__ import annotations

from genimg.quiet import filter_known_noise

filter_known_noise()  # before anything imports diffusers (and, through it, torchao)

from genimg.errors import (  # noqa: E402
    GenerationTimeout, GenimgError, InvalidRequest, ModelLoadError, NonFiniteOutput, OutOfMemory, RequestTooLarge,
    UnsupportedOption)
from genimg.options import Request, SpeedOptions  # noqa: E402
from genimg.registry import BACKENDS, DEFAULT_CACHE  # noqa: E402
from genimg.timing import Generation  # noqa: E402

__all__ = ["load", "upscale", "BACKENDS", "Generation", "Request", "SpeedOptions", "GenimgError", "InvalidRequest",
           "ModelLoadError", "UnsupportedOption", "RequestTooLarge", "GenerationTimeout", "OutOfMemory",
           "NonFiniteOutput"]


def load(backend: str, device: str = "auto", precision: str = "fp32", model: str | None = None, **speed_options):
    """A generator for ``backend`` (cached: the same arguments return the same loaded generator).

    ``speed_options``: scheduler, compile, channels_last, tiny_decoder, cuda_graphs, fuse_qkv, guidance_cutoff,
    engine ("torch" or "openvino"), text_engine (None: as engine; "openvino-int8": the text encoder
    on OpenVINO with int8 weights), quantize (None, "int8", "fp8"), pruned (the channel-pruned gan or latent weights),
    match_concepts (draw the known emoji nearest
    to the prompt; on by default for the embedded models), and upscale (2: 128 px images from the 2x upscaler, timed
    as the stage "upscale"; embedded backends only). See SpeedOptions.
    ``model``: for ``latent``, any diffusers text-to-image pipeline id or local folder instead of the embedded one.
    """
    unknown = set(speed_options) - set(SpeedOptions.__dataclass_fields__)
    if unknown:
        raise InvalidRequest(f"Unknown speed option(s) {', '.join(sorted(unknown))}: "
                             f"choose from {', '.join(SpeedOptions.__dataclass_fields__)}.")
    options = SpeedOptions(device=device, precision=precision, **speed_options)
    return DEFAULT_CACHE.get(backend, options, model)


def upscale(image, factor: int = 2, device: str = "cpu", precision: str = "fp32", **speed_options):
    """``image`` (a PIL image, path or bytes; made for the models' 64x64 drawings, any size up to 512 px a side)
    upscaled ``factor`` times (1 or 2) by the shipped 2x upscaler, as a PIL image. ``speed_options``: those of
    SpeedOptions that apply to one module (channels_last, compile, engine)."""
    from genimg.backends.upscale import check_factor, readable_image, shared_upscaler, upscale_picture
    from genimg.threads import LOAD_LOCK

    unknown = set(speed_options) - {"channels_last", "compile", "engine"}
    if unknown:
        raise InvalidRequest(f"Unknown option(s) {', '.join(sorted(unknown))} for upscale: choose from "
                             "channels_last, compile, engine.")
    factor = check_factor(factor)
    picture = readable_image(image)
    if factor == 1:
        return picture
    options = SpeedOptions(device=device, precision=precision, **speed_options).validated()
    with LOAD_LOCK:  # from_pretrained is not safe next to another load (see threads.LOAD_LOCK)
        upscaler = shared_upscaler(options)
    return upscale_picture(upscaler, picture)
