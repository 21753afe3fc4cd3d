"""What a visitor reads first about genimg's speed: per model family, the fastest configuration one request at a
time, its speed-up over stock diffusers and over the fastest peer in the same run, what its speed options cost in
prompt-match against the same configuration in fp32, and the machine and date it was measured on. Read from the JSON
that ``python -m genimg bench`` writes (genimg.bench.report); the Benchmark tab shows it above the plot and the full
tables."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from genimg.bench.config import STOCK, BenchConfig
from genimg.bench.engines import fp32_reference
from genimg.serve.report import bench_report, without_goals

FAMILIES = ("latent", "latent-lcm", "gan", "vae")  # the embedded models, in the order the summary lists them
# Families drawn from the weights stock diffusers runs (the teacher, and the student distilled from it): a speed-up
# over stock diffusers is theirs (as genimg.bench.report.add_stock_ratios); the GAN and VAE are other models.
STOCK_FAMILIES = ("latent", "latent-lcm")
# The reports a visitor sees when nobody has run the benchmark on this machine, in order: each family's findings
# come from the first that measured it (the race against the peers, then the sweep of every family).
FEATURED_REPORTS = ("cpu-race", "cpu-bench")


def bench_config(row: dict) -> BenchConfig:
    """A row's configuration (fields an older report wrote and BenchConfig no longer has are left out)."""
    fields = {field.name for field in dataclasses.fields(BenchConfig)}
    return BenchConfig(**{name: value for name, value in row["config"].items() if name in fields})


def fp32_score(rows: list[dict], row: dict) -> float | None:
    """The prompt-match of ``row``'s configuration in plain fp32 on torch (no engine, quantisation or compile), where
    the run measured it."""
    reference = fp32_reference(bench_config(row)).quality_key
    return next((other["score"] for other in rows if bench_config(other).quality_key == reference), None)


def _median(row: dict) -> float:
    return row["latency_ms"]["median"]


def _one_request(rows: list[dict]) -> list[dict]:
    """The rows at the smallest batch size measured: one request at a time where the run has it."""
    smallest = min((row["batch_size"] for row in rows), default=None)
    return [row for row in rows if row["batch_size"] == smallest]


def family_findings(report: dict) -> list[dict]:
    """One finding per family the report measured: its fastest row at the smallest batch size, against the plain
    stock diffusers row (torch, fp32) and the fastest stock row (the peer: stock diffusers with its own speed-ups)
    at that batch size, where the run had them and the family draws from stock's weights (STOCK_FAMILIES)."""
    rows, machine = report["rows"], report["machine"]
    found = []
    for family in FAMILIES:
        candidates = _one_request([row for row in rows if row["backend"] == family])
        if not candidates:
            continue
        fastest = min(candidates, key=_median)
        stock = [row for row in rows if row["backend"] == STOCK and row["batch_size"] == fastest["batch_size"]
                 and family in STOCK_FAMILIES]
        plain = next((row for row in stock if bench_config(row) == fp32_reference(bench_config(row))), None)
        peer = min(stock, key=_median) if stock else None
        peer = None if peer is None or peer is plain else peer
        found.append({
            "family": family, "config": fastest["label"], "batch_size": fastest["batch_size"],
            "ms_per_image": _median(fastest), "score": fastest["score"], "fp32_score": fp32_score(rows, fastest),
            "stock": plain and plain["label"], "stock_ms": plain and _median(plain),
            "x_stock": plain and _median(plain) / _median(fastest),
            "peer": peer and peer["label"], "peer_ms": peer and _median(peer),
            "x_peer": peer and _median(peer) / _median(fastest),
            "machine": machine_name(machine), "date": str(machine.get("date", ""))[:10]})
    return found


def machine_name(machine: dict) -> str:
    threads = machine.get("torch_threads")
    cores = f"{machine['cpu_count']} cores" if machine.get("cpu_count") else ""
    return ", ".join(filter(None, [machine.get("cpu", "?"), cores,
                                   f"{threads} torch threads" if threads else "", machine.get("device", "")]))


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _quality(finding: dict) -> str:
    reference = finding["fp32_score"]
    if reference is None:
        return f"{finding['score']:.1f} (fp32 not measured)"
    return f"{finding['score']:.1f} ({finding['score'] - reference:+.1f} vs fp32)"


