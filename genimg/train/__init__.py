"""Training entry points: ``python -m genimg train <model>``; each writes a folder under ``assets/models``."""
from __future__ import annotations

from genimg.train.common import TrainConfig

# model -> (module, function, default output folder, default batch size, default learning rate)
TRAINERS = {
    "gan": ("genimg.train.gan", "train", "assets/models/gan", 256, 2e-4),
    "vae": ("genimg.train.vae", "train", "assets/models/vae", 256, 5e-4),
    "judge": ("genimg.train.judge", "train", "assets/models/judge", 512, 1e-3),
    "autoencoder": ("genimg.train.latent", "train_autoencoder", "assets/models/latent", 128, 5e-4),
    "unet": ("genimg.train.latent", "train_unet", "assets/models/latent", 256, 3e-4),
    "tiny-decoder": ("genimg.train.latent", "train_tiny_decoder", "assets/models/latent", 256, 1e-3),
    "kl-decoder": ("genimg.train.latent", "train_kl_decoder", "assets/models/latent", 64, 1e-4),
    "distill": ("genimg.train.distill", "train", "assets/models/latent-lcm", 256, 5e-5),
    "concepts": ("genimg.train.concepts", "build", "assets/models/concepts", 0, 0.0),
    "prune-unet": ("genimg.train.prune", "train_unet", "assets/models/latent-pruned", 64, 1e-4),
    "prune-gan": ("genimg.train.prune", "train_gan", "assets/models/gan-pruned", 256, 2e-4),
    "upscaler": ("genimg.train.upscaler", "train", "assets/models/upscaler", 16, 1e-3),
}
# distillation and pruning: the model each learns from, unless --teacher names another
DEFAULT_TEACHERS = {"distill": "assets/models/latent", "prune-unet": "assets/models/latent",
                    "prune-gan": "assets/models/gan"}
LATENT_STAGES = ("autoencoder", "unet", "tiny-decoder")


def run(model: str, config: TrainConfig) -> dict:
    import importlib

    module, function, *_ = TRAINERS[model]
    return getattr(importlib.import_module(module), function)(config)
