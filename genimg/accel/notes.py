"""Notes a generator returns in ``result.info["notes"]``: what an option did, or why it did nothing."""
from __future__ import annotations

from genimg.options import SpeedOptions


def add_note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def note_inapplicable(options: SpeedOptions, notes: list[str], backend: str) -> None:
    """For backends without a sampler or a latent decoder: say that those options do nothing here."""
    if options.scheduler:
        add_note(notes, f"scheduler: the {backend} backend draws in one pass and has no sampler; ignored.")
    if options.tiny_decoder:
        add_note(notes, f"tiny decoder: only the latent backends decode latents; ignored by the {backend} backend.")
    if options.guidance_cutoff is not None:
        add_note(notes, f"guidance cutoff: the {backend} backend has no guidance pass to cut; ignored.")
