import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

import genimg
from genimg.errors import InvalidRequest
from genimg.options import SpeedOptions
from genimg.sampling import denoise, guided_step_count, make_scheduler, strength_schedule


class RecordingUNet(torch.nn.Module):
    """Predicts a context-dependent constant and records the batch of every call."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, sample, timestep, encoder_hidden_states, return_dict=False):
        self.batches.append(sample.shape[0])
        return (sample * 0.1 + encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1),)


def run(cutoff, steps=4, guidance=5.0):
    unet = RecordingUNet()
    scheduler = make_scheduler("ddim", DDPMScheduler(prediction_type="v_prediction").config)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    context, empty = torch.ones(1, 3, 8), torch.zeros(1, 3, 8)
    latents = denoise(unet, scheduler, noise, context, steps, guidance, empty, guidance_cutoff=cutoff)
    return latents, unet.batches


def test_the_cutoff_drops_the_unconditional_pass_after_its_share_of_the_steps():
    assert run(None)[1] == [2, 2, 2, 2]
    assert run(0.5)[1] == [2, 2, 1, 1]
    assert run(0.1)[1] == [2, 1, 1, 1]  # at least one guided step
    assert run(0.5, guidance=1.0)[1] == [1, 1, 1, 1]  # no guidance, nothing to cut
    assert torch.equal(run(1.0)[0], run(None)[0])
    assert not torch.equal(run(0.5)[0], run(None)[0])


@pytest.mark.parametrize("steps, cutoff, guided", [(4, None, 4), (4, 0.5, 2), (3, 0.5, 2), (20, 0.4, 8), (1, 0.2, 1)])
def test_guided_step_count(steps, cutoff, guided):
    assert guided_step_count(steps, cutoff) == guided


@pytest.mark.parametrize("cutoff", [0, -0.5, 1.5, "half", True])
def test_a_cutoff_outside_zero_to_one_is_refused(cutoff):
    with pytest.raises(InvalidRequest, match="guidance_cutoff"):
        SpeedOptions(device="cpu", guidance_cutoff=cutoff).validated()


def test_the_latent_backend_applies_the_cutoff_and_others_say_they_ignore_it():
    full = genimg.load("latent", device="cpu", match_concepts=False)
    cut = genimg.load("latent", device="cpu", match_concepts=False, guidance_cutoff=0.5)
    a = np.asarray(full.generate("red heart", steps=4, seed=2).images[0], dtype=int)
    b = np.asarray(cut.generate("red heart", steps=4, seed=2).images[0], dtype=int)
    assert 0 < np.abs(a - b).mean() < 40  # guided start, so the same emoji, finished without guidance
    for backend in ("gan", "latent-lcm"):
        notes = genimg.load(backend, device="cpu", guidance_cutoff=0.5).notes
        assert any("guidance cutoff" in note and "ignored" in note for note in notes)


@pytest.mark.parametrize("steps, strength, max_steps, expected", [
    (1, 1.0, 50, (1, 0)), (1, 0.5, 50, (2, 1)), (2, 0.3, 50, (7, 5)), (20, 0.5, 100, (40, 20)),
    (4, 0.05, 50, (50, 46)),  # capped: the strength is raised to 4 / 50
])
def test_strength_schedule_runs_the_asked_steps_from_the_noised_image(steps, strength, max_steps, expected):
    assert strength_schedule(steps, strength, max_steps) == expected


@pytest.mark.parametrize("strength", [0, -0.1, 1.5, "half", True, None])
def test_a_strength_outside_zero_to_one_is_refused(strength):
    with pytest.raises(InvalidRequest, match="strength"):
        strength_schedule(2, strength, 50)


def test_denoise_from_start_latents_runs_only_the_rest_of_the_schedule():
    scheduler = make_scheduler("ddim", DDPMScheduler(prediction_type="v_prediction").config)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    image = torch.full((1, 4, 8, 8), 0.5)
    context = torch.ones(1, 3, 8)
    steps_seen, unet = [], RecordingUNet()
    near = denoise(unet, scheduler, noise, context, 10, start_latents=image, start_step=9,
                   on_step=lambda done, total: steps_seen.append((done, total)))
    assert unet.batches == [1] and steps_seen == [(1, 1)]  # one step of ten: the last
    far = denoise(RecordingUNet(), scheduler, noise, context, 10, start_latents=image, start_step=2)
    scratch = denoise(RecordingUNet(), scheduler, noise, context, 10)
    # Entered late, the result stays nearer the image than one entered early, and differs from a run from noise.
    assert (near - image).abs().mean() < (far - image).abs().mean()
    assert not torch.equal(far, scratch)
