"""What a benchmark's measurements say (ratios to stock, the headline figures, the fastest configuration per
family) and the files that say it: JSON (everything), CSV (one row per configuration), a markdown table and a
speed-vs-quality scatter plot."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from genimg.bench.config import BenchConfig
from genimg.bench.engines import engine_lines
from genimg.bench.findings import family_findings, findings_table

CSV_COLUMNS = ("label", "backend", "options", "batch_size", "steps", "guidance", "median_ms", "q1_ms", "q3_ms",
               "min_ms", "max_ms", "images_per_s", "speedup_vs_stock", "same_steps_and_weights", "score",
               "first_call_ms", "load_ms", "first_generation_ms", "rss_delta_mb", "peak_memory_mb", "stages_ms",
               "notes")


def add_stock_ratios(rows: list[dict]) -> None:
    """``stock median / row median`` per image, against the stock row with the same (else the nearest) batch size."""
    stock_rows = [row for row in rows if row["backend"] == "stock"]
    for row in rows:
        if row["backend"] not in ("latent", "latent-lcm") or not stock_rows:
            continue
        stock = min(stock_rows, key=lambda s: (abs(s["batch_size"] - row["batch_size"]), s["batch_size"]))
        row["speedup_vs_stock"] = stock["latency_ms"]["median"] / row["latency_ms"]["median"]
        row["stock_reference"] = stock["label"]
        row["same_steps_and_weights"] = (row["backend"] == "latent" and row["steps"] == stock["steps"]
                                         and not row["config"]["tiny_decoder"]
                                         and row["batch_size"] == stock["batch_size"])


def _fastest(rows: list[dict], keep) -> dict | None:
    candidates = [row for row in rows if keep(row)]
    return min(candidates, key=lambda row: row["latency_ms"]["median"]) if candidates else None


def full_guidance(row: dict) -> bool:
    return row["config"].get("guidance_cutoff") is None


def headline_rows(rows: list[dict]) -> tuple[dict | None, dict | None, dict | None]:
    """(fastest same-weights, same-steps latent row at batch 1; the same among rows that guide every step; fastest
    latent row of any kind)."""
    same = _fastest(rows, lambda r: r.get("same_steps_and_weights") and r["batch_size"] == 1)
    strict = _fastest(rows, lambda r: r.get("same_steps_and_weights") and r["batch_size"] == 1 and full_guidance(r))
    fastest = _fastest(rows, lambda r: r["backend"] in ("latent", "latent-lcm"))
    return same, strict, fastest


def teacher_row(rows: list[dict]) -> dict | None:
    """The quality reference: the embedded teacher at its default steps, fp32, no speed options."""
    from genimg.backends.latent import LatentGenerator

    plain = BenchConfig("latent", steps=LatentGenerator.default_steps)
    return next((row for row in rows if BenchConfig(**row["config"]).quality_key == plain), None)


def check_targets(rows: list[dict], floors: list[dict]) -> dict:
    """The sweep's headline figures, each with its row and the threshold it is compared with in the JSON
    ("target", "hit"), for whoever tracks one; the Markdown report states the figures (``headline_lines``)."""
    targets = {}
    same, strict, _ = headline_rows(rows)
    by_batch = {}
    for row in rows:
        if row.get("same_steps_and_weights"):
            best = by_batch.get(row["batch_size"])
            if best is None or row["speedup_vs_stock"] > best["value"]:
                by_batch[row["batch_size"]] = {"value": row["speedup_vs_stock"], "row": row["label"]}
    if same:
        targets["speedup_vs_stock"] = {"target": 5.0, "value": same["speedup_vs_stock"], "row": same["label"],
                                       "score": same["score"], "hit": same["speedup_vs_stock"] >= 5.0,
                                       "by_batch_size": by_batch}
    if strict and strict is not same:
        targets["speedup_vs_stock_full_guidance"] = {"target": 5.0, "value": strict["speedup_vs_stock"],
                                                     "row": strict["label"], "score": strict["score"],
                                                     "hit": strict["speedup_vs_stock"] >= 5.0}
    floor = next((f for f in floors if same and f["label"] == same["label"]), None)
    if floor:
        targets["floor_ratio"] = {"target": 1.2, "value": floor["ratio"], "row": floor["label"],
                                  "hit": floor["ratio"] <= 1.2}
    teacher = teacher_row(rows)
    if teacher:
        good = _fastest(rows, lambda r: r["backend"] in ("latent", "latent-lcm") and r["score"] >= teacher["score"] - 5)
        if good:
            targets["fast_latent"] = {"target_ms": 25.0, "value": good["latency_ms"]["median"], "row": good["label"],
                                      "score": good["score"], "teacher_score": teacher["score"],
                                      "hit": good["latency_ms"]["median"] < 25.0}
    gan = _fastest(rows, lambda r: r["backend"] == "gan" and r["batch_size"] == 1)
    if gan:
        targets["gan_bs1"] = {"target_ms": 5.0, "value": gan["latency_ms"]["median"], "row": gan["label"],
                              "hit": gan["latency_ms"]["median"] < 5.0}
    return targets


def csv_row(row: dict) -> dict:
    latency = row["latency_ms"]
    return {"label": row["label"], "backend": row["backend"], "options": row["options"],
            "batch_size": row["batch_size"], "steps": row["steps"], "guidance": row["guidance"],
            "median_ms": latency["median"], "q1_ms": latency["q1"], "q3_ms": latency["q3"], "min_ms": latency["min"],
            "max_ms": latency["max"], "images_per_s": row["images_per_s"],
            "speedup_vs_stock": row.get("speedup_vs_stock"),
            "same_steps_and_weights": row.get("same_steps_and_weights"),
            "score": row["score"], "first_call_ms": row["first_call_ms"], "load_ms": row["load_ms"],
            "first_generation_ms": row["first_generation_ms"], "rss_delta_mb": row["rss_delta_mb"],
            "peak_memory_mb": row["peak_memory_mb"], "stages_ms": json.dumps(_rounded(row["stages_ms"], 2)),
            "notes": " | ".join(row["notes"])}


def _rounded(values: dict, digits: int) -> dict:
    return {key: round(value, digits) for key, value in values.items()}


def _fmt(value, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def _stages(row: dict) -> str:
    return ", ".join(f"{stage} {ms:.1f}" for stage, ms in row["stages_ms"].items() if ms >= 0.05)


def markdown(report: dict, command: str = "") -> str:
    machine, rows = report["machine"], report["rows"]
    lines = ["# genimg benchmark", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Machine: {machine['cpu']} (CPU model name as lscpu shows it; {machine['cpu_count']} cores, "
              f"{machine['torch_threads']} torch threads), "
              f"device {machine['device']}; torch {machine['torch']}, diffusers {machine['diffusers']}, "
              f"{machine['date']}. Load average at start {tuple(round(x, 2) for x in machine['loadavg_start'])}, "
              f"at end {tuple(round(x, 2) for x in machine['loadavg_end'])}; "
              f"run took {machine['bench_seconds']:.0f} s; torch.compile cache {machine.get('inductor_cache', 'n/a')}.",
              "", *_threads_note(machine),
              "Per-image latency: median over interleaved rounds after warm-up (IQR in brackets). `x stock`: stock "
              "diffusers median / this median at the same batch size; **bold** where steps and weights are the same "
              "as the stock run. Score: prompt-match 0-100 (judge) over a fixed prompt list; it does not depend on "
              "batch size or on the prompt cache. First call: load + first generation (torch.compile happens "
              "here). Memory: CUDA peak allocated where there is a GPU; on CPU, growth of the process RSS over "
              "load + first call (weights, activations and compiled code; no per-call peak counter exists on CPU).",
              "",
              "| config | ms / image | img/s | x stock | score | first call s | memory MB | stages ms / image |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["latency_ms"]
        ratio = row.get("speedup_vs_stock")
        ratio_text = "" if ratio is None else (f"**{ratio:.2f}**" if row.get("same_steps_and_weights")
                                               else f"{ratio:.2f}")
        memory = row["peak_memory_mb"] if row["peak_memory_mb"] is not None else row["rss_delta_mb"]
        lines.append(f"| {row['label']} | {latency['median']:.2f} ({latency['q1']:.2f}-{latency['q3']:.2f}) | "
                     f"{row['images_per_s']:.1f} | {ratio_text} | {row['score']:.1f} | "
                     f"{row['first_call_ms'] / 1000:.2f} | {_fmt(memory, 0)} | {_stages(row)} |")
    lines += ["", "## Compute floor", "",
              "The same modules' forward passes alone (UNet x steps + decoder; the text encoder too where the prompt "
              "cache is off), on ready-made inputs, timed interleaved with the end-to-end generation.", "",
              "| config | end-to-end ms / call | floor ms | ratio | UNet x steps | decoder | text encoder (uncached) |",
              "|---|---|---|---|---|---|---|"]
    for floor in report["floors"]:
        parts = floor["components_ms"]
        lines.append(f"| {floor['label']} | {floor['end_to_end_ms']:.2f} | {floor['floor_ms']:.2f} | "
                     f"{floor['ratio']:.2f} | {parts['unet']:.2f} | {parts['decoder']:.2f} | "
                     f"{parts['text_encoder']:.2f} |")
    lines += ["", "## Findings", "", "The fastest configuration per family, one request at a time:", "",
              *findings_table(family_findings(report)), ""] + headline_lines(report["targets"])
    lines += engine_lines(report)
    diff = machine.get("stock_vs_genimg_fp32_max_pixel_diff")
    if diff is not None:
        lines += ["", f"Same weights, same images: stock diffusers and genimg fp32 at the same steps, prompt and seed "
                      f"differ by at most {diff:.0f}/255 per pixel."]
    notes = sorted({note for row in rows for note in row["notes"]})
    if notes:
        lines += ["", "## Notes from the generators", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _threads_note(machine: dict) -> list[str]:
    if machine["device"] != "cpu" or machine["torch_threads"] >= (machine["cpu_count"] or 1):
        return []
    return [f"Run with {machine['torch_threads']} torch thread(s) on {machine['cpu_count']} cores: on a machine shared "
            "with other work, OpenMP threads wait for each other whenever one is descheduled, which made medians "
            "several times slower and far noisier than one thread. On an idle machine all cores give lower "
            "absolute numbers (not measured here).", ""]


def headline_lines(targets: dict) -> list[str]:
    """The sweep's headline figures as findings: each speed-up or time with the row it comes from."""
    lines = []
    if "speedup_vs_stock" in targets:
        t = targets["speedup_vs_stock"]
        by_batch = ", ".join(f"batch {bs}: {v['value']:.2f}x ({v['row']})" for bs, v in t["by_batch_size"].items())
        lines.append(f"- genimg latent against stock diffusers, same weights and steps: **{t['value']:.2f}x** at "
                     f"batch 1 ({t['row']}, score {t['score']:.1f}). By batch size: {by_batch}.")
    if "speedup_vs_stock_full_guidance" in targets:
        t = targets["speedup_vs_stock_full_guidance"]
        lines.append(f"- the same with classifier-free guidance on every step, as stock diffusers runs it: "
                     f"**{t['value']:.2f}x** ({t['row']}, score {t['score']:.1f}).")
    if "floor_ratio" in targets:
        t = targets["floor_ratio"]
        lines.append(f"- end to end against the compute floor (the modules' forward passes alone): "
                     f"**{t['value']:.2f}x** ({t['row']}).")
    if "fast_latent" in targets:
        t = targets["fast_latent"]
        lines.append(f"- the fastest latent configuration within 5 points of the teacher's prompt-match "
                     f"({t['teacher_score']:.1f}): **{t['value']:.2f} ms** per image ({t['row']}, score "
                     f"{t['score']:.1f}).")
    if "gan_bs1" in targets:
        t = targets["gan_bs1"]
        lines.append(f"- the GAN at batch 1: **{t['value']:.2f} ms** per image ({t['row']}).")
    return lines


