"""The GAN backend: one generator forward pass per image, conditioned on the MiniLM sentence embedding."""
from __future__ import annotations

from pathlib import Path

from genimg.assets import ASSETS, optional_model
from genimg.backends.base import BaseGenerator, seeded_noise
from genimg.backends.calibration import CALIBRATION_ID, pooled_calls
from genimg.models.gan import TextConditionalGenerator
from genimg.options import SpeedOptions
from genimg.accel import add_note, note_inapplicable, prepare_module


class GanGenerator(BaseGenerator):
    name = "gan"

    def __init__(self, options: SpeedOptions, model: str | Path | None = None):
        super().__init__(options)
        self.text = self._text_encoder()
        self.concepts = self._concept_index()
        note_inapplicable(self.options, self.notes, "GAN")
        if model is None and options.pruned:
            model = optional_model("gan-pruned", "python -m genimg train prune-gan")
        model = TextConditionalGenerator.from_pretrained(model or ASSETS / "gan", torch_dtype=self.dtype)
        if options.pruned:
            add_note(self.notes, f"pruned: generator channels {tuple(model.config.channels)} "
                                 "(unpruned: (256, 128, 64, 32, 16)).")
        model = model.to(self.device).eval()
        self.model = prepare_module(model, self.options, self.notes, name="GAN generator",
                                    calibration=lambda: pooled_calls(self, model.config.z_dim),
                                    calibration_id=CALIBRATION_ID)

    def _generate(self, request, text, timer, on_step):
        noise = seeded_noise((request.batch_size, self.model.config.z_dim), request.seed, self.device, self.dtype)
        with timer.stage("generate"):
            images = self.model(noise, text.pooled)
        return images


def load(options: SpeedOptions, model=None) -> GanGenerator:
    return GanGenerator(options, model)
