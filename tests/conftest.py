import os
import socket

import pytest

# Tests never reach a hub: everything they load is shipped in assets/ or built inside the test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The app's warm start (ui/warm_start.py) loads models in the background of every launch; tests load what they use
# themselves, and tests/test_warm_start.py turns it on where it is what they check.
os.environ.setdefault("GENIMG_WARM_START", "0")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Datasets and checkpoints written by tests go to a temporary cache, never the user's."""
    os.environ["GENIMG_CACHE"] = str(tmp_path_factory.mktemp("genimg-cache"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pruned_models_folder(tmp_path_factory):
    """A models folder (the shipped ones linked) with pruned variants cut from the shipped models (not fine-tuned:
    genimg ships none, see docs/benchmarks.md, "Pruning"), as `python -m genimg train prune-unet` / `prune-gan`
    would lay them out."""
    import shutil

    import torch
    from diffusers import UNet2DConditionModel

    from genimg.accel.prune import prune_generator, prune_unet
    from genimg.assets import ASSETS
    from genimg.models.gan import TextConditionalGenerator

    folder = tmp_path_factory.mktemp("pruned-models")
    gan = TextConditionalGenerator.from_pretrained(ASSETS / "gan", torch_dtype=torch.float32)
    prune_generator(gan).save_pretrained(folder / "gan-pruned")
    unet = UNet2DConditionModel.from_pretrained(ASSETS / "latent" / "unet", torch_dtype=torch.float32)
    prune_unet(unet).save_pretrained(folder / "latent-pruned" / "unet")
    shutil.copytree(ASSETS / "latent" / "scheduler", folder / "latent-pruned" / "scheduler")
    for shipped in ASSETS.iterdir():  # the shipped models beside them, as links
        if not (folder / shipped.name).exists():
            (folder / shipped.name).symlink_to(shipped, target_is_directory=True)
    return folder


@pytest.fixture
def pruned_models(pruned_models_folder, monkeypatch):
    """genimg reads its pruned variants from pruned_models_folder during the test."""
    import genimg.assets

    monkeypatch.setattr(genimg.assets, "ASSETS", pruned_models_folder)
    return pruned_models_folder


@pytest.fixture(scope="module")
def app_url():
    """The app launched in-process on a free loopback port, for one test module."""
    import app

    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    yield url
    demo.close()
