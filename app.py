"""genimg demo: Generate | Live | Image to image | Compare | Benchmark | About. UI only: every image, timing and
score comes from genimg (the Live, Image to image, Compare and Benchmark tabs are built in ui/).

    python app.py                      # serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 127.0.0.1:7860)
    gradio_client.Client(url).predict("a cute puppy", "latent-lcm", 4, 2, "fp32", 0, api_name="/generate")
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import gradio as gr

from genimg.serve import report
from genimg.serve.breakeven import BreakEvenCache
from genimg.serve.hosts import LoopbackHostGuard, is_loopback
from genimg.serve.limits import ServingLimits
from genimg.serve.memory import limit_malloc_arenas
from genimg.serve.reproduce import reproduce_generate_api
from genimg.serve.rest import image_route
from genimg.serve.uploads import TempFolderGuard, UploadLimits
from genimg.threads import use_one_torch_thread
from genimg.options import MAX_BATCH_SIZE, MAX_BEST_OF, MAX_SEED, MAX_STEPS, PRECISIONS, resolve_device
from ui.common import (BACKEND_CHOICES, ENGINE_CHOICES, GUIDANCE_CUTOFF_CHOICES, LIMITS, QUANTIZE_CHOICES,
                       SCHEDULER_CHOICES, UPSCALE_INFO, embedded_upscale, gpu, logger, number_input,
                       pruned_models_present, queue_wait_ms, stop_if_client_gone, user_errors)
from ui.benchmark import BENCH_FOLDERS, build_benchmark_tab
from ui.compare import build_compare_tab
from ui.generation import (WARM_UP_PROMPT, configuration_key, connect_cluster, load_generator, match_scores,
                           one_image, run_generation)
from ui.img2img import build_img2img_tab
from ui.live import build_live_tab, live_preparation
from ui.warm_start import WARM_START, Preparation

UPLOADS = UploadLimits.from_env()  # one file's size, the temporary folder's size, files and age
# genimg.load returns a cached generator in microseconds; anything slower actually loaded a model.
LOADED_NOW_S = 0.05
# Per Generate configuration with compile, OpenVINO or quantisation on: its first call, and the same call's time
# without them (once).
BREAK_EVEN = BreakEvenCache()
# What the Generate tab opens with (the options not named here are load_generator's defaults); the warm start
# prepares this configuration.
GENERATE_DEFAULTS = dict(backend="latent-lcm", precision="fp32", steps=4, batch_size=4, tiny_decoder=True, upscale=True)
# Single emoji, then scenes: colours, counts, two objects and where they stand (genimg.scene_parser).
EXAMPLE_PROMPTS = ["a slice of pizza", "a cute puppy", "rocket", "a blue rocket above a red car", "three yellow stars",
                   "a purple dog and a green key", "a cat to the left of a guitar", "two pink mushrooms"]
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
# The models draw 64x64 emoji: scale them up without blurring. Compare captions may take two lines.
CSS = """.pixelated img { image-rendering: pixelated; }
.upscaled img { width: 256px !important; height: 256px !important; object-fit: contain; }
.wrap-captions .caption-label { white-space: normal; max-width: 95%; }"""


@gpu()
def generate(prompt: str, backend: str = "latent-lcm", steps: int = 4, batch_size: int = 4, precision: str = "fp32",
             seed: int = 0, model: str = "", scheduler: str = "default", compile: bool = False,
             tiny_decoder: bool = False, match_concepts: bool = True, negative_prompt: str = "",
             engine: str = "torch", quantize: str = "none", pruned: bool = False, guidance_cutoff: float = 1.0,
             upscale: bool = True, best_of: int = 1, layout: bool = True, progress=gr.Progress()):
    """Generate a batch; returns the images (captioned with their match score) and the latency report.
    ``negative_prompt``: steers guided models (the teacher, model= pipelines); others ignore it and say so.
    ``guidance_cutoff``: guidance on that fraction of the steps only (1 = every step). ``upscale`` (on, as on the
    page): end an embedded model with the 2x upscaler (128 px images; its time is the stage "upscale"); False gives
    the model's own 64 px. ``best_of``: candidates drawn per image, the judge keeps the best (the latency is the whole
    cost). ``layout``: a scene of several objects is drawn object by object and arranged (False: in one go)."""
    queued_ms, started = queue_wait_ms(), time.perf_counter()
    upscale, own_size = embedded_upscale(upscale, model)
    with user_errors():
        configuration = (backend, precision, model, scheduler, compile, tiny_decoder, match_concepts, engine, quantize,
                         pruned, guidance_cutoff, upscale)
        # A click while the warm start still prepares this configuration: its progress, then the prepared generator.
        WARM_START.wait(configuration_key(*configuration), progress, check=stop_if_client_gone)
        progress(0, desc="loading model")
        generator, load_s = load_generator(*configuration)
        engine, quantize = engine or "torch", quantize or "none"
        # Options with a first-call cost: compile compiles, OpenVINO converts (and int8 calibrates) on the first call.
        costly = [name for name, on in (("torch.compile", compile), (f"engine {engine}", engine not in ("", "torch")),
                                        (f"quantize {quantize}", quantize not in ("", "none"))) if on]
        key = (backend, precision, model, scheduler, tiny_decoder, match_concepts, engine, quantize, pruned, steps,
               batch_size, guidance_cutoff, bool(upscale))
        first_call_now = False
        if costly and key not in BREAK_EVEN.first_call_ms:  # timed once per configuration: the break-even needs it
            progress(0, desc=f"first call ({', '.join(costly)})")
            first_call_now = BREAK_EVEN.first_call(key, lambda: generator.generate(
                WARM_UP_PROMPT, steps=steps or None, batch_size=batch_size, seed=seed)) is not None
        # That first call warmed this configuration up; else a model loaded by this request gets one untimed run.
        warm_up = load_s > LOADED_NOW_S and not first_call_now
        result = run_generation(generator, prompt, steps, batch_size, seed, progress, warm_up=warm_up,
                                negative_prompt=negative_prompt, best_of=best_of, layout=layout)
        progress(1, desc="scoring prompt match")
        scores = match_scores(result.images, result.info["prompt"], result.info.get("layout"))
        # Against the same configuration without any of them: plain torch, no compile, no quantisation.
        break_even = costly and BREAK_EVEN.result(key, result.timings["total"], lambda: load_generator(
            backend, precision, model, scheduler, False, tiny_decoder, match_concepts, pruned=pruned,
            guidance_cutoff=guidance_cutoff, upscale=upscale)[0].generate(
            prompt, steps=steps or None, batch_size=batch_size, seed=seed), batch_size)
    gallery = [(image, f"#{index + 1} · match {score:.0f}") for index, (image, score) in
               enumerate(zip(result.images, scores))]
    text = report.latency_markdown(result, scores, load_s if load_s > LOADED_NOW_S else None,
                                   warm_up or first_call_now,
                                   server_ms=(queued_ms, (time.perf_counter() - started) * 1000))
    code = reproduce_generate_api(dict(prompt=prompt, backend=backend, steps=steps, batch_size=batch_size,
                                       precision=precision, seed=seed, model=model, scheduler=scheduler,
                                       compile=bool(compile), tiny_decoder=bool(tiny_decoder),
                                       match_concepts=bool(match_concepts), negative_prompt=negative_prompt,
                                       engine=engine, quantize=quantize, pruned=bool(pruned),
                                       guidance_cutoff=guidance_cutoff, upscale=bool(upscale), best_of=best_of,
                                       layout=bool(layout)))
    break_even_text = f"\n\n{break_even.markdown(' + '.join(costly))}" if break_even else ""
    return gallery, text + own_size + break_even_text + "\n" + code


@gpu()
def generate_one(prompt: str, backend: str = "latent-lcm", steps: int = 4, precision: str = "fp32", seed: int = 0):
    """The plain one-image API of Gradio's queue (see ui.generation.one_image: every one-image generation of the
    app, POST /v1/image and Live included, goes through it)."""
    queued_ms, started = queue_wait_ms(), time.perf_counter()
    with user_errors():
        result = one_image(prompt, backend, steps, precision, seed)
    return result.images[0], one_image_info(result, started, queued_ms)


@gpu()
def generate_one_batched(prompts: list, backends: list, steps: list, precisions: list, seeds: list):
    """/generate_one with GENIMG_BATCHING=gradio: Gradio hands over the waiting requests as lists (batch=True); each
    configuration among them runs as one generate_batch call."""
    queued_ms, started = queue_wait_ms(), time.perf_counter()
    images, infos = [None] * len(prompts), [None] * len(prompts)
    groups: dict[tuple, list[int]] = {}
    for index, configuration in enumerate(zip(backends, precisions, steps)):
        groups.setdefault(configuration, []).append(index)
    with user_errors():
        for (backend, precision, step), members in groups.items():
            generator, _ = load_generator(backend, precision)
            results = generator.generate_batch([prompts[i] for i in members], [seeds[i] for i in members],
                                               steps=step or None, timeout_s=LIMITS.request_timeout_s)
            for index, result in zip(members, results):
                images[index], infos[index] = result.images[0], one_image_info(result, started, queued_ms)
    return images, infos


def one_image_info(result, started: float, queued_ms: float | None = None) -> dict:
    """What the one-image API returns beside the image: the request as drawn, the engine's timings, server_ms (the
    time in the app's function, waiting for its batch included), queue_ms (joining Gradio's queue to the function's
    start) and server_total_ms, their sum: the request's whole time in the server but encoding the image."""
    info = {key: result.info.get(key)
            for key in ("prompt", "drawn_as", "backend", "steps", "seed", "precision", "device", "notes")}
    server_ms = (time.perf_counter() - started) * 1000
    # Which process drew it: this app's, or a cluster replica's (with the replica's Ray Serve id).
    info.update(pid=result.info.get("pid", os.getpid()), replica=result.info.get("replica"))
    return {**info, "batched_with": result.info["batched_with"], "timings_ms": result.timings,
            "server_ms": server_ms, "queue_ms": queued_ms,
            "server_total_ms": None if queued_ms is None else queued_ms + server_ms}


