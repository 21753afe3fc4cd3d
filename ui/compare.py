"""The Compare tab and its API (``/compare``): the same prompt and seed through 2-4 configurations, each warmed up
(timed apart) then timed ``repeats`` times; images, latency spread, results table, CSV/JSON downloads and the code
that reproduces it."""
from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import gradio as gr

from genimg.options import MAX_SEED, MAX_STEPS, PRECISIONS, resolve_device
from genimg.serve import report
from genimg.serve.reproduce import reproduce_compare
from ui.common import (BACKEND_CHOICES, ENGINE_CHOICES, GUIDANCE_CUTOFF_CHOICES, OFF, QUANTIZE_CHOICES,
                       SCHEDULER_CHOICES, UPSCALE_INFO, gpu, number_input, pruned_models_present, user_errors)
from ui.generation import load_generator, match_scores, run_generation

# Timed runs per Compare configuration (after a warm-up run, reported apart): median and p90 need a few.
DEFAULT_REPEATS, MAX_REPEATS = 5, 20
# Default comparison (also the /compare API defaults): the teacher, its distilled student, the student with the
# tiny decoder, the one-pass GAN; each upscaled 2x (128 px), as every tab draws by default.
COMPARE_DEFAULTS = [("latent", 20, False), ("latent-lcm", 4, False), ("latent-lcm", 2, True), ("gan", 1, False)]
# The "64 vs 128 px" preset: each model at its own 64 px, then the same with the 2x upscaler (backend, steps, tiny
# decoder, upscale): the sharpness and what it costs, side by side.
UPSCALE_PRESET = [("latent-lcm", 1, True, False), ("latent-lcm", 1, True, True), ("gan", 1, False, False),
                  ("gan", 1, False, True)]
# The "four families" preset: one composition drawn by every family (backend, steps, tiny decoder).
FAMILIES_PROMPT = "a blue rocket above a red car"
FAMILIES_PRESET = [("latent", 20, False), ("latent-lcm", 2, True), ("gan", 1, False), ("vae", 1, False)]
# Compare downloads older than this are deleted when new ones are written.
DOWNLOADS_KEEP_S = 3600


def write_downloads(rows: list[dict], prompt: str, seed: int) -> list[str]:
    """CSV and JSON in Gradio's cache folder (the only place the app writes), older ones deleted."""
    from gradio.utils import get_upload_folder

    downloads = Path(get_upload_folder()) / "genimg-downloads"
    for old in downloads.glob("*") if downloads.exists() else []:
        if time.time() - old.stat().st_mtime > DOWNLOADS_KEEP_S:
            shutil.rmtree(old, ignore_errors=True)
    paths = report.write_comparison(rows, downloads / uuid.uuid4().hex, prompt=prompt, seed=seed,
                                    device=resolve_device("auto"))
    return [str(path) for path in paths]


def checked_repeats(repeats) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, (int, float)) or repeats != int(repeats) \
            or not 1 <= repeats <= MAX_REPEATS:
        raise gr.Error(f"Repeats must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}.")
    return int(repeats)


