"""Train the embedded latent-diffusion model, saved as a diffusers StableDiffusionPipeline folder.

Three stages, each resumable: ``autoencoder`` (AutoencoderKL, 64x64 -> 16x16x4), ``unet`` (text-conditioned
UNet2DConditionModel on MiniLM token embeddings, v-prediction, min-SNR weighting, EMA) and ``tiny_decoder``
(AutoencoderTiny distilled from the KL autoencoder). ``python -m genimg train latent --out assets/models/latent``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from torch.nn import functional as F
from tqdm.auto import tqdm

from genimg.models.latent import new_autoencoder, new_tiny_decoder, new_training_scheduler, new_unet
from genimg.text import load_tokenizer
from genimg.train.common import (
    TrainConfig, data_generator, load_training_data, make_accelerator, save_half, tracked_ema, train_loop,
    write_card,
)
from genimg.train.data import cache_dir

CFG_DROPOUT = 0.1  # captions replaced by the empty prompt, so classifier-free guidance works at inference
MIN_SNR_GAMMA = 5.0
EMA_DECAY = 0.999


def train_autoencoder(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, _ = load_training_data(config, accelerator.device)
    vae = new_autoencoder()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.learning_rate)
    vae, optimizer = accelerator.prepare(vae, optimizer)

    def step(index: int) -> dict:
        rng = data_generator(config, index)
        batch = images[torch.randint(len(dataset), (config.batch_size,), generator=rng).to(images.device)]
        with accelerator.autocast():
            posterior = accelerator.unwrap_model(vae).encode(batch).latent_dist
            reconstruction = accelerator.unwrap_model(vae).decode(posterior.sample()).sample.float()
        recon = (reconstruction - batch).abs().mean() + F.mse_loss(reconstruction, batch)
        kl = posterior.kl().mean() / batch[0].numel()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(recon + 1e-3 * kl)
        optimizer.step()
        return {"recon": recon.item(), "kl": kl.item()}

    summary = train_loop(accelerator, config, step, "autoencoder")
    if not accelerator.is_main_process:
        return summary
    vae = accelerator.unwrap_model(vae).eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(images[i:i + 512]).latent_dist.mean for i in range(0, len(images), 512)])
    vae.register_to_config(scaling_factor=float(1.0 / latents.float().std()))
    save_half(vae, Path(config.out_dir) / "vae")
    summary["scaling_factor"] = vae.config.scaling_factor
    write_card(Path(config.out_dir) / "vae", "genimg latent autoencoder (AutoencoderKL)", summary)
    return summary


class DatasetLatents:
    """The KL autoencoder's posterior for every image, encoded once and sampled each step (in the UNet's scale).
    Encoding the scenes' 40,000 images takes about a quarter of an hour on 2 CPU cores, so the posteriors are cached
    on disk, keyed by the autoencoder's weights and the images."""

    @torch.no_grad()
    def __init__(self, folder: Path, images: torch.Tensor):
        self.vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).to(images.device).eval()
        self.scaling = self.vae.config.scaling_factor
        path = cache_dir() / f"latents-{self._fingerprint(folder, images)}.pt"
        if path.exists():
            cached = torch.load(path)
            self.mean, self.std = cached["mean"].to(images.device), cached["std"].to(images.device)
            return
        means, stds = [], []
        for start in tqdm(range(0, len(images), 512), desc="encoding latents"):
            dist = self.vae.encode(images[start:start + 512]).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        self.mean, self.std = torch.cat(means), torch.cat(stds)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"mean": self.mean.cpu(), "std": self.std.cpu()}, path)

    @staticmethod
    def _fingerprint(folder: Path, images: torch.Tensor) -> str:
        digest = hashlib.sha1()
        for weights in sorted((folder / "vae").glob("*.safetensors")):
            digest.update(weights.read_bytes())
        digest.update(images.cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def sample(self, index: torch.Tensor) -> torch.Tensor:
        mean = self.mean[index]
        return (mean + self.std[index] * torch.randn_like(mean)) * self.scaling


def min_snr_weights(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    return snr.clamp(max=MIN_SNR_GAMMA) / (snr + 1)  # min-SNR-gamma for v-prediction (Hang et al., 2023)


def noisy_batch(config: TrainConfig, step: int, bank, num_emoji: int, dataset_latents: DatasetLatents, scheduler):
    """One step's training batch: (emoji, caption) pairs drawn from the bank, their latents (B, 4, 16, 16), the
    caption tokens with CFG_DROPOUT of them replaced by the empty prompt, and the latents noised at random timesteps.
    Returns (latents, noise, timesteps, noisy, context)."""
    emoji, caption = bank.sample(config.batch_size, num_emoji, data_generator(config, step))
    latents = dataset_latents.sample(emoji)
    context = bank.tokens[caption].float()
    dropped = torch.rand(len(emoji), device=context.device) < CFG_DROPOUT
    context[dropped] = bank.empty_tokens.float()
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(emoji),), device=latents.device)
    return latents, noise, timesteps, scheduler.add_noise(latents, noise, timesteps), context


