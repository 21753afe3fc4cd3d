"""The app end to end through its public API: launched in-process, driven with gradio_client like any caller."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def images_of(gallery) -> list[Path]:
    return [Path(item["image"]["path"] if isinstance(item["image"], dict) else item["image"]) for item in gallery]


def test_importing_and_building_the_app_launches_nothing_and_loads_no_model():
    check = ("import app; from genimg.registry import DEFAULT_CACHE; app.build_demo(); "
             "assert not DEFAULT_CACHE._generators, DEFAULT_CACHE._generators")
    subprocess.run([sys.executable, "-c", check], cwd=Path(__file__).parents[1], check=True, timeout=120)


def test_named_endpoints_take_named_parameters(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    generate_parameters = [parameter["parameter_name"] for parameter in endpoints["/generate"]["parameters"]]
    assert generate_parameters[:6] == ["prompt", "backend", "steps", "batch_size", "precision", "seed"]
    assert "/compare" in endpoints


@pytest.mark.parametrize("backend, steps", [("gan", 1), ("vae", 1), ("latent", 4), ("latent-lcm", 2)])
def test_generate_every_backend(client, backend, steps):
    gallery, latency = client.predict("a slice of pizza", backend, steps, 1, "fp32", 0, api_name="/generate")
    assert len(images_of(gallery)) == 1 and images_of(gallery)[0].exists()
    assert "ms total" in latency and "ms per image" in latency and "images/s" in latency
    assert "Prompt match" in latency and "Peak memory" in latency
    assert "Drawn as** pizza" in latency  # concept matching is on by default for the embedded models
    assert "**In the server: " in latency and "ms in the queue" in latency


def test_pruned_weights_are_a_speed_option_that_says_what_it_loaded(client, pruned_models):
    _, latency = client.predict(prompt="rocket", backend="gan", steps=0, batch_size=1, seed=1, pruned=True,
                                api_name="/generate")
    assert "pruned: generator channels (192, 96, 48, 24, 12)" in latency
    with pytest.raises(Exception, match="pruned weights for the embedded"):
        client.predict(prompt="rocket", backend="vae", steps=0, batch_size=1, pruned=True, api_name="/generate")


def test_concept_matching_can_be_turned_off(client):
    _, latency = client.predict(prompt="a slice of pizza", backend="gan", steps=0, batch_size=1, precision="fp32",
                                seed=0, match_concepts=False, api_name="/generate")
    assert "ms total" in latency and "Drawn as" not in latency


def test_batch_returns_that_many_images(client):
    gallery, latency = client.predict(prompt="rocket", backend="gan", steps=0, batch_size=3, precision="fp32",
                                      seed=7, api_name="/generate")
    assert len(images_of(gallery)) == 3
    assert "batch 3" in latency


def test_compare_two_configurations(client):
    gallery, chart, table, downloads, code = client.predict(
        "red heart", 0, "latent-lcm", "fp32", 2, "default", False, "gan", "fp32", 1, "default", False,
        backend_3="off", backend_4="off", repeats=3, api_name="/compare")
    captions = [item["caption"] for item in gallery]
    assert len(captions) == 2 and captions[0].startswith("1: ") and "1.00x" in captions[0]
    assert "ms" in captions[1] and "match" in captions[1]
    csv_path, json_path = sorted(downloads, key=lambda path: Path(path).suffix)
    results = json.loads(Path(json_path).read_text())["results"]
    assert [row["backend"] for row in results] == ["latent-lcm", "gan"]
    # Every configuration draws 128 px by default, as on the page.
    assert results[0]["config"] == "1. latent-lcm fp32 2 steps upscaled 2x"
    assert results[1]["config"] == "2. gan fp32 1 pass upscaled 2x"
    assert results[0]["speedup"] == 1.0 and results[1]["latency_ms"] > 0
    assert [row["drawn_as"] for row in results] == ["red heart", "red heart"]
    assert "drawn_as" in table["headers"]
    assert {"runs", "median ms", "p90 ms", "warm-up ms", "stages ms (median / p90)"} <= set(table["headers"])
    for row in results:  # three timed runs each, the warm-up apart; median <= p90 over the same runs
        assert row["repeats"] == 3 and len(row["runs_ms"]) == 3 and row["warm_up_ms"] > 0
        assert min(row["runs_ms"]) <= row["latency_ms"] <= row["latency_p90_ms"] == max(row["runs_ms"])
        assert row["latency_ms"] == sorted(row["runs_ms"])[1]
    assert results[0]["denoise_ms"] <= results[0]["denoise_p90_ms"]
    assert len(chart["data"]) == 6 and chart["mark"] == "point"  # every timed run a point: the spread
    assert Path(csv_path).read_text().splitlines()[0].startswith("config,")
    assert "genimg.load('latent-lcm', precision='fp32', upscale=2)" in code and "--backend gan" in code
    assert "repeats=3, api_name='/compare'" in code and "backend_3='off'" in code


@pytest.mark.parametrize("arguments, message", [
    (dict(prompt="   "), "prompt is empty"),
    (dict(precision="fp16"), "bf16"),
    (dict(backend="latent", model="nobody/no-such-model"), "Could not load"),
    (dict(model="nobody/no-such-model"), "runs on the 'latent' backend"),
    (dict(batch_size=100), "greater than maximum value 16"),
])
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(client, arguments, message):
    request = dict(prompt="grinning face", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)
    with pytest.raises(Exception, match=message):
        client.predict(**{**request, **arguments}, api_name="/generate")
    gallery, _ = client.predict(**request, api_name="/generate")
    assert len(images_of(gallery)) == 1


def test_compare_refuses_a_bad_number_of_repeats(client):
    with pytest.raises(Exception, match="greater than maximum value 20|Repeats must be"):
        client.predict("rocket", 0, backend_1="gan", backend_2="gan", backend_3="off", backend_4="off", repeats=50,
                       api_name="/compare")


def test_compare_puts_fp32_int8_and_openvino_side_by_side(client):
    gallery, _, _, downloads, code = client.predict(
        "red heart", 0, backend_1="gan", backend_2="gan", backend_3="gan", backend_4="off", repeats=1,
        tiny_decoder_3=False, engine_2="openvino", engine_3="openvino", quantize_3="int8", api_name="/compare")
    json_path = next(path for path in downloads if path.endswith(".json"))
    results = json.loads(Path(json_path).read_text())["results"]
    assert [row["config"] for row in results] == ["1. gan fp32 1 pass upscaled 2x",
                                                  "2. gan OpenVINO fp32 1 pass upscaled 2x",
                                                  "3. gan OpenVINO fp32 int8 1 pass upscaled 2x"]
    assert [(row["engine"], row["quantize"]) for row in results] == [("torch", "none"), ("openvino", "none"),
                                                                    ("openvino", "int8")]
    assert len(gallery) == 3 and all(row["latency_ms"] > 0 for row in results)
    assert "engine='openvino'" in code and "quantize='int8'" in code  # copy as code carries them


def test_compare_puts_guidance_on_every_step_beside_guidance_on_the_first_steps_only(client):
    gallery, _, _, downloads, code = client.predict(
        "rocket", 0, backend_1="latent", steps_1=4, backend_2="latent", steps_2=4, guidance_cutoff_2=0.25,
        backend_3="off", backend_4="off", repeats=1, api_name="/compare")
    results = json.loads(Path(next(path for path in downloads if path.endswith(".json"))).read_text())["results"]
    assert [row["config"] for row in results] == ["1. latent fp32 4 steps upscaled 2x",
                                                  "2. latent fp32 4 steps guidance on 25% of steps upscaled 2x"]
    every_step, first_step = (path.read_bytes() for path in images_of(gallery))
    assert every_step != first_step  # 3 of the 4 steps ran without the unconditional pass
    assert "guidance_cutoff=0.25" in code and "--guidance-cutoff 0.25" in code


def test_generate_takes_a_guidance_cutoff_and_refuses_one_outside_the_steps(client):
    request = dict(prompt="rocket", backend="latent", steps=4, batch_size=1, precision="fp32", seed=0)
    _, latency = client.predict(**request, guidance_cutoff=0.5, api_name="/generate")
    assert "guidance_cutoff=0.5, upscale=2)" in latency and "--guidance-cutoff 0.5" in latency  # copy as code
    with pytest.raises(Exception, match="guidance_cutoff must be a fraction|not in the list of choices"):
        client.predict(**request, guidance_cutoff=2.0, api_name="/generate")


def test_generate_takes_engine_and_quantize_and_refuses_fp8_on_a_cpu(client):
    request = dict(prompt="rocket", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)
    gallery, latency = client.predict(**request, engine="openvino", api_name="/generate")
    assert len(images_of(gallery)) == 1 and "OpenVINO" in latency
    assert "**Break-even (engine openvino)**: the first call took" in latency  # conversion is a first-call cost
    with pytest.raises(Exception, match="fp8 needs a CUDA GPU"):
        client.predict(**request, quantize="fp8", api_name="/generate")


def test_compare_needs_two_configurations(client):
    with pytest.raises(Exception, match="at least two"):
        client.predict("rocket", 0, backend_1="gan", backend_2="off", backend_3="off", backend_4="off",
                       api_name="/compare")


def test_benchmark_tab_shows_the_newest_results_on_disk(tmp_path, monkeypatch):
    import ui.benchmark

    monkeypatch.setattr(ui.benchmark, "ROOT", tmp_path)
    monkeypatch.setattr(ui.benchmark, "BENCH_FOLDERS", (tmp_path / "outputs" / "bench", tmp_path / "assets" / "bench"))
    plot, summary, tables = ui.benchmark.bench_results()
    assert plot is None and "python -m genimg bench" in summary and tables == ""
    folder = tmp_path / "outputs" / "bench"
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps({"results": [{"backend": "gan", "latency_ms": 1.234, "stages": {}}]}))
    plot, summary, tables = ui.benchmark.bench_results()
    assert plot is None and "| backend | latency_ms |" in summary and "| gan | 1.23 |" in summary
    (folder / "bench.png").write_bytes(b"png")
    (folder / "bench.md").write_text("# genimg benchmark\n\nMachine: a CPU\n\n| a table |\n\n- a finding\n\n"
                                     "## Targets\n\n- genimg >= 5x stock: **3.96x**, missed.\n")
    plot, summary, tables = ui.benchmark.bench_results()
    assert plot == str(folder / "bench.png") and summary.startswith("Machine: a CPU\n\n- a finding")
    assert tables == "| a table |" and "outputs/bench/bench.md" in summary
    assert "Targets" not in summary + tables and "missed" not in summary + tables  # findings, not goals


def test_a_run_of_the_visitors_own_gives_its_findings_per_family(tmp_path, monkeypatch):
    import ui.benchmark

    shipped = json.loads((ui.benchmark.ROOT / "assets" / "bench" / "cpu-bench.json").read_text())
    folder = tmp_path / "outputs" / "bench"
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps(shipped))
    monkeypatch.setattr(ui.benchmark, "ROOT", tmp_path)
    monkeypatch.setattr(ui.benchmark, "BENCH_FOLDERS", (folder, tmp_path / "assets" / "bench"))
    plot, summary, tables = ui.benchmark.bench_results()
    assert plot is None and tables == ""
    assert "_From `outputs/bench/bench.json` (latent, latent-lcm, gan, vae)._" in summary
    assert "| gan | gan bf16+compile+channels_last | 3.10 | — | — | 36.2 (-0.2 vs fp32) |" in summary


def test_benchmark_tab_opens_on_the_findings_and_plot_with_every_table_folded(tmp_path, monkeypatch):
    import re

    import app
    import ui.benchmark

    monkeypatch.setattr(ui.benchmark, "BENCH_FOLDERS", (tmp_path / "outputs" / "bench",
                                                        ui.benchmark.ROOT / "assets" / "bench"))
    plot, summary, tables = ui.benchmark.bench_results()  # no run of the visitor's own: the shipped reports
    assert plot.endswith("assets/bench/cpu-race.png")
    # Per family: the fastest configuration, x stock diffusers, x the fastest peer, prompt-match against fp32,
    # the machine and the date.
    assert ("| latent | latent 4 steps openvino+bf16+int8+cfg_cutoff0.25 | 24.03 | 3.96x | 2.09x | "
            "56.6 (-0.3 vs fp32) | AMD EPYC, 2 cores, 2 torch threads, cpu; 2026-11-27 |") in summary
    assert [line.split(" | ")[0] for line in summary.splitlines() if line.startswith("| latent") or
            line.startswith("| gan") or line.startswith("| vae")] == ["| latent", "| latent-lcm", "| gan", "| vae"]
    assert "the fastest peer on 2026-11-27: stock diffusers 4 steps openvino+bf16+int8 bs1, 50.32 ms" in summary
    assert "| config |" not in summary and "| config |" in tables and "## Notes from the generators" in tables
    assert "python -m genimg bench --race" in tables and "Machine:" in tables
    shown = summary + tables
    assert not re.search(r"\b(targets?|hit|missed|goal)\b|>= ?\d|<= ?\d", shown, re.IGNORECASE), \
        re.findall(r".{30}\b(?:targets?|hit|missed|goal)\b.{30}", shown, re.IGNORECASE)
    assert not re.search(r"issue", shown, re.IGNORECASE)
    accordions = [component["props"] for component in app.build_demo().config["components"]
                  if component["type"] == "accordion" and component["props"].get("elem_id") == "bench-tables"]
    assert accordions == [{**accordions[0], "label": "Full tables", "open": False}]


def test_a_negative_prompt_steers_the_teacher_and_the_report_says_it_cost_no_extra_pass(client):
    request = dict(prompt="red heart", backend="latent", steps=2, batch_size=1, precision="fp32", seed=0,
                   match_concepts=False)
    plain, _ = client.predict(**request, api_name="/generate")
    steered, latency = client.predict(**request, negative_prompt="a red apple", api_name="/generate")
    assert "Negative prompt used in the unconditional pass of 2 of 2 steps" in latency and "no extra" in latency
    assert images_of(plain)[0].read_bytes() != images_of(steered)[0].read_bytes()
    _, ignored = client.predict(**{**request, "backend": "latent-lcm"}, negative_prompt="apple", api_name="/generate")
    assert "Negative prompt ignored" in ignored
    # model= pipelines take it too (tests/test_diffusers_fast_path.py): what fails here is only the offline hub id.
    with pytest.raises(Exception, match="Could not load"):
        client.predict(**request, model="nobody/no-such-model", negative_prompt="apple", api_name="/generate")


def test_compile_reports_its_first_call_and_when_it_pays_for_itself(client):
    _, latency = client.predict(prompt="rocket", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0,
                                compile=True, api_name="/generate")
    assert "**Break-even (torch.compile)**: the first call took" in latency
    assert "pays for itself after" in latency or "never pays for itself" in latency


def test_every_generate_result_carries_the_code_that_reproduces_it(client, app_url):
    import re

    gallery, latency = client.predict(prompt="rocket", backend="gan", steps=0, batch_size=2, precision="fp32",
                                      seed=4, api_name="/generate")
    python, shell, client_code = re.findall(r"```(?:python|bash)\n(.*?)\n```", latency, flags=re.S)
    assert "genimg.load('gan', precision='fp32', upscale=2)" in python and "batch_size=2, seed=4" in python
    assert shell.startswith("python -m genimg generate rocket --backend gan") and "--seed 4" in shell
    namespace = {}
    exec(client_code.replace("http://127.0.0.1:7860/", app_url), namespace)  # the snippet, run as it is shown
    again, _ = namespace["result"]
    assert [path.read_bytes() for path in images_of(again)] == [path.read_bytes() for path in images_of(gallery)]


def test_generate_draws_128_px_by_default_and_the_models_own_64_px_is_one_option_away(client):
    request = dict(prompt="rocket", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)
    gallery, latency = client.predict(**request, api_name="/generate")
    plain, plain_latency = client.predict(**request, upscale=False, api_name="/generate")
    from PIL import Image

    assert Image.open(images_of(gallery)[0]).size == (128, 128)
    assert Image.open(images_of(plain)[0]).size == (64, 64)
    assert "| upscale |" in latency and "upscaled 2x (128 px)" in latency
    assert "upscale=2)" in latency and "--upscale 2" in latency  # copy as code carries it
    assert "| upscale |" not in plain_latency and "upscale=False" in plain_latency  # and says it was left off


def test_every_tab_and_its_api_draw_128_px_by_default_and_the_one_image_api_64():
    import inspect

    import app
    import ui.compare
    import ui.img2img
    import ui.live

    boxes = [component["props"] for component in app.build_demo().config["components"]
             if component["type"] == "checkbox" and component["props"].get("label") == "Upscale 2x (128 px)"]
    visible = [props for props in boxes if props.get("info")]  # the API's hidden twins carry no help text
    assert len(visible) == 7 and all(props["value"] is True for props in boxes)  # Generate, Live, img2img, 4 Compare
    assert all("64 px" in props["info"] for props in visible)  # the model's own size, one click away
    for function in (app.generate, ui.live.live, ui.img2img.img2img, ui.compare.compare):
        defaults = {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
                    if name.startswith("upscale")}
        assert defaults and all(value is True for value in defaults.values()), function.__name__
    assert "upscale" not in inspect.signature(app.generate_one).parameters  # /generate_one, POST /v1/image: 64 px


def test_a_diffusers_model_is_not_upscaled_and_the_report_says_so():
    from ui.common import embedded_upscale

    assert embedded_upscale(True, "") == (True, "")
    assert embedded_upscale(False, "owner/name") == (False, "")
    upscale, note = embedded_upscale(True, " owner/name ")
    assert upscale is False and "drew at its own resolution" in note


def test_compare_preset_puts_64_and_128_px_side_by_side(client):
    import ui.compare

    values = ui.compare.upscale_preset()
    assert values[-4:] == [False, True, False, True] and values[:5] == ["latent-lcm", "fp32", 1, "default", True]
    gallery, _, _, downloads, code = client.predict(
        "rocket", 0, backend_1="gan", backend_2="gan", upscale_1=False, upscale_2=True, backend_3="off",
        backend_4="off", repeats=1, api_name="/compare")
    results = json.loads(Path(next(path for path in downloads if path.endswith(".json"))).read_text())["results"]
    assert [row["config"] for row in results] == ["1. gan fp32 1 pass", "2. gan fp32 1 pass upscaled 2x"]
    from PIL import Image

    assert [Image.open(path).size for path in images_of(gallery)] == [(64, 64), (128, 128)]
    assert "upscale=2" in code and "--upscale 2" in code


def test_generate_draws_a_composition_says_what_it_understood_and_best_of_costs_its_candidates(client):
    request = dict(prompt="a blue rocket above a red car", backend="gan", steps=0, batch_size=2, precision="fp32",
                   seed=0)
    gallery, latency = client.predict(**request, best_of=3, api_name="/generate")
    assert len(images_of(gallery)) == 2
    assert "**Drawn as** a blue rocket above an automobile" in latency and "'car' -> automobile" in latency
    assert "**Best of 3**" in latency and "| best_of |" in latency
    assert "best_of=3" in latency and "--best-of 3" in latency  # copy as code carries it
    assert "**Layout: 2 objects drawn one at a time" in latency and "| layout_objects |" in latency
    assert "each object in its slot against its name" in latency
    _, itself = client.predict(**request, layout=False, api_name="/generate")
    assert "Layout:" not in itself and "layout=False" in itself and "--no-layout" in itself


def test_compare_families_preset_puts_every_family_on_one_composition():
    import ui.compare

    values = ui.compare.families_preset()
    assert values[0] == ui.compare.FAMILIES_PROMPT
    assert values[1::5] == ["latent", "latent-lcm", "gan", "vae"]