@gpu(configurations=len(COMPARE_DEFAULTS))  # up to four configurations, one after another
def compare(prompt: str, seed: int = 0,
            backend_1: str = "latent", precision_1: str = "fp32", steps_1: int = 20, scheduler_1: str = "default",
            tiny_decoder_1: bool = False,
            backend_2: str = "latent-lcm", precision_2: str = "fp32", steps_2: int = 4, scheduler_2: str = "default",
            tiny_decoder_2: bool = False,
            backend_3: str = "latent-lcm", precision_3: str = "fp32", steps_3: int = 2, scheduler_3: str = "default",
            tiny_decoder_3: bool = True,
            backend_4: str = "gan", precision_4: str = "fp32", steps_4: int = 1, scheduler_4: str = "default",
            tiny_decoder_4: bool = False, repeats: int = DEFAULT_REPEATS,
            engine_1: str = "torch", quantize_1: str = "none", engine_2: str = "torch", quantize_2: str = "none",
            engine_3: str = "torch", quantize_3: str = "none", engine_4: str = "torch", quantize_4: str = "none",
            pruned_1: bool = False, pruned_2: bool = False, pruned_3: bool = False, pruned_4: bool = False,
            guidance_cutoff_1: float = 1.0, guidance_cutoff_2: float = 1.0, guidance_cutoff_3: float = 1.0,
            guidance_cutoff_4: float = 1.0, upscale_1: bool = True, upscale_2: bool = True,
            upscale_3: bool = True, upscale_4: bool = True, progress=gr.Progress()):
    """Run 2-4 configurations on the same prompt and seed, first one as baseline: each one's first call (warm-up)
    is timed apart, then ``repeats`` timed runs give the median and p90 per stage. ``upscale_N`` (on, as on the
    page): 128 px from the 2x upscaler; False: the model's own 64 px.

    Returns the captioned images, the chart of every run's latency, the results table, the CSV + JSON downloads
    and the code that reproduces it.
    """
    import pandas as pd

    columns = [(backend_1, precision_1, steps_1, scheduler_1, tiny_decoder_1, engine_1, quantize_1, pruned_1,
                guidance_cutoff_1, upscale_1),
               (backend_2, precision_2, steps_2, scheduler_2, tiny_decoder_2, engine_2, quantize_2, pruned_2,
                guidance_cutoff_2, upscale_2),
               (backend_3, precision_3, steps_3, scheduler_3, tiny_decoder_3, engine_3, quantize_3, pruned_3,
                guidance_cutoff_3, upscale_3),
               (backend_4, precision_4, steps_4, scheduler_4, tiny_decoder_4, engine_4, quantize_4, pruned_4,
                guidance_cutoff_4, upscale_4)]
    configs = [dict(backend=b, precision=p, steps=s, scheduler=sc, tiny_decoder=bool(t), engine=e or "torch",
                    quantize=q or "none", pruned=bool(pr), guidance_cutoff=1.0 if g in (None, "") else g,
                    upscale=bool(u))
               for b, p, s, sc, t, e, q, pr, g, u in columns if b and b != OFF]
    if len(configs) < 2:
        raise gr.Error("Choose at least two configurations to compare (set the others' backend to 'off').")
    repeats = checked_repeats(repeats)
    gallery, rows = [], []
    with user_errors():
        for index, config in enumerate(configs, start=1):
            progress(0, desc=f"{index}/{len(configs)}: loading {config['backend']}")
            generator, _ = load_generator(config["backend"], config["precision"], "", config["scheduler"],
                                          False, config["tiny_decoder"], True, config["engine"], config["quantize"],
                                          config["pruned"], config["guidance_cutoff"], config["upscale"])
            single_pass = generator.default_steps is None
            steps = None if single_pass else config["steps"]
            # The first call of a configuration (lazy initialisation, caches) is timed, but apart from the repeats.
            warm_up = run_generation(generator, prompt, steps, 1, seed, progress, label=f"{index}/{len(configs)}: ")
            results = [run_generation(generator, prompt, steps, 1, seed, progress,
                                      label=f"{index}/{len(configs)}: run {run}/{repeats}: ")
                       for run in range(1, repeats + 1)]
            result = results[0]
            label = report.config_label(index, **config, single_pass=single_pass)
            score = match_scores(result.images, result.info["prompt"], result.info.get("layout"))[0]
            row = report.compare_row(label, config, results, score, rows[0]["latency_ms"] if rows else None,
                                     warm_up_ms=warm_up.timings["total"])
            rows.append(row)
            # Captions stay short; the table below names each configuration in full.
            gallery.append((result.images[0], f"{index}: {row['latency_ms']:,.0f} ms · {row['speedup']:.2f}x · "
                                              f"match {score:.0f}"))
    chart = pd.DataFrame([{"config": row["config"], "run": run, "latency_ms": ms}
                          for row in rows for run, ms in enumerate(row["runs_ms"], start=1)])
    table = pd.DataFrame(report.compare_table(rows))
    code = reproduce_compare(prompt, seed, configs, repeats)
    return gallery, chart, table, write_downloads(rows, result.info["prompt"], result.info["seed"]), code


