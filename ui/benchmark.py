"""The Benchmark tab: what ``python -m genimg bench`` found, from files only (it never runs the benchmark). Per model
family the fastest configuration, its speed-ups over stock diffusers and the fastest peer, what it costs in
prompt-match, the machine and the date (genimg.bench.findings); the speed-vs-quality plot; every table folded below.
A run of the visitor's own (``outputs/bench/``) takes the shipped reports' place after **Reload**."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from genimg.bench.findings import benchmark_page

ROOT = Path(__file__).resolve().parents[1]
# This machine's runs first, then the shipped ones: the first folder holding results is shown.
BENCH_FOLDERS = (ROOT / "outputs" / "bench", ROOT / "assets" / "bench")
NO_RESULTS = ("No benchmark results yet. Run `python -m genimg bench` (it writes `outputs/bench/`), then press "
              "**Reload**. This tab shows results from files only; it does not run the benchmark.")


def bench_results() -> tuple[str | None, str, str]:
    """The plot, the findings and the full tables of the benchmark reports on disk (see genimg.bench.findings)."""
    return benchmark_page(BENCH_FOLDERS, ROOT) or (None, NO_RESULTS, "")


def build_benchmark_tab(demo: gr.Blocks) -> None:
    gr.Markdown("How fast genimg is against stock diffusers and its fastest peer, as `python -m genimg bench` "
                "measured it: the findings and the speed-vs-quality plot first, every table below. A run of your "
                "own (`outputs/bench/`) takes their place after **Reload**.")
    summary = gr.Markdown(elem_id="bench-summary")
    plot = gr.Image(label="Speed against prompt-match", show_label=False, type="filepath", interactive=False,
                    height=520, elem_id="bench-plot")
    with gr.Accordion("Full tables", open=False, elem_id="bench-tables"):
        tables = gr.Markdown()
    reload_button = gr.Button("Reload")
    gr.on([demo.load, reload_button.click], bench_results, None, [plot, summary, tables], api_visibility="private",
          queue=False)