ABOUT = """
## The models
Every model here was trained by genimg on its own emoji data set (Noto Color Emoji at 64x64, captions from the
`emoji` package) and reads prompts through the same frozen MiniLM sentence encoder (all-MiniLM-L6-v2, 384-d).

| backend | what runs per image | how it was trained |
|---|---|---|
| `gan` | one generator forward pass | hinge loss, projection critic, L1 to the captioned emoji |
| `vae` | one decoder pass from z ~ N(0, I) | text-conditional VAE |
| `latent` | UNet on 16x16x4 latents x steps (x2 with guidance), then the KL decoder | v-prediction teacher; \
DPM-Solver++ 20 steps, guidance 5 by default |
| `latent-lcm` | the distilled UNet, 1-4 LCM steps, no unconditional pass | regression onto the teacher's samples |

`latent` also runs any diffusers text-to-image pipeline: put its hub id or folder in "Diffusers model id".
**Tiny decoder**: an AutoencoderTiny (TAESD-style, 8x fewer weights than the KL autoencoder) for the same latents.
**Prompt match** is scored by a small judge (image and text embeddings trained with InfoNCE on the same emoji), 0-100.
**Match the prompt to a known emoji** (on by default): the models learned emoji from their names, so a prompt is
matched by MiniLM sentence similarity to the nearest training caption and that emoji is drawn ("a cute puppy" ->
dog); the result says what it was drawn as. Turn it off to condition the model on the prompt as typed.
A prompt with colours, counts, two things or where they stand ("a crown below a bird", "three stars") is read as a
scene. **Layout** (on by default): each object of the scene is drawn alone, in its colour, and the drawings are
arranged as the prompt says (stages `layout_objects` and `layout_arrange`); untick it to see the model draw the whole
scene in one go, as it learned from scenes made of the font's glyphs.

Speed options: precision (bf16 halves memory traffic and is fast on CPUs with bf16 units; fp16 needs a GPU),
scheduler, `torch.compile`, tiny decoder, engine (OpenVINO on the CPU: converted once, then read from a disk cache)
quantize (int8; fp8 on GPUs with fp8 units) and guidance on the first steps only (guided backends: one UNet pass
instead of two after the cutoff); the Python API adds channels_last, fused QKV and CUDA graphs.
**Upscale 2x**: a small GAN upscaler (a few residual convs and a pixel shuffle, trained on the font's 128 px glyphs
with L1, a perceptual loss from the judge's features and a patch critic) turns any embedded model's 64x64 drawing
into 128x128; its time is the stage `upscale`. It is on by default in every tab: untick it for the model's own
64 px. Compare has a "64 vs 128 px" preset.
Latencies are measured by genimg with the device synchronised around every stage; model loading is not included.
"""