def build_compare_tab() -> None:
    prompt = gr.Textbox(label="Prompt", value="a slice of pizza")
    with gr.Row():
        seed = number_input(gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
        repeats = number_input(gr.Slider(1, MAX_REPEATS, value=DEFAULT_REPEATS, step=1, label="Repeats",
                                         info="timed runs per configuration, after one warm-up run timed apart"))
    # Engine, pruned, guidance, then upscale inputs go last: older API callers' positions stay valid.
    config_inputs, engine_inputs, pruned_inputs, cutoff_inputs, upscale_inputs = [], [], [], [], []
    with gr.Row():
        for index, (default_backend, default_steps, default_tiny) in enumerate(COMPARE_DEFAULTS, start=1):
            with gr.Column(min_width=180):
                gr.Markdown(f"**Configuration {index}**" + (" (baseline)" if index == 1 else ""))
                config_inputs += [
                    gr.Dropdown(BACKEND_CHOICES + [OFF], value=default_backend, label="Backend"),
                    gr.Dropdown(list(PRECISIONS), value="fp32", label="Precision"),
                    number_input(gr.Slider(1, MAX_STEPS, value=default_steps, step=1, label="Steps")),
                    gr.Dropdown(SCHEDULER_CHOICES, value="default", label="Scheduler"),
                    gr.Checkbox(value=default_tiny, label="Tiny decoder"),
                ]
                engine_inputs += [gr.Dropdown(ENGINE_CHOICES, value="torch", label="Engine"),
                                  gr.Dropdown(QUANTIZE_CHOICES, value="none", label="Quantize")]
                pruned_inputs.append(gr.Checkbox(value=False, label="Pruned (gan, latent)",
                                                 visible=pruned_models_present()))
                cutoff_inputs.append(gr.Dropdown(GUIDANCE_CUTOFF_CHOICES, value=1.0, label="Guidance on"))
                upscale_inputs.append(gr.Checkbox(value=True, label="Upscale 2x (128 px)", info=UPSCALE_INFO))
    with gr.Row():
        preset = gr.Button("Preset: 64 vs 128 px (the upscaler)", size="sm", elem_id="compare-upscale-preset")
        families = gr.Button("Preset: the four families on one composition", size="sm",
                             elem_id="compare-families-preset")
        button = gr.Button("Compare", variant="primary")
    gallery = gr.Gallery(label="Same prompt, same seed", columns=4, height=300, format="png", object_fit="contain",
                         elem_classes=["pixelated", "wrap-captions"], elem_id="compare-gallery")
    table = gr.Dataframe(label="Results: median and p90 of the repeats (speed-up vs configuration 1)",
                         interactive=False)
    chart = gr.ScatterPlot(x="config", y="latency_ms", color="config", title="Every timed run (ms, lower is faster)",
                           sort=None, label="Latency spread", x_title="configuration", y_title="ms",
                           x_label_angle=-15, height=320)
    downloads = gr.File(label="Download results (CSV, JSON)", file_count="multiple")
    code = gr.Markdown(elem_id="compare-code")
    button.click(compare, [prompt, seed, *config_inputs, repeats, *engine_inputs, *pruned_inputs, *cutoff_inputs,
                           *upscale_inputs],
                 [gallery, chart, table, downloads, code], api_name="compare", concurrency_id="models")
    preset.click(upscale_preset, None, [*config_inputs, *upscale_inputs], api_visibility="private", queue=False)
    families.click(families_preset, None, [prompt, *config_inputs], api_visibility="private", queue=False)


def families_preset() -> list:
    """The prompt and every configuration input (five per column) for the "four families" preset."""
    columns = [[backend, "fp32", steps, "default", tiny] for backend, steps, tiny in FAMILIES_PRESET]
    return [FAMILIES_PROMPT] + [value for column in columns for value in column]


def upscale_preset() -> list:
    """The values of every configuration input for the "64 vs 128 px" preset (see UPSCALE_PRESET), in the order
    build_compare_tab lists them: five per column (backend, precision, steps, scheduler, tiny decoder), then the
    four upscale checkboxes."""
    columns = [[backend, "fp32", steps, "default", tiny] for backend, steps, tiny, _ in UPSCALE_PRESET]
    return [value for column in columns for value in column] + [upscale for *_, upscale in UPSCALE_PRESET]