def train_unet(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    folder = Path(config.out_dir)
    dataset_latents = DatasetLatents(folder, images)
    scheduler = new_training_scheduler()
    # Fine-tuning starts from shipped weights (and their EMA); a fresh run from the architecture.
    unet = (UNet2DConditionModel.from_pretrained(Path(config.init_from) / "unet", torch_dtype=torch.float32)
            if config.init_from else new_unet())
    ema = tracked_ema(accelerator, unet, EMA_DECAY)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=1e-2)
    unet, optimizer = accelerator.prepare(unet, optimizer)

    def step(index: int) -> dict:
        latents, noise, timesteps, noisy, context = noisy_batch(config, index, bank, len(dataset), dataset_latents,
                                                                scheduler)
        target = scheduler.get_velocity(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, context).sample
        per_sample = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * min_snr_weights(scheduler, timesteps)).mean()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.update_parameters(accelerator.unwrap_model(unet))
        return {"loss": loss.item()}

    summary = train_loop(accelerator, config, step, "unet")
    if accelerator.is_main_process:
        save_pipeline(folder, ema.module, dataset_latents.vae, scheduler)
        write_card(folder, "genimg latent diffusion (teacher)", summary,
                   f"v-prediction, min-SNR-{MIN_SNR_GAMMA} weighting, EMA {EMA_DECAY}, caption dropout {CFG_DROPOUT}. "
                   "Load with genimg.load('latent') or StableDiffusionPipeline.from_pretrained(folder, "
                   "text_encoder=genimg.text.load_text_model(), tokenizer=genimg.text.load_tokenizer()).")
    return summary


def save_pipeline(folder: Path, unet, vae, training_scheduler) -> None:
    """A stock StableDiffusionPipeline folder. The MiniLM text encoder stays in its own package (90 MB, not copied):
    users pass it as ``text_encoder=`` (see the model card), so the folder is written component by component."""
    import diffusers

    scheduler = DPMSolverMultistepScheduler.from_config(training_scheduler.config, algorithm_type="dpmsolver++")
    save_half(unet, folder / "unet")
    save_half(vae, folder / "vae")
    scheduler.save_pretrained(folder / "scheduler")
    tokenizer = load_tokenizer()
    tokenizer.save_pretrained(folder / "tokenizer")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
             "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
             "safety_checker": [None, None], "scheduler": ["diffusers", type(scheduler).__name__],
             "text_encoder": ["transformers", "BertModel"], "tokenizer": ["transformers", type(tokenizer).__name__],
             "unet": ["diffusers", type(unet).__name__], "vae": ["diffusers", type(vae).__name__]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def train_kl_decoder(config: TrainConfig) -> dict:
    """Fine-tune the KL autoencoder's decoder (and post-quant conv) alone: the encoder, hence the latents the UNet
    learned, stay exactly as they are. The autoencoder's joint run was short; its decoder is the blurrier of the two."""
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    folder = Path(config.out_dir)
    dataset_latents = DatasetLatents(folder, images)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=config.learning_rate)
    vae, optimizer = accelerator.prepare(vae, optimizer)

    def step(step_index: int) -> dict:
        index, _ = bank.sample(config.batch_size, len(dataset), data_generator(config, step_index))
        latents = dataset_latents.sample(index) / dataset_latents.scaling
        with accelerator.autocast():
            decoded = accelerator.unwrap_model(vae).decode(latents).sample.float()
        loss = (decoded - images[index]).abs().mean() + F.mse_loss(decoded, images[index])
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        return {"decode": loss.item()}

    summary = train_loop(accelerator, config, step, "kl_decoder")
    if accelerator.is_main_process:
        save_half(accelerator.unwrap_model(vae), folder / "vae")
        write_card(folder / "vae", "genimg latent autoencoder (AutoencoderKL), decoder fine-tuned", summary,
                   "Decoder and post-quant conv fine-tuned on the frozen encoder's posterior samples (L1 + MSE).")
    return summary


def train_tiny_decoder(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, _ = load_training_data(config, accelerator.device)
    folder = Path(config.out_dir)
    dataset_latents = DatasetLatents(folder, images)
    tiny = new_tiny_decoder()
    optimizer = torch.optim.AdamW(tiny.parameters(), lr=config.learning_rate)
    tiny, optimizer = accelerator.prepare(tiny, optimizer)

    def step(step_index: int) -> dict:
        rng = data_generator(config, step_index)
        index = torch.randint(len(dataset), (config.batch_size,), generator=rng).to(images.device)
        latents = dataset_latents.sample(index)
        model = accelerator.unwrap_model(tiny)
        with accelerator.autocast():
            decoded = model.decode(latents).sample.float()
            encoded = model.encode(images[index]).latents.float()
        decode_loss = (decoded - images[index]).abs().mean() + F.mse_loss(decoded, images[index])
        encode_loss = F.mse_loss(encoded, latents)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(decode_loss + encode_loss)
        optimizer.step()
        return {"decode": decode_loss.item(), "encode": encode_loss.item()}

    summary = train_loop(accelerator, config, step, "tiny_decoder")
    if not accelerator.is_main_process:
        return summary
    out = folder.parent / f"{folder.name}-tiny-decoder"
    save_half(accelerator.unwrap_model(tiny), out)
    write_card(out, "genimg tiny decoder (AutoencoderTiny for the latent model)", summary,
               "Decoder trained to reproduce images from the KL autoencoder's scaled latents; encoder to predict them.")
    return summary
