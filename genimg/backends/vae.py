"""The VAE backend: z ~ N(0, I) through the text-conditional decoder (the encoder is only for training)."""
from __future__ import annotations

from pathlib import Path

from genimg.accel import note_inapplicable, prepare_module
from genimg.assets import ASSETS
from genimg.backends.base import BaseGenerator, seeded_noise
from genimg.backends.calibration import CALIBRATION_ID, pooled_calls
from genimg.models.cvae import TextConditionalVAE
from genimg.options import SpeedOptions


class VaeGenerator(BaseGenerator):
    name = "vae"

    def __init__(self, options: SpeedOptions, model: str | Path | None = None):
        super().__init__(options)
        self.text = self._text_encoder()
        self.concepts = self._concept_index()
        note_inapplicable(self.options, self.notes, "VAE")
        vae = TextConditionalVAE.from_pretrained(model or ASSETS / "vae", torch_dtype=self.dtype)
        self.z_dim = vae.config.z_dim
        self.decoder = prepare_module(vae.decoder.to(self.device).eval(), self.options, self.notes, name="VAE decoder",
                                      calibration=lambda: pooled_calls(self, self.z_dim), calibration_id=CALIBRATION_ID)

    def _generate(self, request, text, timer, on_step):
        z = seeded_noise((request.batch_size, self.z_dim), request.seed, self.device, self.dtype)
        with timer.stage("decode"):
            images = self.decoder(z, text.pooled)
        return images


def load(options: SpeedOptions, model=None) -> VaeGenerator:
    return VaeGenerator(options, model)
