"""What the tabs share: the cached generator for a set of UI options, one timed generation with a progress bar and
disconnect checks (Generate, Compare), the judge's prompt-match score, and ``one_image``: every one-image generation
of the app (Live, /generate_one, POST /v1/image) in one place."""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

import genimg
from genimg.options import clean_prompt, guidance_cutoff_or_none, upscale_factor
from genimg.serve.batching import batcher_for
from genimg.serve.limits import allowed_model_folders, check_model_source
from genimg.threads import on_torch_thread
from genimg.timing import Generation
from ui import common
from ui.common import client_gone

ASSETS_FOLDER = Path(__file__).resolve().parents[1] / "assets"
# Warm-up runs use their own prompt, so the timed run still pays for encoding the user's prompt (once per generator).
WARM_UP_PROMPT = "warm-up"
# Where generations run: None in this process; a genimg.serve.remote.RemoteDrawer once connect_cluster was called.
CLUSTER = {"drawer": None}


def checked_model(model) -> str | None:
    """A caller's diffusers model id or folder, stripped (None when empty); a folder must lie in assets/ or
    GENIMG_MODEL_DIRS: the app reads no other file a caller names."""
    model = (model or "").strip() or None  # on a backend other than 'latent', genimg.load refuses it
    return check_model_source(model, allowed_model_folders(ASSETS_FOLDER)) if model else None


def generator_options(backend: str, precision: str, model: str = "", scheduler: str = "default",
                      compile: bool = False, tiny_decoder: bool = False, match_concepts: bool = True,
                      engine: str = "torch", quantize: str = "none", pruned: bool = False, guidance_cutoff=None,
                      upscale=False, text_engine: str | None = None) -> dict:
    """The UI's options as genimg.load takes them (backend included): what names one cached generator."""
    model = checked_model(model)
    # The tiny decoder only exists for the latent backends; dropping it elsewhere keeps one cached GAN/VAE, not two.
    tiny_decoder = bool(tiny_decoder) and backend.startswith("latent")
    return dict(backend=backend, precision=precision, model=model, compile=bool(compile),
                tiny_decoder=tiny_decoder, scheduler=None if scheduler == "default" else scheduler,
                match_concepts=None if model else bool(match_concepts), engine=engine or "torch",
                quantize=None if quantize in (None, "", "none") else quantize, pruned=pruned,
                guidance_cutoff=guidance_cutoff_or_none(guidance_cutoff), upscale=upscale_factor(upscale),
                text_engine=text_engine)


def configuration_key(*args, **kwargs) -> tuple:
    """A hashable name for the generator ``load_generator(*args, **kwargs)`` returns (its options, sorted)."""
    return tuple(sorted(generator_options(*args, **kwargs).items()))


def load_generator(*args, **kwargs):
    """The cached generator for these options (``generator_options``' arguments), and how long loading took (about
    0 when it was cached). On a cluster (``connect_cluster``), a stand-in whose generations run on the cluster's
    replicas."""
    start = time.perf_counter()
    options = generator_options(*args, **kwargs)
    if CLUSTER["drawer"] is not None:
        from genimg.serve.remote import RemoteGenerator

        return RemoteGenerator(CLUSTER["drawer"], options), 0.0
    generator = genimg.load(options.pop("backend"), **options)
    return generator, time.perf_counter() - start


def draw_one(prompt: str, backend: str, steps, precision: str, seed: int, **speed_options):
    """One image: on the cluster's replicas (batched there by Ray Serve), else through this process's cached
    generator and its micro-batcher. Every one-image path of the app (/generate_one, POST /v1/image, Live, through
    ``one_image``) comes here: the one place that calls a generator for one image."""
    generator, _ = load_generator(backend, precision, **speed_options)
    if CLUSTER["drawer"] is not None:
        return generator.draw(prompt, steps=steps, seed=seed, timeout_s=common.LIMITS.request_timeout_s)
    return batcher_for(generator, common.LIMITS.max_batch_size).generate(
        prompt, steps=steps or None, seed=seed, timeout_s=common.LIMITS.request_timeout_s)


