"""Every training script runs end to end on the procedural stand-in and writes loadable diffusers folders."""
import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

from genimg.accel.prune import PRUNED_GAN_CHANNELS, PRUNED_UNET_CHANNELS
from genimg.errors import InvalidRequest
from genimg.models.cvae import TextConditionalVAE
from genimg.models.gan import TextConditionalGenerator
from genimg.models.judge import Judge
from genimg.train import TrainConfig, run
from genimg.train.common import CaptionBank, checkpoint_dir, data_generator


def config(out, **overrides):
    return TrainConfig(out_dir=str(out), dataset="procedural", steps=overrides.pop("steps", 3), batch_size=8,
                       **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("model, cls", [("gan", TextConditionalGenerator), ("vae", TextConditionalVAE),
                                        ("judge", Judge)])
def test_small_models_train_and_reload(tmp_path, model, cls):
    summary = run(model, config(tmp_path / model))
    assert summary["steps"] == 3
    loaded = cls.from_pretrained(tmp_path / model, torch_dtype=torch.float32)
    assert next(loaded.parameters()).dtype == torch.float32
    assert (tmp_path / model / "README.md").read_text().startswith("# genimg")


@pytest.mark.slow
def test_latent_stages_and_distillation_write_pipeline_folders(tmp_path):
    folder = tmp_path / "latent"
    for stage in ("autoencoder", "unet", "tiny-decoder"):
        run(stage, config(folder))
    before = AutoencoderKL.from_pretrained(folder / "vae")
    run("kl-decoder", config(folder, learning_rate=1e-2))
    tuned = AutoencoderKL.from_pretrained(folder / "vae")
    assert all(torch.equal(value, tuned.encoder.state_dict()[name]) for name, value in before.encoder.state_dict().items())
    assert not torch.equal(before.decoder.conv_out.weight, tuned.decoder.conv_out.weight)
    assert "decoder fine-tuned" in (folder / "vae" / "README.md").read_text()
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    assert AutoencoderKL.from_pretrained(folder / "vae").config.scaling_factor > 0
    UNet2DConditionModel.from_pretrained(folder / "unet")
    AutoencoderTiny.from_pretrained(tmp_path / "latent-tiny-decoder")
    run("distill", config(tmp_path / "latent-lcm", teacher=str(folder)))
    assert (tmp_path / "latent-lcm" / "scheduler" / "scheduler_config.json").exists()
    UNet2DConditionModel.from_pretrained(tmp_path / "latent-lcm" / "unet")
    summary = run("prune-unet", config(tmp_path / "latent-pruned", teacher=str(folder)))
    pruned = UNet2DConditionModel.from_pretrained(tmp_path / "latent-pruned" / "unet")
    assert tuple(pruned.config.block_out_channels) == PRUNED_UNET_CHANNELS
    assert summary["parameters"]["pruned"] < summary["parameters"]["unpruned"]
    assert (tmp_path / "latent-pruned" / "scheduler" / "scheduler_config.json").exists()


@pytest.mark.slow
def test_a_pruned_gan_generator_is_distilled_from_the_unpruned_one(tmp_path):
    run("gan", config(tmp_path / "gan", steps=1))
    summary = run("prune-gan", config(tmp_path / "gan-pruned", teacher=str(tmp_path / "gan")))
    pruned = TextConditionalGenerator.from_pretrained(tmp_path / "gan-pruned")
    assert tuple(pruned.config.channels) == PRUNED_GAN_CHANNELS
    assert summary["last"]["distill"] > 0 and "distill" in (tmp_path / "gan-pruned" / "README.md").read_text()


@pytest.mark.slow
def test_training_resumes_from_its_checkpoint(tmp_path):
    first = run("gan", config(tmp_path / "gan", steps=2, balance="sqrt-family"))
    progress = checkpoint_dir(config(tmp_path / "gan"), "gan") / "progress.json"
    assert json.loads(progress.read_text())["step"] == 2
    resumed = run("gan", config(tmp_path / "gan", steps=4, resume=True, balance="sqrt-family"))
    assert first["steps"] == 2 and resumed["steps"] == 4
    assert json.loads(progress.read_text())["step"] == 4
    weights = (tmp_path / "gan" / "diffusion_pytorch_model.safetensors").read_bytes()
    with pytest.raises(InvalidRequest, match="at step 4 and 4 steps were asked for"):  # nothing left to train
        run("gan", config(tmp_path / "gan", steps=4, resume=True, balance="sqrt-family"))
    assert (tmp_path / "gan" / "diffusion_pytorch_model.safetensors").read_bytes() == weights


@pytest.mark.slow
def test_gan_fine_tuning_starts_from_the_given_generator(tmp_path):
    run("gan", config(tmp_path / "gan", steps=2))
    start = TextConditionalGenerator.from_pretrained(tmp_path / "gan", torch_dtype=torch.float32)
    # One step with a tiny learning rate: the shipped EMA generator stays next to where it started.
    run("gan", config(tmp_path / "tuned", steps=1, learning_rate=1e-6, init_from=str(tmp_path / "gan")))
    tuned = TextConditionalGenerator.from_pretrained(tmp_path / "tuned", torch_dtype=torch.float32)
    fresh = TextConditionalGenerator()
    assert distance(tuned, start) < 0.01 * distance(fresh, start)
    assert "EMA" in (tmp_path / "tuned" / "README.md").read_text()


def distance(a: torch.nn.Module, b: torch.nn.Module) -> torch.Tensor:
    return sum((x - y).abs().sum() for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.slow
def test_vae_fine_tuning_starts_from_the_given_vae(tmp_path):
    run("vae", config(tmp_path / "vae", steps=2))
    start = TextConditionalVAE.from_pretrained(tmp_path / "vae", torch_dtype=torch.float32)
    run("vae", config(tmp_path / "tuned", steps=1, learning_rate=1e-6, init_from=str(tmp_path / "vae")))
    tuned = TextConditionalVAE.from_pretrained(tmp_path / "tuned", torch_dtype=torch.float32)
    assert distance(tuned, start) < 0.01 * distance(TextConditionalVAE(), start)


def caption_bank(num_emoji: int) -> CaptionBank:
    """One caption per emoji; only the sampling is under test."""
    return CaptionBank(torch.zeros(num_emoji, 2, 4), torch.zeros(num_emoji, 4), torch.arange(num_emoji),
                       torch.zeros(2, 4), torch.zeros(4))


def test_weighted_caption_bank_draws_emoji_in_proportion_to_their_weights():
    bank = caption_bank(4).weighted([3.0, 1.0, 0.0, 0.0])
    emoji, caption = bank.sample(4000, 4, torch.Generator().manual_seed(0))
    counts = torch.bincount(emoji, minlength=4)
    assert counts[2] == counts[3] == 0 and 2.5 < counts[0] / counts[1] < 3.5
    assert torch.equal(caption, emoji)  # each emoji's own caption
    distinct, _ = caption_bank(10).weighted([1.0] * 10).sample(10, 10, torch.Generator().manual_seed(0))
    assert sorted(distinct.tolist()) == list(range(10))  # no repeats while the batch fits


def test_each_training_step_draws_its_own_reproducible_batch():
    bank, settings = caption_bank(50), config("unused")
    draw = lambda step: bank.sample(8, 50, data_generator(settings, step))[0].tolist()
    assert draw(7) == draw(7) and draw(7) != draw(8)  # a resumed run goes on with new batches


def test_distillation_draws_its_teacher_captions_by_the_training_weights():
    import torch

    from genimg.train.common import CaptionBank
    from genimg.train.distill import draw_captions

    emoji_of_caption = torch.tensor([0, 0, 1, 1, 1, 2])
    bank = CaptionBank(torch.zeros(6, 2, 4), torch.zeros(6, 4), emoji_of_caption, torch.zeros(2, 4), torch.zeros(4))
    assert sorted(draw_captions(bank, 6, torch.Generator().manual_seed(0)).tolist()) == list(range(6))
    weighted = bank.weighted([1.0, 0.0, 1.0])  # emoji 1 (captions 2-4) never
    drawn = draw_captions(weighted, 3, torch.Generator().manual_seed(0)).tolist()
    assert sorted(drawn) == [0, 1, 5]


SIGNALLED_RUN = """
import json, os, signal, sys
from accelerate import Accelerator
from genimg.train import TrainConfig
from genimg.train.common import train_loop
config = TrainConfig(out_dir=sys.argv[1], dataset="procedural", steps=1000, batch_size=8, checkpoint_every=500)
done = []
def step(index):
    done.append(index)
    if index == 2:
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a job scheduler ending the run would
    return {"loss": 1.0}
summary = train_loop(Accelerator(), config, step, "signal")
print(json.dumps({"done": done, "steps": summary["steps"], "stopped_by": summary.get("stopped_by"),
                  "default_again": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL}))
"""


def test_a_signal_stops_a_run_after_its_step_with_its_checkpoint_saved(tmp_path):
    """In a process of its own: a real SIGTERM, as a scheduler sends it, not one to the test runner."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "GENIMG_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", SIGNALLED_RUN, str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=300, env=env, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"done": [0, 1, 2], "steps": 3, "stopped_by": "SIGTERM", "default_again": True}
    progress = tmp_path / "cache" / "checkpoints" / "out" / "signal" / "progress.json"
    assert json.loads(progress.read_text()) == {"step": 3}
