"""Structured channel pruning: a model comes back narrower, as a model its own config describes.

Every pruned model is a plain instance of its class built from a config with fewer channels, so it saves and loads
with ``save_pretrained``/``from_pretrained`` like the unpruned one and every speed option (compile, OpenVINO, int8)
applies to it unchanged. Which channels go is decided by weight magnitude (L2, summed over the layers a channel
couples: Li et al., 2017; Fang et al., 2023, "DepGraph"); a short distillation fine-tune from the unpruned model
(``python -m genimg train prune-unet`` / ``prune-gan``) then recovers what the cut lost.

- The UNet goes through torch-pruning's dependency graph, which follows each channel through skip connections,
  concatenations, group norms and attention heads. Its one gap here is the GEGLU feed-forward (a projection split in
  two halves by ``chunk``), pruned below with torch-pruning's own layer pruners, the same index in both halves.
- The GAN generator reshapes its seed layer's output into a 4x4 grid and splits its FiLM layers with ``chunk``, which
  the graph cannot trace; its channels are chosen per block by magnitude and cut with the same layer pruners.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

# Widths of the shipped pruned variants. Group norm (32 groups) keeps every UNet width a multiple of 32.
PRUNED_UNET_CHANNELS = (64, 96, 128)  # from (64, 128, 160): 34% fewer parameters
PRUNED_GAN_CHANNELS = (192, 96, 48, 24, 12)  # from (256, 128, 64, 32, 16): 29% fewer parameters, 44% fewer FLOPs


def _torch_pruning():
    try:
        import torch_pruning
    except ImportError as error:
        raise ImportError("Channel pruning needs torch-pruning: pip install torch-pruning "
                          "(or genimg[prune]).") from error
    return torch_pruning


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_unet(unet, block_out_channels: tuple[int, ...] = PRUNED_UNET_CHANNELS):
    """A ``UNet2DConditionModel`` with ``block_out_channels`` narrowed to the given widths, keeping the channels of
    largest magnitude. The input model is left as it was."""
    tp = _torch_pruning()
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention import FeedForward
    from diffusers.models.attention_processor import Attention

    old, new = tuple(unet.config.block_out_channels), tuple(block_out_channels)
    groups = unet.config.norm_num_groups
    # A block as wide as the one before it has no shortcut convolution: equal neighbours must stay equal, and
    # unequal ones unequal, or the pruned weights would not fit the narrower config.
    same_shape = [a == b for a, b in zip(old, old[1:])] == [a == b for a, b in zip(new, new[1:])]
    if len(new) != len(old) or not same_shape or any(not 0 < n <= o or n % groups for n, o in zip(new, old)):
        raise ValueError(f"block_out_channels {new} must narrow {old} block by block, each a multiple of "
                         f"norm_num_groups={groups}, with neighbouring blocks equal exactly where they were")
    model = copy.deepcopy(unet).float().eval()
    last = len(old) - 1
    ratio_of_block = {f"down_blocks.{i}.": 1 - n / o for i, (n, o) in enumerate(zip(block_out_channels, old))}
    ratio_of_block |= {f"up_blocks.{last - i}.": r for i, r in enumerate(ratio_of_block.values())}
    ratio_of_block["mid_block."] = 1 - block_out_channels[-1] / old[-1]
    ratios = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and ".ff." not in name:
            ratio = next((r for prefix, r in ratio_of_block.items() if name.startswith(prefix)), 0.0)
            if ratio > 0:
                ratios[module] = ratio
    heads = {layer: module.heads for module in model.modules() if isinstance(module, Attention)
             for layer in (module.to_q, module.to_k, module.to_v)}
    # conv_in and the time embedding belong to block 0's width and the timestep features; conv_out to the latents.
    ignored = [model.conv_in, model.conv_out, model.time_embedding.linear_1, model.time_embedding.linear_2]
    sample = torch.zeros(2, model.config.in_channels, model.config.sample_size, model.config.sample_size)
    context = torch.zeros(2, 8, model.config.cross_attention_dim)
    with torch.enable_grad():  # the dependency graph is traced through autograd
        pruner = tp.pruner.MetaPruner(
            model, (sample, torch.tensor([1, 1]), context), importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=0.0, pruning_ratio_dict=ratios, ignored_layers=ignored, num_heads=heads,
            prune_head_dims=True, prune_num_heads=False, forward_fn=lambda m, inputs: m(*inputs).sample)
    with torch.no_grad():
        pruner.step()
    for module in model.modules():
        if isinstance(module, FeedForward):
            _prune_geglu(module, tp)
    config = dict(unet.config) | {"block_out_channels": list(block_out_channels)}
    pruned = UNet2DConditionModel.from_config(config)
    pruned.load_state_dict(model.state_dict(), strict=True)  # a shape the config does not describe fails here
    return pruned.to(unet.dtype).eval()


@torch.no_grad()
def _prune_geglu(feed_forward, tp) -> None:
    """GEGLU projects to (hidden, gate) halves; a hidden unit goes with its gate. diffusers fixes the inner width at
    4x the model width, so each feed-forward is cut to that."""
    projection, output = feed_forward.net[0].proj, feed_forward.net[2]
    inner, keep = output.in_features, 4 * projection.in_features
    if keep >= inner:
        return
    score = (projection.weight[:inner].norm(dim=1) * projection.weight[inner:].norm(dim=1)
             * output.weight.norm(dim=0))
    dropped = score.argsort()[: inner - keep].tolist()
    tp.prune_linear_out_channels(projection, dropped + [i + inner for i in dropped])
    tp.prune_linear_in_channels(output, dropped)


@torch.no_grad()
def prune_generator(generator, channels: tuple[int, ...] = PRUNED_GAN_CHANNELS):
    """A ``TextConditionalGenerator`` with the given block widths, keeping the channels of largest magnitude."""
    tp = _torch_pruning()

    old = tuple(generator.config.channels)
    if len(channels) != len(old) or any(not 4 <= n <= o for n, o in zip(channels, old)):
        raise ValueError(f"channels {channels} must narrow {old} block by block, each at least 4")
    model = copy.deepcopy(generator).float().eval()
    decoder = model.decoder
    # Block inputs: the seed's 4x4 grid, then each block's output (the residual stream the next block reads).
    stream = [_drop(_seed_scores(decoder.seed, old[0]), channels[0])]
    _prune_seed(decoder.seed, stream[0], tp)
    for index, block in enumerate(decoder.blocks):
        tp.prune_conv_in_channels(block.conv1, stream[-1])
        tp.prune_conv_in_channels(block.skip, stream[-1])
        # an inner channel: what conv1 writes into it times what conv2 reads from it
        inner = _drop(block.conv1.weight.flatten(1).norm(dim=1) * block.conv2.weight.transpose(0, 1).flatten(1)
                      .norm(dim=1), channels[index + 1])
        tp.prune_conv_out_channels(block.conv1, inner)
        tp.prune_linear_out_channels(block.film, inner + [i + old[index + 1] for i in inner])  # (scale, shift)
        tp.prune_conv_in_channels(block.conv2, inner)
        out = _drop(block.conv2.weight.flatten(1).norm(dim=1) + block.skip.weight.flatten(1).norm(dim=1),
                    channels[index + 1])
        tp.prune_conv_out_channels(block.conv2, out)
        tp.prune_conv_out_channels(block.skip, out)
        stream.append(out)
    tp.prune_conv_in_channels(decoder.to_rgb, stream[-1])
    pruned = type(generator).from_config(dict(generator.config) | {"channels": list(channels)})
    pruned.load_state_dict(model.state_dict(), strict=True)
    return pruned.to(generator.dtype).eval()


def _seed_scores(seed: nn.Linear, width: int) -> torch.Tensor:
    return seed.weight.view(width, 16, -1).norm(dim=(1, 2))  # rows are (channel, 4x4 position)


def _prune_seed(seed: nn.Linear, dropped: list[int], tp) -> None:
    tp.prune_linear_out_channels(seed, [channel * 16 + position for channel in dropped for position in range(16)])


def _drop(scores: torch.Tensor, keep: int) -> list[int]:
    """Indices of the ``len(scores) - keep`` smallest scores, the channels to remove."""
    return sorted(scores.argsort()[: len(scores) - keep].tolist())
