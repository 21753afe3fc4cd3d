"""The Live tab: the image redraws while the prompt is typed, no button. The fastest good configuration by default
(the distilled model, 1 step, tiny decoder, OpenVINO, the text encoder's weights in int8, bf16 where the CPU computes
it natively), sharpened to 128 px by the 2x upscaler; the latency of each redraw under the image. API: ``/live``.

The page's own event is built for typing speed (docs/serving.md, "Live"): it skips Gradio's queue (one HTTP request
per redraw, no event stream), its image travels inside that answer as a data: URL (no file written, no second request
to fetch it), and a prompt drawn as the same emoji with the same seed as the image on screen only updates the latency
line. The newest prompt always wins: while a redraw runs, the page keeps only the latest change (trigger_mode
"always_last") and sends it when the answer is in. ``/live``, for API callers, answers with a file as before.
"""
from __future__ import annotations

import base64
import io
import os

import gradio as gr
from gradio.data_classes import ImageData

from genimg.hardware import cpu_has_native_bf16
from genimg.options import MAX_SEED, PRECISIONS, upscale_factor
from genimg.serve import report
from genimg.serve.reproduce import reproduce_generation
from ui.common import UPSCALE_INFO, gpu, number_input, user_errors
from ui.generation import WARM_UP_PROMPT, configuration_key, load_generator, one_image
from ui.warm_start import WARM_START, Preparation

LIVE_BACKEND = "latent-lcm"  # the distilled student: no unconditional pass, 1-4 steps
LIVE_MAX_STEPS = 4
EMPTY_MESSAGE = "Type a prompt: the image redraws as you type."
# Engine choice -> the options it loads with. OpenVINO: the UNet and decoder converted once (cached on disk) and the
# text encoder with int8 weights, the stage that dominates when every key press is a new prompt.
LIVE_ENGINES = {"openvino": {"engine": "openvino", "text_engine": "openvino-int8"}, "torch": {}}
# bf16 where the CPU computes it natively (AVX-512 BF16, AMX): on the 2-core AMD EPYC (Zen 4) a new prompt takes
# 14.2 ms against 16.9 in fp32, prompt-match within 1 point (docs/serving.md, "Live"). Elsewhere bf16 is emulated
# and slower.
LIVE_PRECISION = "bf16" if cpu_has_native_bf16() else "fp32"


def live_options(tiny_decoder: bool, engine: str, upscale: bool = True) -> dict:
    if engine not in LIVE_ENGINES:
        raise gr.Error(f"Unknown engine {engine!r}: choose one of {', '.join(LIVE_ENGINES)}.")
    # upscale: 128 px from the 2x upscaler (a few ms more per redraw; its time is the stage "upscale")
    return {"tiny_decoder": bool(tiny_decoder), **LIVE_ENGINES[engine],
            **({"upscale": upscale_factor(upscale)} if upscale else {})}


def live_result(prompt: str, seed: int, steps: int, precision: str, tiny_decoder: bool, engine: str,
                shown: tuple | None = None, upscale: bool = True):
    """One redraw (or none: see ui.generation.one_image's ``shown``), its latency line and the code that reproduces
    it; (None, the empty message, "") for an empty prompt, which is not an error, so typing never flashes one."""
    if not isinstance(prompt, str) or not prompt.strip():
        return None, EMPTY_MESSAGE, ""
    options = live_options(tiny_decoder, engine, upscale)
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or not 1 <= steps <= LIVE_MAX_STEPS:
        raise gr.Error(f"Live draws with 1 to {LIVE_MAX_STEPS} steps, got {steps!r}.")
    with user_errors():
        result = one_image(prompt, LIVE_BACKEND, steps, precision, seed, speed_options=options, shown=shown)
    code = reproduce_generation({"backend": LIVE_BACKEND, "precision": precision, **options},
                                {"prompt": result.info["prompt"], "steps": result.info["steps"], "seed": seed},
                                "/live", {"prompt": prompt, "seed": seed, "steps": steps, "precision": precision,
                                          "tiny_decoder": bool(tiny_decoder), "engine": engine,
                                          "upscale": bool(upscale)})
    return result, report.live_markdown(result), code


@gpu()
def live(prompt: str, seed: int = 0, steps: int = 1, precision: str = LIVE_PRECISION, tiny_decoder: bool = True,
         engine: str = "openvino", upscale: bool = True):
    """``/live``: one redraw, the image (a file) and a one-line latency report with the code that reproduces it.
    ``upscale`` (on, as on the page): 128 px from the 2x upscaler; False: the model's own 64 px."""
    result, text, code = live_result(prompt, seed, steps, precision, tiny_decoder, engine, upscale=upscale)
    return (None if result is None else result.images[0]), text + "\n" + code