def findings_table(findings: list[dict]) -> list[str]:
    lines = ["| family | fastest configuration | ms / image | x stock diffusers | x fastest peer | "
             "prompt-match (cost vs fp32) | machine, date |", "|---|---|---:|---:|---:|---|---|"]
    for f in findings:
        lines.append(f"| {f['family']} | {re.sub(r' bs1$', '', f['config'])} | {f['ms_per_image']:.2f} | "
                     f"{_times(f['x_stock'])} | {_times(f['x_peer'])} | {_quality(f)} | {f['machine']}; "
                     f"{f['date']} |")
    return lines


def baselines(findings: list[dict]) -> list[str]:
    """What each ratio was measured against, once per run."""
    lines, seen = [], set()
    for f in findings:
        for label, ms, kind in ((f["stock"], f["stock_ms"], "stock diffusers"), (f["peer"], f["peer_ms"],
                                                                                 "the fastest peer")):
            if label and (label, f["date"]) not in seen:
                seen.add((label, f["date"]))
                lines.append(f"- {kind} on {f['date']}: {label}, {ms:.2f} ms / image")
    return lines


def findings_markdown(reports: list[tuple[str, dict]]) -> str:
    """The summary for ``reports`` ((source, report JSON), most wanted first): each family from the first report
    that measured it, the table, then what the ratios are against and where the figures come from."""
    findings, sources = {}, []
    for source, report in reports:
        new = [f for f in family_findings(report) if f["family"] not in findings]
        findings.update({f["family"]: f for f in new})
        if new:
            sources.append(f"`{source}` ({', '.join(f['family'] for f in new)})")
    if not findings:
        return ""
    ordered = [findings[family] for family in FAMILIES if family in findings]
    return "\n".join([
        "**genimg's fastest configuration per model family**, one request at a time, as `python -m genimg bench` "
        "measured it. The latent models' speed-ups are against stock diffusers (the embedded latent weights in "
        "diffusers' own `StableDiffusionPipeline`, torch fp32) and its fastest peer (the same pipeline with its own "
        "speed-ups: OpenVINO, int8) in the same run; the GAN and the VAE are other models, with no stock pipeline to "
        "race. Prompt-match (0-100, the judge) is beside the same configuration in fp32: what the speed options "
        "cost.", "", *findings_table(ordered), "",
        "Measured against:", "", *baselines(ordered), "", f"_From {' and '.join(sources)}._"])


def _source(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


def read_reports(folder: Path, root: Path, featured=FEATURED_REPORTS) -> list[tuple[str, dict, Path]]:
    """The benchmark reports in ``folder`` to summarise, as (source, JSON, path): the featured ones present, in
    order, else the newest run. Files that are not a ``python -m genimg bench`` report are skipped."""
    paths = [folder / f"{name}.json" for name in featured if (folder / f"{name}.json").exists()]
    if not paths:
        paths = sorted(folder.glob("*.json"), key=lambda path: -path.stat().st_mtime)[:1]
    reports = []
    for path in paths:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and isinstance(report.get("rows"), list) and "machine" in report:
            reports.append((_source(path, root), report, path))
    return reports


def report_tables(markdown: str) -> str:
    """A report's Markdown for the folded "Full tables": everything but its title and the goals older reports
    were held to (genimg.serve.report.without_goals)."""
    blocks = [block for block in markdown.strip().split("\n\n")
              if block.strip() and not block.lstrip().startswith("# ")]
    return "\n\n".join(without_goals(blocks))


def benchmark_page(folders, root: Path, featured=FEATURED_REPORTS) -> tuple[str | None, str, str] | None:
    """(plot, summary, full tables) for the Benchmark tab, from the first folder holding results: the findings of
    its benchmark reports (``read_reports``), the first one's plot, and every one's tables; a folder of other files
    gets the newest table it holds (genimg.serve.report.bench_report). None when no folder holds results."""
    for folder in map(Path, folders):
        reports = read_reports(folder, Path(root), featured)
        if not reports:
            found = bench_report([folder], Path(root), featured[0] if featured else "")
            if found:
                return found
            continue
        plot = reports[0][2].with_suffix(".png")
        tables = [f"**From `{_source(path.with_suffix('.md'), Path(root))}`**\n\n"
                  f"{report_tables(path.with_suffix('.md').read_text())}"
                  for _, _, path in reports if path.with_suffix(".md").exists()]
        return (str(plot) if plot.exists() else None), findings_markdown([(source, report)
                                                                          for source, report, _ in reports]), \
            "\n\n".join(tables)
    return None