def connect_cluster(address: str):
    """From now on the app's generations run on the genimg application of the Ray cluster at ``address`` (started
    by ``python -m genimg serve``); returns its drawer, for POST /v1/image."""
    from genimg.serve.remote import RemoteDrawer, generators_handle

    CLUSTER["drawer"] = RemoteDrawer(generators_handle(address), common.LIMITS.request_timeout_s)
    return CLUSTER["drawer"]


def run_generation(generator, prompt: str, steps, batch_size, seed, progress, label: str = "", warm_up=False,
                   negative_prompt: str = "", best_of: int = 1, layout: bool = True):
    """One timed generation with a progress bar per denoising step; optionally an untimed 1-step run first
    (first calls pay for lazy initialisation, and torch.compile compiles per batch size). genimg validates the
    numbers: an API caller's 2.5 steps gets genimg's message, not a silent int()."""
    steps = steps or None  # 0 (or empty) means the backend's default
    negative = {"negative_prompt": negative_prompt} if (negative_prompt or "").strip() else {}
    if best_of and best_of != 1:  # the embedded models' judge picks among candidates; genimg validates the number
        negative["best_of"] = best_of
    if layout is False:  # on by default everywhere; a cluster's replicas take it too
        negative["layout"] = False
    if warm_up:
        progress(0, desc=f"{label}warming up")
        generator.generate(WARM_UP_PROMPT, steps=1 if steps else None, batch_size=batch_size, seed=seed)

    def on_step(done: int, total: int) -> None:
        if client_gone():
            raise gr.Error("Stopped: the client disconnected.")
        progress((done, total), desc=f"{label}denoising", unit="steps")

    progress(0, desc=f"{label}generating")
    return generator.generate(prompt, steps=steps, batch_size=batch_size, seed=seed, on_step=on_step,
                              timeout_s=common.LIMITS.request_timeout_s, **negative)


def match_scores(images, prompt: str, layout: dict | None = None) -> list[float]:
    """The judge's 0-100 per image; a scene the layout drew (``layout``: its ``info["layout"]``) object by object."""
    from genimg.evaluate.judge import default_judge

    if layout:
        return on_torch_thread(lambda: default_judge().score_layout(images, layout))
    return on_torch_thread(lambda: default_judge().score(images, prompt))


def one_image(prompt: str, backend: str = "latent-lcm", steps: int = 4, precision: str = "fp32", seed: int = 0,
              speed_options: dict | None = None, shown: tuple | None = None) -> Generation:
    """Every one-image generation of the app goes through here: Live, /generate_one and POST /v1/image. It draws with
    ``draw_one`` (the cached generator for these options behind its micro-batcher, or the cluster); the one-image API
    passes no ``speed_options``, Live its own (``load_generator``'s keywords).

    ``shown``: the ``info["drawing"]`` of the image the caller already shows (Live). When this prompt would be drawn
    as the same emoji with the same seed, steps and options, nothing is drawn: the result has no image, its timings
    are the text stage's and ``info["redrawn"]`` is False. Every result's ``info["drawing"]`` says what it drew."""
    speed_options = speed_options or {}
    configuration = (backend, precision, tuple(sorted(speed_options.items())), steps or None, int(seed))
    if shown is not None and CLUSTER["drawer"] is None:  # a cluster draws again: its replicas hold the text model
        generator, _ = load_generator(backend, precision, **speed_options)
        match, timings = generator.match_prompt(prompt)
        drawing = configuration + ((match.concept if match else clean_prompt(prompt)),)
        if drawing == tuple(shown):
            info = {"prompt": clean_prompt(prompt), "backend": generator.name,
                    "steps": steps or generator.default_steps, "seed": int(seed), "precision": precision,
                    "device": generator.device, "notes": [], "redrawn": False, "drawing": drawing}
            if match is not None:
                info["drawn_as"] = match.as_info()
            return Generation([], timings, None, info)
    result = draw_one(prompt, backend, steps, precision, seed, **speed_options)
    match = result.info.get("drawn_as")
    drawing = configuration + ((match["concept"] if match else result.info["prompt"]),)
    result.info.update(redrawn=True, drawing=drawing)
    return result