def build_generate_tab() -> None:
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", placeholder="a slice of pizza", elem_id="prompt")
            with gr.Row():
                backend = gr.Dropdown(BACKEND_CHOICES, value=GENERATE_DEFAULTS["backend"], label="Backend")
                precision = gr.Dropdown(list(PRECISIONS), value=GENERATE_DEFAULTS["precision"], label="Precision")
            with gr.Row():
                steps = number_input(gr.Slider(0, MAX_STEPS, value=GENERATE_DEFAULTS["steps"], step=1, label="Steps",
                                               info="0 = backend default; gan/vae: 1 pass"))
                batch_size = number_input(gr.Slider(1, MAX_BATCH_SIZE, value=GENERATE_DEFAULTS["batch_size"], step=1,
                                                    label="Batch size"))
            upscale = gr.Checkbox(value=GENERATE_DEFAULTS["upscale"], label="Upscale 2x (128 px)", elem_id="upscale",
                                  info=UPSCALE_INFO)
            with gr.Accordion("More speed options", open=False):
                model = gr.Textbox("", label="Diffusers model id or folder (latent backend; empty = embedded model)")
                scheduler = gr.Dropdown(SCHEDULER_CHOICES, value="default", label="Scheduler")
                with gr.Row():
                    compile_ = gr.Checkbox(label="torch.compile")
                    tiny_decoder = gr.Checkbox(value=GENERATE_DEFAULTS["tiny_decoder"],
                                               label="Tiny decoder (latent backends)")
                with gr.Row():
                    engine = gr.Dropdown(ENGINE_CHOICES, value="torch", label="Engine",
                                         info="openvino: CPU; converted once, cached on disk")
                    quantize = gr.Dropdown(QUANTIZE_CHOICES, value="none", label="Quantize",
                                           info="int8: CPU/CUDA; fp8: GPUs with fp8 units")
                guidance_cutoff = gr.Dropdown(GUIDANCE_CUTOFF_CHOICES, value=1.0, label="Guidance on",
                                              info="guided backends (latent, model=): fewer UNet passes after it")
                pruned = gr.Checkbox(label="Pruned weights (gan, latent)", visible=pruned_models_present(),
                                     info="channel-pruned, then distilled: fewer FLOPs, lower prompt-match")
                match_concepts = gr.Checkbox(value=True, label="Match the prompt to a known emoji",
                                             info="draw the emoji whose name is nearest in meaning (embedded models)")
                negative_prompt = gr.Textbox("", label="Negative prompt", elem_id="negative-prompt",
                                             info="the guided teacher (latent) steers away from it, at no extra pass")
            with gr.Row():
                seed = number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                best_of = number_input(gr.Slider(1, MAX_BEST_OF, value=1, step=1, label="Best of",
                                                 info="candidates per image; the judge keeps the best (embedded models)",
                                                 elem_id="best-of"))
                layout = gr.Checkbox(value=True, label="Layout", elem_id="layout",
                                     info="a scene of several objects: each drawn alone, then arranged as the prompt "
                                          "says; off: the model draws it in one go")
            button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            gr.Examples([[text] for text in EXAMPLE_PROMPTS], inputs=[prompt], cache_examples=False)
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Images", columns=4, height="auto", format="png", object_fit="contain",
                                 elem_id="gallery", elem_classes="pixelated")
            latency = gr.Markdown("Latency appears here after a generation.", label="Latency", elem_id="latency")
    inputs = [prompt, backend, steps, batch_size, precision, seed, model, scheduler, compile_, tiny_decoder,
              match_concepts, negative_prompt, engine, quantize, pruned, guidance_cutoff, upscale, best_of, layout]
    gr.on([button.click, prompt.submit], generate, inputs, [gallery, latency], api_name="generate",
          concurrency_id="models")


