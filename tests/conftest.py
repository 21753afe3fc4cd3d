import os

import pytest

# Tests never reach a hub: everything they load is shipped in assets/ or built inside the test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Datasets and checkpoints written by tests go to a temporary cache, never the user's."""
    os.environ["GENIMG_CACHE"] = str(tmp_path_factory.mktemp("genimg-cache"))