def pareto_labels(rows: list[dict]) -> set[str]:
    """Rows no other row beats on both speed and prompt-match: the ones worth a label on the plot."""
    return {row["label"] for row in rows
            if not any(other["latency_ms"]["median"] < row["latency_ms"]["median"] and other["score"] >= row["score"]
                       for other in rows)}


def plot(report: dict, path: Path) -> None:
    """Speed (ms per image, log scale) against prompt-match; colour = backend, square = batched, labels on the front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gan": "tab:orange", "vae": "tab:purple", "latent": "tab:blue", "latent-lcm": "tab:green",
               "stock": "tab:red"}
    rows, teacher = report["rows"], teacher_row(report["rows"])
    labelled = (pareto_labels(rows) | {r["label"] for r in rows if r["backend"] == "stock" or r is teacher}
                | {r["label"] for r in headline_rows(rows) if r})
    figure, axes = plt.subplots(figsize=(10, 6.5), dpi=110)
    for backend, colour in colours.items():
        for batched in (False, True):
            group = [r for r in rows if r["backend"] == backend and (r["batch_size"] > 1) == batched]
            if group:
                name = "stock diffusers" if backend == "stock" else backend
                axes.scatter([r["latency_ms"]["median"] for r in group], [r["score"] for r in group], color=colour,
                             marker="s" if batched else "o", s=45, alpha=0.85,
                             label=f"{name}, batch > 1" if batched else name)
    shown = sorted((r for r in rows if r["label"] in labelled), key=lambda r: (r["score"], r["latency_ms"]["median"]))
    for index, row in enumerate(shown):  # alternate above/below so neighbours' labels do not overprint
        axes.annotate(row["label"], (row["latency_ms"]["median"], row["score"]), fontsize=7,
                      xytext=(4, 5 if index % 2 else -11), textcoords="offset points")
    if teacher:
        axes.axhline(teacher["score"] - 5, color="grey", linestyle="--", linewidth=1)
        axes.text(0.01, teacher["score"] - 5.6, "teacher's prompt-match - 5", fontsize=7, color="grey",
                  transform=axes.get_yaxis_transform())
    machine = report["machine"]
    axes.set_xscale("log")
    axes.set_xlabel("median latency per image, ms (log scale; left is faster)")
    axes.set_ylabel("prompt-match score (0-100; up is better)")
    axes.set_title(f"genimg speed vs quality: {machine['cpu']}, {machine['device']}, "
                   f"{machine['torch_threads']} torch thread(s)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="center right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_report(report: dict, out_dir: str | Path, name: str = "bench", command: str = "") -> dict[str, Path]:
    """JSON, CSV, markdown and PNG into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{name}.{kind}" for kind in ("json", "csv", "md", "png")}
    paths["json"].write_text(json.dumps(dict(report, command=command), indent=2, default=str))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(row) for row in report["rows"])
    paths["md"].write_text(markdown(report, command))
    plot(report, paths["png"])
    return paths
