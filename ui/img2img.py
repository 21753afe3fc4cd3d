"""The Image to image tab and its API (``/img2img``): an uploaded image, encoded by the latent model's autoencoder,
noised to ``strength`` and redrawn towards the prompt. genimg checks the upload (genimg.images.read_image)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

import genimg
from genimg.options import MAX_SEED, upscale_factor
from genimg.serve import report
from genimg.serve.reproduce import client_call, python_call, reproduce_markdown
from ui.common import LIMITS, UPSCALE_INFO, embedded_upscale, gpu, number_input, raw_upload, user_errors
from ui.generation import checked_model, match_scores

IMG2IMG_BACKENDS = ["latent-lcm", "latent"]  # the embedded latent models; 'latent' + model: a diffusers pipeline
# Pictures to start from, one click each: drawn by genimg itself (python -m tools.draw_examples), shipped in
# EXAMPLES_FOLDER. (file stem, what it was drawn as, the prompt to redraw it towards, strength)
EXAMPLES_FOLDER = Path(__file__).resolve().parents[1] / "assets" / "examples"
EXAMPLES = [("heart", "red heart", "broken heart", 0.7), ("apple", "red apple", "green apple", 0.7),
            ("face", "grinning face", "smiling face with sunglasses", 0.7), ("car", "automobile", "bus", 0.7)]


@gpu()
def img2img(image: str, prompt: str, backend: str = "latent-lcm", strength: float = 0.5, steps: int = 2,
            seed: int = 0, tiny_decoder: bool = True, negative_prompt: str = "", model: str = "",
            upscale: bool = True):
    """The redrawn image and its latency report (stages include ``image_encode``). ``model``: a diffusers SD-family
    pipeline (hub id, or a folder in assets/ or GENIMG_MODEL_DIRS) on the 'latent' backend; it decodes with its
    own autoencoder. ``upscale`` (on, as on the page): the embedded models' 64 px redrawing ends with the 2x upscaler
    (128 px); False: their own 64 px."""
    if image is None:
        raise gr.Error("Upload an image to start from (PNG, JPEG or WebP).")
    upscale, own_size = embedded_upscale(upscale, model)
    with user_errors():
        model = checked_model(model)
        if model:
            generator, tiny_decoder = genimg.load(backend, model=model), False
        else:
            generator = genimg.load(backend, tiny_decoder=bool(tiny_decoder), upscale=upscale_factor(upscale))
        result = generator.img2img(image, prompt, strength=strength, steps=steps or None, seed=seed,
                                   negative_prompt=negative_prompt or None, timeout_s=LIMITS.request_timeout_s)
        scores = match_scores(result.images, result.info["prompt"])
    info = result.info
    summary = (f"\n\nStrength {info['strength']:g}: {info['steps']} of a {info['schedule_steps']}-step schedule "
               f"ran from the encoded image" + (f" (raised to {info['effective_strength']:g}: the schedule has at "
                                                f"most {info['schedule_steps']} steps)"
                                                if info["effective_strength"] > info["strength"] + 1e-6 else "") + ".")
    options = dict(strength=strength, steps=info["steps"], seed=seed)
    options.update({"negative_prompt": negative_prompt} if negative_prompt else {})
    load = {"backend": backend, **({"model": model} if model else {"tiny_decoder": bool(tiny_decoder)}),
            **({"upscale": 2} if upscale else {})}
    code = reproduce_markdown(
        python_call(load, "img2img",
                    {"image": "input.png", "prompt": info["prompt"], **options}), None,
        client_call("/img2img", {"image": "input.png", "prompt": prompt, "backend": backend, **options,
                                 "tiny_decoder": bool(tiny_decoder), **({"model": model} if model else {}),
                                 "upscale": bool(upscale)},
                    files=("image",)))
    return result.images[0], report.latency_markdown(result, scores) + summary + own_size + "\n" + code


def build_img2img_tab() -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image = raw_upload(gr.Image(label="Start from", type="filepath", sources=["upload", "clipboard"],
                                        height=256, elem_id="img2img-input"))
            prompt = gr.Textbox("", label="Prompt", placeholder="a rocket", elem_id="img2img-prompt")
            with gr.Row():
                backend = gr.Dropdown(IMG2IMG_BACKENDS, value="latent-lcm", label="Backend")
                strength = number_input(gr.Slider(0.05, 1, value=0.5, step=0.05, label="Strength",
                                                  info="how much is redrawn: 0 keeps the image, 1 starts from noise"))
            with gr.Row():
                steps = number_input(gr.Slider(1, 50, value=2, step=1, label="Steps", info="steps that run"))
                seed = number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
            upscale = gr.Checkbox(value=True, label="Upscale 2x (128 px)", elem_id="img2img-upscale",
                                  info=UPSCALE_INFO)
            with gr.Accordion("More options", open=False):
                tiny_decoder = gr.Checkbox(value=True, label="Tiny decoder (decodes only; the KL encoder encodes)")
                negative_prompt = gr.Textbox("", label="Negative prompt (latent backend, guidance > 1)")
                model = gr.Textbox("", label="Diffusers model (latent backend)", placeholder="owner/name or a folder",
                                   info="an SD 1.x/2.x, SD-Turbo, LCM or SDXL pipeline, decoded by its own VAE")
            button = gr.Button("Redraw", variant="primary", elem_id="img2img-button")
            gr.Examples([[str(EXAMPLES_FOLDER / f"{name}.png"), prompt_text, strength_value]
                         for name, _, prompt_text, strength_value in EXAMPLES],
                        inputs=[image, prompt, strength], label="Start from an example", cache_examples=False,
                        elem_id="img2img-examples")
            gr.Markdown("The image is fitted into the model's pixels (64x64 for the embedded models) on white, "
                        "and the redrawing upscaled 2x unless you untick it. PNG, JPEG or WebP.")
        with gr.Column(scale=3):
            output = gr.Image(label="Redrawn", type="pil", format="png", interactive=False, height=320,
                              elem_id="img2img-output", elem_classes=["pixelated", "upscaled"])
            latency = gr.Markdown("Latency appears here after a redraw.", elem_id="img2img-latency")
    # upscale last: older API callers' positions stay valid.
    inputs = [image, prompt, backend, strength, steps, seed, tiny_decoder, negative_prompt, model, upscale]
    gr.on([button.click, prompt.submit], img2img, inputs, [output, latency], api_name="img2img",
          concurrency_id="models")
