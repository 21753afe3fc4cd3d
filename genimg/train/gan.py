"""Train the text-conditional GAN: hinge loss with a projection critic, plus an L1 term to the captioned emoji.

The L1 term (as in pix2pix) anchors each caption to its emoji so the generator converges in minutes; the adversarial
term keeps the images sharp. ``python -m genimg train gan --out assets/models/gan``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from genimg.models.gan import ProjectionDiscriminator, TextConditionalGenerator
from genimg.train.common import (
    TrainConfig, data_generator, load_training_data, make_accelerator, save_half, tracked_ema, train_loop,
    write_card,
)

L1_WEIGHT = 10.0
# The first H200 run used 1.0 here: the critic won outright (hinge loss ~0.04) and its gradients painted
# high-frequency noise over every image. A weaker adversarial term keeps the sharpening without the noise.
ADVERSARIAL_WEIGHT = 0.1
# The shipped generator is an exponential moving average of the trained one (as in StyleGAN/BigGAN): it averages out
# the step-to-step speckle the critic's gradients paint. R1 (a penalty on the critic's gradient at real images,
# applied every R1_EVERY steps, "lazy" as in StyleGAN2) keeps those gradients smooth in the first place.
EMA_DECAY = 0.999
R1_GAMMA = 1.0
R1_EVERY = 4


def r1_penalty(critic, real: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """R1_GAMMA / 2 x the squared norm of the critic's gradient at real images (Mescheder et al., 2018)."""
    real = real.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(real, text).sum(), real, create_graph=True)
    return 0.5 * R1_GAMMA * gradient.pow(2).sum(dim=(1, 2, 3)).mean()


def train(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    # Fine-tuning starts the generator (not the critic, which is not shipped) from a saved folder.
    generator = (TextConditionalGenerator.from_pretrained(config.init_from, torch_dtype=torch.float32)
                 if config.init_from else TextConditionalGenerator())
    critic = ProjectionDiscriminator()
    ema = tracked_ema(accelerator, generator, EMA_DECAY)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.learning_rate, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.learning_rate, betas=(0.5, 0.99))
    generator, critic, opt_g, opt_d = accelerator.prepare(generator, critic, opt_g, opt_d)
    z_dim = accelerator.unwrap_model(generator).config.z_dim

    def step(index: int) -> dict:
        rng = data_generator(config, index)
        emoji, caption = bank.sample(config.batch_size, len(dataset), rng)
        real, text = images[emoji], bank.pooled[caption].float()
        noise = torch.randn(len(emoji), z_dim, device=accelerator.device)
        fake = generator(noise, text)
        shuffled = text[torch.roll(torch.arange(len(text)), 1)]  # real image, wrong caption: also "fake"
        d_loss = (F.relu(1 - critic(real, text)).mean() + 0.5 * F.relu(1 + critic(fake.detach(), text)).mean()
                  + 0.5 * F.relu(1 + critic(real, shuffled)).mean())
        if index % R1_EVERY == 0:
            d_loss = d_loss + R1_EVERY * r1_penalty(critic, real, text)
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss)
        opt_d.step()
        adversarial = -critic(fake, text).mean()
        l1 = (fake - real).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(ADVERSARIAL_WEIGHT * adversarial + L1_WEIGHT * l1)
        opt_g.step()
        ema.update_parameters(accelerator.unwrap_model(generator))
        return {"d": d_loss.item(), "g_adv": adversarial.item(), "l1": l1.item()}

    summary = train_loop(accelerator, config, step, "gan")
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(ema.module, out)
        write_card(out, "genimg GAN (text-conditional generator)", summary,
                   f"{ADVERSARIAL_WEIGHT} x hinge loss with a projection critic (lazy R1, gamma {R1_GAMMA}) plus "
                   f"{L1_WEIGHT} x L1 to the captioned emoji; the weights are the generator's EMA ({EMA_DECAY}).")
    return summary
