"""Architectures of the embedded latent-diffusion model: diffusers' own classes, sized for 64x64 emoji."""
from __future__ import annotations

from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, UNet2DConditionModel

from genimg.text import EMBEDDING_DIM

LATENT_CHANNELS = 4
LATENT_SIZE = 16  # 64x64 images -> 16x16x4 latents


def new_autoencoder() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=64, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 128), norm_num_groups=32,
    )


def new_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, layers_per_block=1,
        block_out_channels=(64, 128, 160), attention_head_dim=32, cross_attention_dim=EMBEDDING_DIM,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=32,
    )


def new_tiny_decoder() -> AutoencoderTiny:
    """TAESD's design with two up-samplings (4x) instead of three, to match the 16x16 latents."""
    return AutoencoderTiny(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        encoder_block_out_channels=(32, 32, 32), decoder_block_out_channels=(32, 32, 32),
        num_encoder_blocks=(1, 2, 2), num_decoder_blocks=(2, 2, 1), act_fn="relu",
        upsampling_scaling_factor=2, latent_magnitude=3, latent_shift=0.5, scaling_factor=1.0,
    )


def new_training_scheduler() -> DDPMScheduler:
    """Stable Diffusion's noise schedule, predicting v (better behaved at few steps than epsilon)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type="v_prediction", clip_sample=False,
                         timestep_spacing="trailing")
