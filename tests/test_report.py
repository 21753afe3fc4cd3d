import csv
import json

from PIL import Image

from genimg.serve import report
from genimg.timing import Generation


def generation(total_ms=40.0, drawn_as=None, peak_memory=None):
    info = {"prompt": "a cute puppy", "backend": "latent-lcm", "precision": "fp32", "device": "cpu", "steps": 4,
            "seed": 7, "notes": ["compile is a no-op here"]}
    if drawn_as:
        info["drawn_as"] = drawn_as
    timings = {"text_encoding": 4.0, "denoising": 30.0, "decoding": 6.0, "total": total_ms}
    return Generation([Image.new("RGB", (64, 64))] * 2, timings, peak_memory, info)


def test_latency_markdown_names_every_stage_with_its_share_and_the_options():
    text = report.latency_markdown(generation(), [80.0, 60.0], load_s=1.25, warmed_up=True)
    assert text.startswith("### 40.0 ms total · 20.0 ms per image · 50.0 images/s")
    assert "**Prompt match** 70.0 / 100 (per image: 80.0, 60.0)" in text
    assert "| denoising | 30.0 | 75% |" in text and "| total |" not in text
    assert "latent-lcm · fp32 · cpu · 4 steps · batch 2 · seed 7" in text
    assert "Loaded the model in 1.2 s" in text and "warm-up run came first" in text
    assert "_compile is a no-op here_" in text and "n/a on cpu" in text


def test_the_time_in_the_server_is_shown_next_to_the_engines():
    text = report.latency_markdown(generation(), [50.0, 50.0], server_ms=(3.5, 62.0))
    assert "**In the server: 65.5 ms** (3.5 ms in the queue, 62.0 ms in the app: the engine's 40.0 ms above, " \
           "plus 22.0 ms of loading" in text
    assert "in the queue" not in report.server_line(40.0, None, 45.0)  # called outside Gradio's queue


def test_latency_markdown_leaves_out_what_did_not_happen():
    text = report.latency_markdown(generation(peak_memory=3 * 2**20), [50.0, 50.0])
    assert "Loaded the model" not in text and "warm-up" not in text and "Drawn as" not in text
    assert "3.0 MiB" in text


def test_latency_markdown_says_what_concept_matching_drew():
    match = {"concept": "dog face", "matched_caption": "puppy", "similarity": 0.812}
    text = report.latency_markdown(generation(drawn_as=match), [50.0, 50.0])
    assert '**Drawn as** dog face (nearest known caption: "puppy", similarity 0.81)' in text


def test_config_label_drops_steps_and_scheduler_for_single_pass_models():
    assert report.config_label(1, "gan", "bf16", 4, "ddim", False, single_pass=True) == "1. gan bf16 1 pass"
    assert (report.config_label(2, "latent-lcm", "fp32", 4.0, "lcm", True, single_pass=False)
            == "2. latent-lcm fp32 4 steps lcm tiny decoder")


def test_compare_rows_measure_speedup_against_the_baseline_and_write_csv_and_json(tmp_path):
    config = {"backend": "latent-lcm", "precision": "fp32"}
    baseline = report.compare_row("1. a", config, generation(total_ms=80.0), 61.23, None)
    faster = report.compare_row("2. b", config, generation(total_ms=20.0), 55.0, baseline["latency_ms"])
    assert baseline["speedup"] == 1.0 and faster["speedup"] == 4.0
    assert faster["match_score"] == 55.0 and faster["denoising_ms"] == 30.0 and faster["drawn_as"] == "a cute puppy"
    csv_path, json_path = report.write_comparison([baseline, faster], tmp_path / "out", prompt="p", seed=3)
    with open(csv_path, newline="") as file:
        assert [row["config"] for row in csv.DictReader(file)] == ["1. a", "2. b"]
    payload = json.loads(json_path.read_text())
    assert payload["seed"] == 3 and payload["results"][1]["speedup"] == 4.0


def test_newest_bench_result_prefers_the_first_folder_with_results(tmp_path):
    first, second = tmp_path / "outputs", tmp_path / "assets"
    assert report.newest_bench_result([first, second], tmp_path) is None
    second.mkdir()
    (second / "bench.json").write_text(json.dumps([{"backend": "gan", "latency_ms": 3.456, "stages": {}}]))
    plot, text = report.newest_bench_result([first, second], tmp_path)
    assert plot is None and "| gan | 3.46 |" in text and "stages" not in text and "_From `assets/`._" in text
    first.mkdir()
    (first / "empty.json").write_text(json.dumps({"results": []}))
    assert "holds no result rows" in report.newest_bench_result([first, second], tmp_path)[1]


def test_an_ambiguous_prompt_says_what_else_it_could_mean():
    info = {"drawn_as": {"concept": "turkey", "matched_caption": "turkey", "similarity": 1.0,
                         "ambiguous_with": ["Türkiye"]}}
    lines = report.drawn_as_lines(info)
    assert lines[0].startswith("- **Drawn as** turkey") and "Türkiye" in lines[1]
    assert len(report.drawn_as_lines({"drawn_as": {"concept": "pizza", "matched_caption": "a pizza",
                                                   "similarity": 0.84}})) == 1
