import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "genimg", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_prompts_file_writes_one_png_per_line_in_order_and_json_timings(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("red heart\nrocket\n")
    out = tmp_path / "out"
    result = run_cli("generate", "--prompts-file", str(prompts), "--backend", "gan", "--batch-size", "2",
                     "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0000-1.png", "0000.png", "0001-1.png", "0001.png"]
    records = json.loads(result.stdout)
    assert [r["prompt"] for r in records] == ["red heart", "rocket"]
    assert all(r["timings_ms"]["total"] > 0 for r in records)
    assert [r["drawn_as"]["concept"] for r in records] == ["red heart", "rocket"]


@pytest.mark.slow
def test_generation_options_reach_the_generator(tmp_path):
    result = run_cli("generate", "a slice of pizza", "--backend", "latent", "--steps", "2", "--guidance-cutoff", "0.5",
                     "--no-match-concepts", "--timeout", "120", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]
    assert record["drawn_as"] is None and (tmp_path / "0000.png").exists()
    refused = run_cli("generate", "rocket", "--backend", "latent", "--guidance-cutoff", "2", "--out", str(tmp_path))
    assert refused.returncode == 2 and "guidance_cutoff" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_a_scene_is_drawn_object_by_object_unless_no_layout_is_asked(tmp_path):
    result = run_cli("generate", "three stars", "--backend", "gan", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["layout"]["objects"] == ["star", "star", "star"]
    itself = run_cli("generate", "three stars", "--backend", "gan", "--no-layout", "--out", str(tmp_path), "--json")
    assert itself.returncode == 0, itself.stderr
    record = json.loads(itself.stdout)[0]
    assert record["layout"] is None and record["drawn_as"]["concept"] == "three stars"


@pytest.mark.slow
def test_upscale_2_writes_128_px_images_and_times_the_upscaler(tmp_path):
    result = run_cli("generate", "rocket", "--backend", "gan", "--upscale", "2", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    from PIL import Image

    assert Image.open(tmp_path / "0000.png").size == (128, 128)
    assert json.loads(result.stdout)[0]["timings_ms"]["upscale"] > 0
    refused = run_cli("generate", "rocket", "--upscale", "3", "--out", str(tmp_path))
    assert refused.returncode == 2 and "--upscale" in refused.stderr


def test_bad_input_exits_with_a_message_and_no_traceback(tmp_path):
    result = run_cli("generate", "   ", "--backend", "gan", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "prompt is empty" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("generate", "--prompts-file", str(tmp_path / "nope.txt"), "--out", str(tmp_path))
    assert missing.returncode == 2 and "Cannot read" in missing.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_negative_prompt_reaches_the_teacher_and_the_record_says_what_it_cost(tmp_path):
    result = run_cli("generate", "red heart", "--backend", "latent", "--steps", "2", "--negative-prompt",
                     "a red apple", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    negative = json.loads(result.stdout)[0]["negative_prompt"]
    assert negative["text"] == "a red apple" and negative["used"] and negative["extra_unet_passes"] == 0
    ignored = run_cli("generate", "red heart", "--backend", "latent-lcm", "--steps", "1", "--negative-prompt",
                      "apple", "--out", str(tmp_path), "--json")
    assert ignored.returncode == 0 and not json.loads(ignored.stdout)[0]["negative_prompt"]["used"]
    # A model= pipeline takes it too; the one refused here is the model on a backend that cannot run it.
    refused = run_cli("generate", "red heart", "--model", "some/model", "--negative-prompt", "apple", "--out",
                      str(tmp_path))
    assert refused.returncode == 2 and "runs on the 'latent' backend" in refused.stderr
    assert "Traceback" not in refused.stderr
