"""The GPU benchmark's report (``python -m genimg.bench.gpu``): the card's dense peak, the share of it each row uses,
the targets each row is held to (printed hit / missed, never asserted), and the Markdown tables."""
from __future__ import annotations

from dataclasses import dataclass

# Dense (no sparsity) fp16/bf16 tensor-core peak in TFLOP/s from the vendors' datasheets, keyed by a piece of the name
# torch.cuda.get_device_name() gives; the first key found in the name wins (so the H100 variants come before "H100").
PEAK_DENSE_FP16_TFLOPS = {
    "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0,  # "NVIDIA H100 80GB HBM3" is the SXM part
    "H200": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "RTX 4090": 165.0, "A10G": 70.0,
}


def peak_tflops(device_name: str) -> float | None:
    """The card's dense fp16 peak from the table, or None for a card (or CPU) it does not know."""
    return next((peak for key, peak in PEAK_DENSE_FP16_TFLOPS.items() if key in device_name), None)


@dataclass(frozen=True)
class Target:
    """One row's target: ``metric`` of the row picked by ``kind`` at ``batch_size`` on ``architecture``."""

    architecture: str
    batch_size: int
    kind: str  # "compiled tiny" / "compiled KL": the compiled fp16 row with that decoder
    metric: str  # "ms" (at most), "x stock" (at least) or "images/s" (at least)
    bound: float
    card: str = ""  # the bound holds on this card ("H100"); empty: any

    def describe(self) -> str:
        sign = "<=" if self.metric == "ms" else ">="
        return (f"{self.architecture} batch {self.batch_size}, {self.kind}: {self.metric} {sign} {self.bound:g}"
                + (f" (on an {self.card})" if self.card else ""))


TARGETS = [
    Target("sd-turbo", 1, "compiled tiny", "ms", 6.0), Target("sd-turbo", 1, "compiled KL", "ms", 12.0),
    Target("sd15", 1, "compiled tiny", "ms", 30.0), Target("sd15", 1, "compiled KL", "ms", 40.0),
    Target("sd15", 1, "compiled KL", "x stock", 4.0),
    Target("sd-turbo", 8, "compiled tiny", "images/s", 480.0, card="H100"),
]
WARM_FIRST_IMAGE_S = 30.0  # a warm compile cache brings the first compiled image (load + first call) under this


def row_kind(row: dict) -> str | None:
    """'compiled tiny' / 'compiled KL' for the compiled, unquantised genimg rows; None for the others."""
    options = row.get("options") or {}
    if not options.get("compile") or options.get("quantize"):
        return None
    return "compiled tiny" if options.get("tiny_decoder") else "compiled KL"


def check_targets(report: dict) -> list[dict]:
    """Each target this run has a row for, with the measured value and hit / missed; the warm first image too."""
    checks = []
    for target in TARGETS:
        for result in report["results"]:
            # Tiny mode's "sd-turbo-tiny" is held to sd-turbo's targets: the table is proven before GPU time is spent.
            if (result["architecture"].removesuffix("-tiny") != target.architecture
                    or result["batch_size"] != target.batch_size):
                continue
            row = next((row for row in result["rows"] if row_kind(row) == target.kind), None)
            if row is None:
                continue
            value = {"ms": row["median_ms_per_image"], "x stock": row["speedup_vs_stock"],
                     "images/s": row["images_per_s"]}[target.metric]
            hit = value <= target.bound if target.metric == "ms" else value >= target.bound
            checks.append({"target": target.describe(), "row": row["label"], "value": value,
                           "verdict": "hit" if hit else "missed"})
    first = first_compiled_image(report)
    if first is not None:
        load = (report.get("compile_cache") or {}).get("load", {})
        warm = load.get("loaded", False)
        first["seconds"] += load.get("load_s", 0.0)  # reading the cache files is part of a warm start
        checks.append({"target": f"first compiled image (cache load + model load + first call) with a warm compile "
                                 f"cache: s <= {WARM_FIRST_IMAGE_S:g}", "row": first["label"],
                       "value": first["seconds"],
                       "verdict": ("hit" if first["seconds"] <= WARM_FIRST_IMAGE_S else "missed") if warm
                       else "not measured: the cache was cold (this is the cold figure)"})
    return checks