def live_page(prompt: str, seed: int, steps: int, precision: str, tiny_decoder: bool, engine: str, upscale: bool,
              shown):
    """The page's redraw: the image (inline), the latency line, the code (in a closed accordion: the page renders it
    when opened, not on every key press) and what the image on screen now shows (the session's state). An unchanged
    drawing leaves the image as it is (gr.skip: nothing is sent)."""
    result, text, code = live_result(prompt, seed, steps, precision, tiny_decoder, engine, shown, upscale)
    if result is None:
        return None, text, code, None
    if not result.info["redrawn"]:
        return gr.skip(), text, code, shown
    return result.images[0], text, code, result.info["drawing"]


def inline_image(component: gr.Image) -> gr.Image:
    """The image goes out inside the event's answer as a PNG data: URL: no file in Gradio's cache and no second
    request for the browser to fetch it (a 128 px emoji is a few kB). Wrapped on the instance, as number_input does."""

    def postprocess(value):
        if value is None:
            return None
        buffer = io.BytesIO()
        value.save(buffer, format="PNG", compress_level=1)  # 64-128 px: level 1 costs well under a millisecond
        return ImageData(url="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
                         orig_name="live.png", mime_type="image/png")

    component.postprocess = postprocess
    return component


def live_key(precision: str, tiny_decoder: bool, engine: str, upscale: bool = True) -> tuple:
    """The cached generator a Live redraw with these options uses (ui.generation.configuration_key)."""
    return configuration_key(LIVE_BACKEND, precision, **live_options(tiny_decoder, engine, upscale))


def live_preparation() -> Preparation:
    """The page's default Live configuration, for the warm start (ui.warm_start): loaded, then one untimed image
    (OpenVINO converts its models or reads them from the disk cache, and compiles them for batch 1)."""

    def prepare(advance) -> None:
        advance(0)
        load_generator(LIVE_BACKEND, LIVE_PRECISION, **live_options(True, "openvino"))
        advance(1)
        live_result(WARM_UP_PROMPT, 0, 1, LIVE_PRECISION, True, "openvino")

    return Preparation(live_key(LIVE_PRECISION, True, "openvino"), "Live",
                       ("loading the distilled model and the upscaler",
                        "converting to OpenVINO (read from the disk cache after the first start) and compiling"),
                       prepare)


def warm_up_live() -> None:
    """Loads the default Live configuration and draws one image, when the Live tab opens, so the first key press
    does not pay for it; nothing to do where the warm start prepares it (or has)."""
    if WARM_START.preparation(live_key(LIVE_PRECISION, True, "openvino")) is not None:
        return
    try:
        live_result(WARM_UP_PROMPT, 0, 1, LIVE_PRECISION, True, "openvino")
    except gr.Error:  # the first key press reports whatever went wrong, with its message
        pass


@gpu()
def live_page_event(prompt: str, seed: int, steps: int, precision: str, tiny_decoder: bool, engine: str,
                    upscale: bool, shown):
    """The page's redraw (``live_page``) and the retry timer's state. While the warm start still prepares this
    configuration, nothing waits: the latency line says so (with the step and the seconds so far), the image stays,
    and the timer, switched on, asks again each second until the picture can be drawn."""
    return redraw_or_wait(prompt, seed, steps, precision, tiny_decoder, engine, upscale, shown)


def redraw_or_wait(prompt, seed, steps, precision, tiny_decoder, engine, upscale, shown):
    """live_page_event's work, undecorated (live_retry calls it too)."""
    try:
        message = isinstance(prompt, str) and prompt.strip() and WARM_START.message(
            live_key(precision, tiny_decoder, engine, upscale))
    except gr.Error:  # an unknown engine: live_page says so
        message = None
    if message:
        return gr.skip(), f"**{message}**: the picture appears as soon as it is ready.", gr.skip(), shown, \
            gr.Timer(active=True)
    return *live_page(prompt, seed, steps, precision, tiny_decoder, engine, upscale, shown), gr.Timer(active=False)


