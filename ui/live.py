"""The Live tab: the image redraws while the prompt is typed, no button. The fastest good configuration by default
(the distilled model, 1 step, tiny decoder); the latency of each redraw under the image. API: ``/live``."""
from __future__ import annotations

import gradio as gr

import genimg
from genimg.options import MAX_SEED, PRECISIONS, upscale_factor
from genimg.serve import report
from genimg.serve.reproduce import reproduce_generation
from ui.common import LIMITS, gpu, number_input, user_errors

LIVE_BACKEND = "latent-lcm"  # the distilled student: no unconditional pass, 1-4 steps
LIVE_MAX_STEPS = 4
EMPTY_MESSAGE = "Type a prompt: the image redraws as you type."


@gpu()
def live(prompt: str, seed: int = 0, steps: int = 1, precision: str = "fp32", tiny_decoder: bool = True,
         upscale: bool = False):
    """One redraw: the image and a one-line latency report. An empty prompt (the box was cleared) draws nothing and
    is not an error, so typing never flashes one; anything else genimg refuses is. ``upscale``: 128 px from the 2x
    upscaler (a few ms more per redraw; its time is the stage "upscale")."""
    if not isinstance(prompt, str) or not prompt.strip():
        return None, EMPTY_MESSAGE
    with user_errors():
        generator = genimg.load(LIVE_BACKEND, precision=precision, tiny_decoder=bool(tiny_decoder),
                                upscale=upscale_factor(upscale))
        result = generator.generate(prompt, steps=steps, seed=seed, timeout_s=LIMITS.request_timeout_s)
    load = {"backend": LIVE_BACKEND, "precision": precision, "tiny_decoder": bool(tiny_decoder)}
    load.update({"upscale": 2} if upscale else {})
    code = reproduce_generation(load, {"prompt": result.info["prompt"], "steps": result.info["steps"], "seed": seed},
                                "/live", {"prompt": prompt, "seed": seed, "steps": steps, "precision": precision,
                                          "tiny_decoder": bool(tiny_decoder), **({"upscale": True} if upscale else {})})
    return result.images[0], report.live_markdown(result) + "\n" + code


def build_live_tab() -> None:
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt (the image redraws as you type)", placeholder="a red heart",
                                elem_id="live-prompt")
            with gr.Accordion("Options", open=False):
                seed = number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                steps = number_input(gr.Slider(1, LIVE_MAX_STEPS, value=1, step=1, label="Steps"))
                precision = gr.Dropdown(list(PRECISIONS), value="fp32", label="Precision")
                tiny_decoder = gr.Checkbox(value=True, label="Tiny decoder")
                upscale = gr.Checkbox(value=False, label="Upscale 2x (128 px)",
                                      info="the 2x upscaler: sharper, a few ms more per redraw")
            gr.Markdown("The distilled model (`latent-lcm`) draws each image. While one redraw runs, the newest "
                        "prompt waits and older ones are dropped, so the picture always catches up with the text.")
        with gr.Column(scale=3):
            image = gr.Image(label="Live", type="pil", format="png", interactive=False, height=320,
                             elem_id="live-image", elem_classes=["pixelated", "upscaled"])
            latency = gr.Markdown(EMPTY_MESSAGE, elem_id="live-latency")
    inputs = [prompt, seed, steps, precision, tiny_decoder, upscale]
    # .change, not .input: clearing the box must reach the server too (gradio sends no .input for an empty box).
    # always_last: while a redraw runs, only the newest prompt is kept for the next one (stale ones are dropped).
    # Its own concurrency group, so a long Generate or Compare run elsewhere does not hold the live redraws.
    gr.on([prompt.change, seed.change, steps.change, precision.change, tiny_decoder.change, upscale.change], live,
          inputs,
          [image, latency], api_name="live", trigger_mode="always_last", show_progress="hidden",
          concurrency_id="live", concurrency_limit=1)