def generate_preparation() -> Preparation:
    """The Generate tab's default configuration, for the warm start (ui/warm_start.py): loaded, one untimed batch
    (first calls pay for lazy initialisation), and the judge that scores every result."""
    load = {name: value for name, value in GENERATE_DEFAULTS.items() if name not in ("steps", "batch_size")}

    def prepare(advance) -> None:
        advance(0)
        generator, _ = load_generator(**load)
        advance(1)
        result = generator.generate(WARM_UP_PROMPT, steps=GENERATE_DEFAULTS["steps"],
                                    batch_size=GENERATE_DEFAULTS["batch_size"], seed=0)
        advance(2)
        match_scores(result.images, WARM_UP_PROMPT)

    return Preparation(configuration_key(**load), "Generate",
                       ("loading the models", "a first, untimed batch", "loading the prompt-match judge"), prepare)


def start_warm_start(cluster: bool = False):
    """Once the server is up, Generate's then Live's default configuration prepared in a daemon thread (the page
    never waits for it); GENIMG_WARM_START=0 turns it off. Not on a cluster (its replicas hold the models) nor on a
    ZeroGPU Space (the GPU is attached inside events only). Returns the thread, or None."""
    if cluster or os.environ.get("SPACES_ZERO_GPU") or not ServingLimits.from_env().warm_start:
        return None
    return WARM_START.start([generate_preparation(), live_preparation()])


