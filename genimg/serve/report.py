"""Reports of generation results for people: the latency Markdown, comparison rows with their CSV/JSON files,
and the newest benchmark table on disk. Plain text and files only, so the app (or any other front end) shows them
as they are."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from genimg.options import guidance_cutoff_or_none, upscale_factor
from genimg.timing import percentile


def format_memory(peak_bytes: int | None, device: str) -> str:
    return f"n/a on {device}" if peak_bytes is None else f"{peak_bytes / 2**20:,.1f} MiB"


def drawn_as_lines(info: dict) -> list[str]:
    """What concept matching drew for the prompt (nothing when matching was off or kept the prompt)."""
    match = info.get("drawn_as")
    if not match:
        return []
    scene = match.get("scene")
    if scene:
        understood = ", ".join(f"{obj.get('typed', obj['name'])!r} -> {obj['name']} ({obj.get('similarity', 1):.2f})"
                               for obj in scene["objects"])
        lines = [f"- **Drawn as** {match['concept']} (understood: {understood})"]
    else:
        lines = [f"- **Drawn as** {match['concept']} (nearest known caption: \"{match['matched_caption']}\", "
                 f"similarity {match['similarity']:.2f})"]
    if match.get("ambiguous_with"):
        lines.append(f"- The prompt could also mean {', '.join(match['ambiguous_with'])}: the common sense of the "
                     "words was drawn; add a word to pick another (\"turkey flag\").")
    return lines


def best_of_line(info: dict) -> list[str]:
    chosen = info.get("best_of")
    if not chosen:
        return []
    return [f"- **Best of {chosen['candidates']}**: the judge kept candidate "
            + ", ".join(f"#{kept + 1} ({scores[kept]:.0f})" for kept, scores in zip(chosen["kept"],
                                                                                  chosen["judge_scores"]))
            + " per image; the latency is every candidate's"]


def layout_line(info: dict) -> list[str]:
    """How the layout drew a scene: its objects one at a time, then arranged (nothing for a plain drawing)."""
    arranged = info.get("layout")
    if not arranged:
        return []
    return [f"- **{arranged['note']}** Objects: {', '.join(arranged['objects'])}; their time is the stages "
            "layout_objects and layout_arrange"]


def latency_markdown(result, scores: list[float], load_s: float | None = None, warmed_up: bool = False,
                     server_ms: tuple[float | None, float] | None = None) -> str:
    """Total, per image, per stage, images/s, peak memory and the judge's prompt-match score, as Markdown.
    ``load_s`` is the time this request spent loading the model (None when it was already loaded); ``server_ms``
    (queue wait or None, the app's function) is where the request's time in the server went beyond the engine."""
    timings, info, count = result.timings, result.info, len(result.images)
    total = timings["total"]
    lines = [
        f"### {total:,.1f} ms total · {result.per_image_ms:,.1f} ms per image · {1000 * count / total:,.1f} images/s",
        f"- **Prompt match** {sum(scores) / len(scores):.1f} / 100 "
        f"(per image: {', '.join(f'{score:.1f}' for score in scores)})"
        + ("; each object in its slot against its name" if info.get("layout") else ""),
        f"- **Peak memory** {format_memory(result.peak_memory, info['device'])}",
        *drawn_as_lines(info),
        *layout_line(info),
        *best_of_line(info),
        "",
        "| stage | ms | share |",
        "|---|---:|---:|",
        *(f"| {stage} | {ms:,.1f} | {100 * ms / total:.0f}% |" for stage, ms in timings.items() if stage != "total"),
        "",
        f"{info.get('model') or info['backend']} · {info['precision']} · {info['device']} · "
        + (f"{info['steps']} steps · " if info.get("steps") else "") + f"batch {count} · seed {info['seed']}"
        + upscaled_note(info) + drawn_by(info),
    ]
    if server_ms is not None:
        lines.append("\n" + server_line(total, *server_ms))
    if load_s is not None:
        lines.append(f"\nLoaded the model in {load_s:.1f} s (once; later requests reuse it).")
    if warmed_up:
        lines.append("\nAn untimed warm-up run came first, so this is the steady-state latency.")
    lines += [f"\n_{note}_" for note in info.get("notes", [])]
    return "\n".join(lines)


def server_line(engine_ms: float, queued_ms: float | None, function_ms: float) -> str:
    """The request's time in the server next to the engine's: what the user waited for beyond the model."""
    whole = (queued_ms or 0.0) + function_ms
    queue = "" if queued_ms is None else f"{queued_ms:,.1f} ms in the queue, "
    return (f"**In the server: {whole:,.1f} ms** ({queue}{function_ms:,.1f} ms in the app: the engine's "
            f"{engine_ms:,.1f} ms above, plus {max(function_ms - engine_ms, 0.0):,.1f} ms of loading, warm-up, "
            "scoring and reporting). Sending the images to the browser comes on top.")


def live_markdown(result) -> str:
    """One redraw of the Live tab in a line: the prompt, what it was drawn as, the milliseconds and where they went.
    A result that drew nothing (``info["redrawn"]`` False: the same emoji and seed as the image shown) says so."""
    info, timings = result.info, result.timings
    match = info.get("drawn_as")
    drawn = f" (drawn as {match['concept']})" if match else ""
    if info.get("redrawn") is False:
        drawn += ": the same image as shown, not redrawn"
    stages = " · ".join(f"{stage} {ms:,.1f}" for stage, ms in timings.items() if stage != "total")
    return (f"**{timings['total']:,.1f} ms** to draw \u201c{info['prompt']}\u201d{drawn}  \n"
            f"{stages} ms · {info['backend']} {info['steps']} step{'s' if info['steps'] != 1 else ''} · "
            f"{info['precision']} · {info['device']} · seed {info['seed']}{upscaled_note(info)}{drawn_by(info)}")


def drawn_by(info: dict) -> str:
    """On a Ray Serve cluster, which replica (and its process) drew the result; nothing in a single process."""
    return f" · replica {info['replica']} (pid {info['pid']})" if info.get("replica") else ""


def upscaled_note(info: dict) -> str:
    """" · upscaled 2x (128 px)" for a generation that ended with the upscaler, else nothing."""
    return f" · upscaled {info['upscale']}x ({64 * info['upscale']} px)" if info.get("upscale") else ""


def config_label(index: int, backend: str, precision: str, steps, scheduler: str, tiny_decoder: bool,
                 single_pass: bool, engine: str = "torch", quantize: str | None = None, pruned: bool = False,
                 guidance_cutoff: float | None = None, upscale=1) -> str:
    """A comparison column's short name, e.g. "2. latent-lcm fp32 4 steps tiny decoder upscaled 2x"."""
    parts = [f"{index}. {backend}"] + (["pruned"] if pruned else []) + (["OpenVINO"] if engine == "openvino" else [])
    parts.append(precision)
    parts += [quantize] if quantize not in (None, "", "none") else []
    parts.append("1 pass" if single_pass else f"{int(steps)} steps")
    if scheduler != "default" and not single_pass:
        parts.append(scheduler)
    if tiny_decoder:
        parts.append("tiny decoder")
    if guidance_cutoff_or_none(guidance_cutoff) is not None and not single_pass:
        parts.append(f"guidance on {guidance_cutoff:.0%} of steps")
    if upscale_factor(upscale) != 1:
        parts.append(f"upscaled {upscale_factor(upscale)}x")
    return " ".join(parts)


def compare_row(label: str, config: dict, results, score: float, baseline_ms: float | None,
                warm_up_ms: float | None = None) -> dict:
    """One comparison result as a flat record over its timed runs (one Generation or a list of repeats): per stage
    the median (``<stage>_ms``) and p90 (``<stage>_p90_ms``); ``latency_ms`` is the median total, and the speed-up is
    against ``baseline_ms`` (the first column's median). ``warm_up_ms``: the untimed first call, reported apart."""
    results = results if isinstance(results, (list, tuple)) else [results]
    runs = [result.timings for result in results]
    stages = list(dict.fromkeys(stage for timings in runs for stage in timings if stage != "total"))
    total = statistics.median(timings["total"] for timings in runs)
    first = results[0]
    row = {"config": label, **config, "repeats": len(runs), "latency_ms": round(total, 2),
           "latency_p90_ms": round(percentile([timings["total"] for timings in runs], 0.9), 2),
           "warm_up_ms": None if warm_up_ms is None else round(warm_up_ms, 2),
           "speedup": round((baseline_ms or total) / total, 2), "match_score": round(score, 1),
           "drawn_as": (first.info.get("drawn_as") or {}).get("concept", first.info["prompt"]),
           "peak_memory_bytes": first.peak_memory, "runs_ms": [round(timings["total"], 2) for timings in runs]}
    for stage in stages:
        values = [timings.get(stage, 0.0) for timings in runs]
        row[f"{stage}_ms"] = round(statistics.median(values), 2)
        row[f"{stage}_p90_ms"] = round(percentile(values, 0.9), 2)
    return row


def compare_table(rows: list[dict]) -> list[dict]:
    """What the Compare tab's table shows per configuration: median and p90 in total and per stage, warm-up apart."""
    table = []
    for row in rows:
        stages = [key[:-3] for key in row if key.endswith("_ms") and not key.endswith("_p90_ms")
                  and key not in ("latency_ms", "warm_up_ms", "runs_ms")]
        table.append({"config": row["config"], "runs": row["repeats"], "median ms": row["latency_ms"],
                      "p90 ms": row["latency_p90_ms"], "warm-up ms": row["warm_up_ms"], "speedup": row["speedup"],
                      "match_score": row["match_score"], "drawn_as": row["drawn_as"],
                      "stages ms (median / p90)": " · ".join(
                          f"{stage} {row[stage + '_ms']:,.1f} / {row[stage + '_p90_ms']:,.1f}" for stage in stages)})
    return table


def write_comparison(rows: list[dict], folder: Path, **context) -> list[Path]:
    """compare.csv (one row per configuration) and compare.json (``context``, e.g. prompt and seed, plus the rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(folder / "compare.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "compare.json").write_text(json.dumps({**context, "results": rows}, indent=2))
    return [folder / "compare.csv", folder / "compare.json"]


def newest_bench_result(folders, root: Path) -> tuple[str | None, str] | None:
    """The newest plot and Markdown table that ``python -m genimg bench`` wrote in the first folder holding any
    (a table made from the JSON when there is no Markdown), or None when no folder holds results."""
    for folder in folders:
        plots, tables, jsons = (sorted(Path(folder).glob(pattern), key=lambda path: -path.stat().st_mtime)
                                for pattern in ("*.png", "*.md", "*.json"))
        if not (plots or tables or jsons):
            continue
        text = tables[0].read_text() if tables else json_table(jsons[0]) if jsons else ""
        source = f"\n\n_From `{Path(folder).relative_to(root)}/`._"
        return (str(plots[0]) if plots else None), text + source
    return None


def json_table(path: Path) -> str:
    """A Markdown table from a bench JSON: a list of flat records, or {"results": [...]}."""
    data = json.loads(path.read_text())
    records = data.get("results", []) if isinstance(data, dict) else data
    records = [record for record in records if isinstance(record, dict)]
    if not records:
        return f"`{path.name}` holds no result rows."
    columns = [key for key in records[0] if not isinstance(records[0][key], (dict, list))]
    rows = [" | ".join(f"{record.get(key, '')}" if not isinstance(record.get(key), float) else f"{record[key]:,.2f}"
                       for key in columns) for record in records]
    return "\n".join([f"| {' | '.join(columns)} |", "|" + "---|" * len(columns), *(f"| {row} |" for row in rows)])


# The report a visitor sees first when nobody has run the benchmark on this machine: the race against the peers.
FEATURED_BENCH = "cpu-race"
# Sections of a benchmark report that stay in the full tables, never in the summary.
DETAIL_SECTIONS = ("## Notes from the generators",)
# Findings shown first in the summary: against the peers.
FIRST_SECTIONS = ("## Engines and quantisation",)


def without_goals(blocks: list[str]) -> list[str]:
    """A report's Markdown blocks without the goals older reports measured themselves against: their "## Targets"
    section and "Targets:" lists (each line a threshold, "hit" or "missed"). The figures are in the tables."""
    kept, in_targets_section, after_targets_line = [], False, False
    for block in blocks:
        first = block.lstrip().splitlines()[0].strip()
        if first.startswith("## "):
            in_targets_section = first == "## Targets"
        list_of_targets = after_targets_line and first.startswith("- ")
        after_targets_line = first == "Targets:"
        if not (in_targets_section or after_targets_line or list_of_targets):
            kept.append(block)
    return kept


def split_bench_markdown(markdown: str) -> tuple[str, str]:
    """A ``python -m genimg bench`` report -> (summary, tables). The summary keeps the command, the machine line and
    every list of findings (which engine wins); the tables, method notes and generator notes go to the second part.
    The report's own title and any goals it was held to (``without_goals``) are dropped."""
    header, findings_by_section, details, section = [], {}, [], ""
    blocks = without_goals([block for block in markdown.strip().split("\n\n") if block.strip()])
    for index, block in enumerate(blocks):
        first = block.lstrip().splitlines()[0]
        if first.startswith("# "):
            continue
        if first.startswith("## "):
            section = first
            details.append(block)
            continue
        following = blocks[index + 1].lstrip() if index + 1 < len(blocks) else ""
        findings = first.startswith("- ") or (block.rstrip().endswith(":") and following.startswith("- "))
        if first.startswith("```") or first.startswith("Machine:"):
            header.append(block)
        elif findings and section not in DETAIL_SECTIONS:
            findings_by_section.setdefault(section, [section] if section else []).append(block)
        else:
            details.append(block)
    ordered = sorted(findings_by_section, key=lambda name: name not in FIRST_SECTIONS)  # stable otherwise
    summary = header + [block for name in ordered for block in findings_by_section[name]]
    return "\n\n".join(summary), "\n\n".join(details)


def bench_report(folders, root: Path, featured: str = FEATURED_BENCH) -> tuple[str | None, str, str] | None:
    """(plot, summary, full tables) of the report to show: in the first folder holding any results, the
    ``featured`` report if it is there, else the newest; None when no folder holds results."""
    for folder in map(Path, folders):
        tables = sorted(folder.glob("*.md"), key=lambda path: -path.stat().st_mtime)
        tables = [path for path in tables if path.stem != "README"]
        chosen = folder / f"{featured}.md" if (folder / f"{featured}.md").exists() else tables[0] if tables else None
        if chosen is None:
            found = newest_bench_result([folder], root)  # a plot or a JSON without a Markdown report
            if found:
                return found[0], found[1], ""
            continue
        plot = chosen.with_suffix(".png")
        summary, details = split_bench_markdown(chosen.read_text())
        source = f"_From `{chosen.relative_to(root)}`._" if chosen.is_relative_to(root) else ""
        return (str(plot) if plot.exists() else None), "\n\n".join(filter(None, [summary, source])), details
    return None