def first_compiled_image(report: dict) -> dict | None:
    """The first compiled row of the run: its load and first call, in seconds (compile, autotuning, capture)."""
    for result in report["results"]:
        for row in result["rows"]:
            if (row.get("options") or {}).get("compile"):
                return {"label": f"{result['architecture']} batch {result['batch_size']}: {row['label']}",
                        "seconds": (row["load_ms"] + row["first_call_ms"]) / 1000}
    return None


def _gflop(flops: float | None) -> str:
    return "-" if not flops else f"{flops / 1e9:.3g}"


def _cell(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    """The report's tables: one per architecture and batch size, then the compile cache and the targets."""
    peak = report.get("peak_tflops")
    lines = [f"# genimg GPU benchmark: {report['device']}", "", "```", report["command"], "```", "",
             "Random weights, architectures built from configs and saved as pipeline folders; genimg's rows are "
             "`genimg.load(\"latent\", model=folder, ...)` generators. Median ms per image over interleaved rounds "
             "after warm-up; first call = the first generation at that batch size (compile, autotuning and CUDA-graph "
             "capture happen there; loading is apart). Pixels within 8 levels: the same noise through the same "
             "weights as stock diffusers with the same decoder (KL rows against stock, tiny-decoder rows against "
             "stock with the same AutoencoderTiny). x compiled: against the compiled KL-decoder row. Peak share: "
             f"FLOPs per image (FlopCounterMode on the stock pipeline, text encoder included) x images/s over the "
             f"card's dense fp16 peak ({_cell(peak, 0)} TFLOP/s; the fp8 and int8 rows too).", ""]
    for result in report["results"]:
        lines += [f"## {result['architecture']}: {result['resolution']}x{result['resolution']}, {result['steps']} "
                  f"steps, guidance {result['guidance']}, batch {result['batch_size']}, {result['dtype']}", "",
                  "| path | ms / image (min-max) | images/s | x stock | x compiled | decode ms | GFLOP / image | "
                  "peak share | first call s | load s | pixels within 8 | max pixel diff |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            share = row.get("peak_share")
            lines.append(
                f"| {row['label']} | {row['median_ms_per_image']:.1f} ({row['min_ms_per_image']:.1f}-"
                f"{row['max_ms_per_image']:.1f}) | {row['images_per_s']:.1f} | {row['speedup_vs_stock']:.2f} | "
                f"{_cell(row.get('speedup_vs_compiled'), 2)} | {_cell((row.get('stage_ms') or {}).get('decode'))} | "
                f"{_gflop(row.get('flops_per_image'))} | "
                f"{'-' if share is None else f'{100 * share:.1f}%'} | {row['first_call_ms'] / 1000:.1f} | "
                f"{row['load_ms'] / 1000:.1f} | {100 * row['pixels_within_8_of_stock']:.1f}% | "
                f"{row['max_pixel_diff_vs_stock']:.0f} |")
        lines.append("")
    measured = {(result["architecture"], result["batch_size"]) for result in report["results"]}
    unfinished = [call for call in report.get("first_calls", [])
                  if (call["architecture"], call["batch_size"]) not in measured]
    if unfinished:  # first calls (compile, autotuning) of a batch size whose timed rounds did not finish
        lines += ["## First calls without timed rounds yet", "",
                  "| architecture | batch | path | load s | first call s |", "|---|---|---|---|---|"]
        lines += [f"| {call['architecture']} | {call['batch_size']} | {call['label']} | {call['load_ms'] / 1000:.1f} | "
                  f"{call['first_call_ms'] / 1000:.1f} |" for call in unfinished]
        lines.append("")
    cache = report.get("compile_cache")
    if cache:
        load, save = cache.get("load", {}), cache.get("save", {})
        lines += ["## Compile cache", "",
                  f"- loaded before compiling: {'yes' if load.get('loaded') else 'no'} "
                  f"({load.get('reason') or load.get('artifacts')})",
                  f"- inductor graph cache: {cache.get('hits')}",
                  f"- saved after: {save.get('compressed_bytes', 0) / 2**20:.1f} MiB in {save.get('chunks', 0)} "
                  f"file(s), {save.get('artifacts') or save.get('reason')}", ""]
    checks = check_targets(report)
    if checks:
        lines += ["## Targets", "", "| target | row | measured | verdict |", "|---|---|---|---|"]
        lines += [f"| {check['target']} | {check['row']} | {check['value']:.2f} | {check['verdict']} |"
                  for check in checks]
        lines.append("")
    return "\n".join(lines)
