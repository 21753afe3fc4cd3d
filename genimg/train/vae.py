"""Train the text-conditional VAE (only its decoder runs at inference). ``python -m genimg train vae``."""
from __future__ import annotations

from pathlib import Path

import torch

from genimg.models.cvae import TextConditionalVAE
from genimg.train.common import (
    TrainConfig, data_generator, load_training_data, make_accelerator, save_half, train_loop, write_card,
)

# Per image (summed over z). At 1e-3 (first run) the posterior drifted ~21 nats from the prior and decoding
# z ~ N(0, I) gave muddy images; a stronger pull keeps prior samples on the data, since the caption carries the content.
KL_WEIGHT = 1e-2


def train(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    # Fine-tuning starts from a saved VAE folder (encoder and decoder both: the encoder shapes what the decoder sees).
    model = (TextConditionalVAE.from_pretrained(config.init_from, torch_dtype=torch.float32)
             if config.init_from else TextConditionalVAE())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)

    def step(index: int) -> dict:
        rng = data_generator(config, index)
        emoji, caption = bank.sample(config.batch_size, len(dataset), rng)
        real, text = images[emoji], bank.pooled[caption].float()
        reconstruction, mean, log_var = model(real, text)
        recon = (reconstruction - real).abs().mean() + ((reconstruction - real) ** 2).mean()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(recon + KL_WEIGHT * kl)
        optimizer.step()
        return {"recon": recon.item(), "kl": kl.item()}

    summary = train_loop(accelerator, config, step, "vae")
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(accelerator.unwrap_model(model), out)
        write_card(out, "genimg VAE (text-conditional)", summary,
                   f"L1 + MSE reconstruction, KL weight {KL_WEIGHT}; inference samples z ~ N(0, I).")
    return summary