def build_one_image_api() -> None:
    """/generate_one: API only (hidden components), dynamically batched, see generate_one."""
    with gr.Group(visible=False):
        inputs = [gr.Textbox(label="Prompt"), gr.Dropdown(BACKEND_CHOICES, value="latent-lcm", label="Backend"),
                  number_input(gr.Slider(0, MAX_STEPS, value=4, step=1, label="Steps")),
                  gr.Dropdown(list(PRECISIONS), value="fp32", label="Precision"),
                  number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))]
        outputs = [gr.Image(type="pil", format="png", label="Image"), gr.JSON(label="Info")]
        trigger = gr.Button()
    if LIMITS.batching == "gradio":  # Gradio's queue hands one call up to max_batch_size waiting requests
        trigger.click(generate_one_batched, inputs, outputs, api_name="generate_one", concurrency_id="one-image",
                      batch=True, max_batch_size=LIMITS.max_batch_size, concurrency_limit=1)
        return
    # Callers wait inside generate_one while their batch runs, so more of them than a batch may be in there at once.
    trigger.click(generate_one, inputs, outputs, api_name="generate_one", concurrency_id="one-image",
                  concurrency_limit=2 * LIMITS.max_batch_size)


def build_demo() -> gr.Blocks:
    """The Blocks app, queue configured; builds the UI only (models load on the first request that needs them).
    Gradio's temporary files go under the genimg cache (GENIMG_CACHE) unless GRADIO_TEMP_DIR says otherwise."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(app_cache() / "gradio"))
    # Generated images and uploads older than UPLOADS.max_age_s are deleted on a schedule: the disk use stays flat.
    with gr.Blocks(title="genimg: fast text-to-image", analytics_enabled=False,
                   delete_cache=UPLOADS.delete_cache) as demo:
        gr.Markdown("# genimg\nFast text-to-image on small emoji models: see every millisecond, and what it buys.")
        with gr.Tab("Generate"):
            build_generate_tab()
        with gr.Tab("Live") as live_tab:
            build_live_tab(live_tab)
        with gr.Tab("Image to image"):
            build_img2img_tab()
        with gr.Tab("Compare"):
            build_compare_tab()
        with gr.Tab("Benchmark"):
            build_benchmark_tab(demo)
        with gr.Tab("About"):
            gr.Markdown(ABOUT)
        build_one_image_api()
    # Generations share one device: one at a time on a CPU, a few on a GPU (each generator also holds a lock).
    # Beyond queue_size waiting requests, callers are told the queue is full (HTTP 503) instead of waiting forever.
    concurrency = 1 if resolve_device("auto") == "cpu" else 3
    return demo.queue(default_concurrency_limit=concurrency, max_size=LIMITS.queue_size)


def app_cache() -> Path:
    return Path(os.environ.get("GENIMG_CACHE") or Path.home() / ".cache" / "genimg") / "app"


def launch(demo: gr.Blocks | None = None, **launch_options):
    """Launch with the app's theme and CSS; server name and port come from GRADIO_SERVER_NAME/PORT unless given.
    Files are served only from Gradio's cache and the benchmark folders: nothing else the app can read. Uploads are
    bounded per file (max_file_size) and, with the outputs, per folder (TempFolderGuard, genimg.serve.uploads); an app
    listening on loopback refuses requests addressed to another host name (DNS rebinding, see genimg.serve.hosts)."""
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    demo = demo or build_demo()
    logger.info(limit_malloc_arenas())  # resident memory stays flat over thousands of requests (serve/memory.py)
    use_one_torch_thread()  # every CPU generation on one thread: idle OpenMP pools of others slow it (genimg.threads)
    launch_options.setdefault("allowed_paths", [str(folder) for folder in BENCH_FOLDERS])
    launch_options.setdefault("max_file_size", UPLOADS.max_file_bytes)
    middleware = [Middleware(TempFolderGuard, folder=get_upload_folder(), limits=UPLOADS)]
    if is_loopback(launch_options.get("server_name") or os.environ.get("GRADIO_SERVER_NAME")):
        middleware.append(Middleware(LoopbackHostGuard))  # a local app answers only requests addressed to it
    # POST /v1/image: one image in one HTTP exchange (genimg.serve.rest). Not on a ZeroGPU Space, where the GPU is
    # attached only inside Gradio's events.
    cluster = os.environ.get("GENIMG_RAY_ADDRESS", "").strip()
    drawer = connect_cluster(cluster) if cluster else None  # generations on a Ray Serve cluster (docs/scaling.md)
    routes = [] if os.environ.get("SPACES_ZERO_GPU") else [image_route(one_image, 2 * LIMITS.max_batch_size,
                                                                       draw=drawer and drawer.draw)]
    launch_options.setdefault("app_kwargs", {"middleware": middleware, "routes": routes})
    # The server first, then the warm start: the page renders at once; then block as demo.launch would have.
    block = not launch_options.pop("prevent_thread_lock", False) and not getattr(sys, "ps1", sys.flags.interactive)
    launched = demo.launch(theme=THEME, css=CSS, prevent_thread_lock=True, **launch_options)
    start_warm_start(cluster=drawer is not None)
    if block:
        demo.block_thread()
    return launched


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The genimg web app (set-up and environment: docs/deployment.md).")
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help="draw on the genimg application of a Ray cluster (`python -m genimg serve`); ADDRESS "
                             "defaults to the cluster on this machine. Same as GENIMG_RAY_ADDRESS")
    args = parser.parse_args(argv)
    if args.ray:
        os.environ["GENIMG_RAY_ADDRESS"] = args.ray
    launch()


if __name__ == "__main__":
    main()
