import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

import genimg
from genimg.errors import InvalidRequest
from genimg.options import SpeedOptions
from genimg.sampling import denoise, guided_step_count, make_scheduler


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
