"""Where the shipped models live; the one place that says so (training writes there, inference reads).

In this order:
1. ``GENIMG_ASSETS``, if set: a folder holding ``gan/``, ``vae/``, ``latent/``, ... (models kept elsewhere);
2. ``assets/models`` beside the package: a checkout of the repository;
3. ``genimg/shipped_models`` inside an installed package: ``pip install .`` copies ``assets/models`` there
   (package data, see pyproject.toml), so an installed genimg finds its models from any folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from genimg.errors import ModelLoadError

ENV_VARIABLE = "GENIMG_ASSETS"
CHECKOUT = Path(__file__).resolve().parents[1] / "assets" / "models"
PACKAGED = Path(__file__).resolve().parent / "shipped_models"
# Folders every embedded backend, the judge and concept matching read.
SHIPPED = ("gan", "vae", "latent", "latent-lcm", "latent-tiny-decoder", "judge", "concepts")


def models_folder(environ=os.environ) -> Path:
    """The models folder by the rules above; the checkout's path when none exists (check_models then says why)."""
    if environ.get(ENV_VARIABLE, "").strip():
        return Path(environ[ENV_VARIABLE]).expanduser().resolve()
    return next((folder for folder in (CHECKOUT, PACKAGED) if folder.is_dir()), CHECKOUT)


ASSETS = models_folder()


def check_models(folder: Path = ASSETS) -> Path:
    """``folder`` if it holds the shipped model folders, else a ModelLoadError that says how to point genimg at them."""
    missing = [name for name in SHIPPED if not (Path(folder) / name).is_dir()]
    if missing:
        source = (f"{ENV_VARIABLE}={os.environ[ENV_VARIABLE]}" if os.environ.get(ENV_VARIABLE, "").strip()
                  else "the checkout's assets/models and the installed package")
        raise ModelLoadError(
            f"genimg's shipped models are missing from {folder} ({', '.join(missing)}; looked in {source}). Install "
            "genimg from the repository (pip install . copies assets/models into the package), or set "
            f"{ENV_VARIABLE} to a folder holding gan/, vae/, latent/, ... (a checkout's assets/models).")
    return Path(folder)


def optional_model(name: str, made_by: str, folder: Path | None = None) -> Path:
    """A model folder beside the shipped ones that only some options read (the pruned variants): the path, or a
    ModelLoadError that names the command that makes it."""
    path = Path(folder or ASSETS) / name
    if not path.is_dir():
        raise ModelLoadError(f"{path} is missing: make it with `{made_by}` (or leave this option off).")
    return path