@gpu()
def live_retry(prompt: str, seed: int, steps: int, precision: str, tiny_decoder: bool, engine: str, upscale: bool,
               shown):
    """The retry timer's tick: ``live_page_event``, whose error (a preparation that failed, then a load that fails
    again) goes to the latency line and stops the timer instead of raising once a second."""
    try:
        return redraw_or_wait(prompt, seed, steps, precision, tiny_decoder, engine, upscale, shown)
    except gr.Error as error:
        return gr.skip(), f"**{error.message}**", gr.skip(), shown, gr.Timer(active=False)


def build_live_tab(tab: gr.Tab | None = None) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt (the image redraws as you type)", placeholder="a red heart",
                                elem_id="live-prompt")
            with gr.Accordion("Options", open=False):
                seed = number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                steps = number_input(gr.Slider(1, LIVE_MAX_STEPS, value=1, step=1, label="Steps"))
                precision = gr.Dropdown(list(PRECISIONS), value=LIVE_PRECISION, label="Precision")
                tiny_decoder = gr.Checkbox(value=True, label="Tiny decoder")
                engine = gr.Dropdown(list(LIVE_ENGINES), value="openvino", label="Engine",
                                     info="openvino: converted once (cached on disk), text encoder in int8")
                upscale = gr.Checkbox(value=True, label="Upscale 2x (128 px)", info=UPSCALE_INFO)
            gr.Examples([["a red heart"], ["a blue rocket above a car"], ["three stars"], ["a cat left of a guitar"]],
                        inputs=[prompt], cache_examples=False)
            gr.Markdown("The distilled model (`latent-lcm`) draws each image. While one redraw runs, the newest "
                        "prompt waits and older ones are dropped, so the picture always catches up with the text. "
                        "A prompt that names the same emoji as the picture keeps the picture.")
        with gr.Column(scale=3):
            image = inline_image(gr.Image(label="Live", type="pil", format="png", interactive=False, height=320,
                                          elem_id="live-image", elem_classes=["pixelated", "upscaled"]))
            latency = gr.Markdown(EMPTY_MESSAGE, elem_id="live-latency")
            with gr.Accordion("Copy as code", open=False):
                code = gr.Markdown("", elem_id="live-code")
    shown = gr.State(None)  # what the image on screen was drawn as (ui.generation.one_image's info["drawing"])
    retry = gr.Timer(1.0, active=False)  # on only while the warm start prepares this configuration
    inputs = [prompt, seed, steps, precision, tiny_decoder, engine, upscale]
    # .change, not .input: clearing the box must reach the server too (gradio sends no .input for an empty box).
    # always_last: while a redraw runs, only the newest prompt is kept for the next one (stale ones are dropped).
    # queue=False: one HTTP request per redraw, no queue join and event stream. Its concurrency is the browser's: one
    # redraw in flight per page; the generator's lock and micro-batcher order the pages among themselves. On a ZeroGPU
    # Space, which attaches the GPU inside queued events only, it stays queued.
    redraw = dict(inputs=inputs + [shown], outputs=[image, latency, code, shown, retry], trigger_mode="always_last",
                  show_progress="hidden", show_progress_on=[shown], queue=bool(os.environ.get("SPACES_ZERO_GPU")),
                  api_visibility="private")
    gr.on([prompt.change, seed.change, steps.change, precision.change, tiny_decoder.change, engine.change,
           upscale.change], live_page_event, **redraw)
    retry.tick(live_retry, **redraw)
    if tab is not None:
        tab.select(warm_up_live, None, None, queue=False, show_progress="hidden", api_visibility="private")
    build_live_api()


def build_live_api() -> None:
    """``/live`` for API callers (gradio_client): the same redraw, the image as a file, through Gradio's queue in its
    own concurrency group (a long Generate or Compare run elsewhere does not hold it)."""
    with gr.Group(visible=False):
        inputs = [gr.Textbox(label="Prompt"),
                  number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")),
                  number_input(gr.Slider(1, LIVE_MAX_STEPS, value=1, step=1, label="Steps")),
                  gr.Dropdown(list(PRECISIONS), value=LIVE_PRECISION, label="Precision"),
                  gr.Checkbox(value=True, label="Tiny decoder"),
                  gr.Dropdown(list(LIVE_ENGINES), value="openvino", label="Engine"),
                  gr.Checkbox(value=True, label="Upscale 2x (128 px)")]
        outputs = [gr.Image(type="pil", format="png", label="Live"), gr.Markdown()]
        trigger = gr.Button()
    trigger.click(live, inputs, outputs, api_name="live", concurrency_id="live", concurrency_limit=1)
