"""Draws the Image to image tab's example pictures with genimg itself (the 20-step latent teacher, seed 0), shipped
as small PNGs under assets/examples/ (64x64 scaled 2x without smoothing).

    python -m tools.draw_examples     # from the repository root; rewrites assets/examples/*.png
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from ui.img2img import EXAMPLES, EXAMPLES_FOLDER


def main() -> None:
    import genimg

    generator = genimg.load("latent", device="cpu")
    EXAMPLES_FOLDER.mkdir(parents=True, exist_ok=True)
    for name, drawn_as, _, _ in EXAMPLES:
        image = generator.generate(drawn_as, seed=0).images[0]
        path = EXAMPLES_FOLDER / f"{name}.png"
        image.resize((128, 128), Image.NEAREST).save(path, optimize=True)
        print(f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: {drawn_as}")


if __name__ == "__main__":
    main()
