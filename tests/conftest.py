import os
import socket

import pytest

# Tests never reach a hub: everything they load is shipped in assets/ or built inside the test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Datasets and checkpoints written by tests go to a temporary cache, never the user's."""
    os.environ["GENIMG_CACHE"] = str(tmp_path_factory.mktemp("genimg-cache"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    """The app launched in-process on a free loopback port, for one test module."""
    import app

    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    yield url
    demo.close()
