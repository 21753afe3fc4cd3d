"""Loading backends from several threads at once, as a server's first concurrent requests do."""
import subprocess
import sys
from pathlib import Path

import pytest

import genimg

ROOT = Path(__file__).resolve().parents[1]
RACE = """
import threading
import genimg
from genimg.evaluate.judge import default_judge
errors = []
def work(load):
    try:
        load()
    except Exception as error:
        errors.append(repr(error)[:300])
loads = [lambda: genimg.load("gan"), lambda: genimg.load("latent-lcm"), lambda: genimg.load("vae"), default_judge]
threads = [threading.Thread(target=work, args=(load,)) for load in loads]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(errors)
"""


@pytest.mark.slow
def test_first_loads_of_several_backends_at_once_all_succeed():
    """A fresh process (imports not yet done), four loads started together: diffusers' lazy imports and
    from_pretrained's empty-weights init used to fail here with ImportError or 'copy out of meta tensor'."""
    result = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # without LOAD_LOCK the imports alone failed 4 of 4 runs


def _header_only_safetensors(path, shape, dtype="F16"):
    """A safetensors file whose header declares one tensor (its data left out: only the header is ever read)."""
    import json
    import struct

    header = json.dumps({"weight": {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def test_the_cache_lets_the_least_recently_used_go_when_their_memory_is_over_the_budget(monkeypatch):
    from genimg import memory, registry
    from genimg.options import SpeedOptions

    resident = iter(range(0, 100 * 10**9, 10**9))  # every reading 1 GB more: each load adds 1 GB
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(resident))
    monkeypatch.setattr(registry, "load_backend", lambda backend, options, model: object())
    cache = registry.GeneratorCache(capacity=6, memory_budget=int(2.5e9))
    seeds = [SpeedOptions(device="cpu", precision=precision) for precision in ("fp32", "bf16")]
    first = cache.get("gan", seeds[0])
    cache.get("vae", seeds[0])
    assert cache.held_bytes() == 2 * 10**9
    cache.get("gan", seeds[0])  # used again: now the most recent
    cache.get("gan", seeds[1])  # 3 GB > 2.5 GB: the least recently used (vae) goes, not gan fp32
    assert cache.held_bytes() == 2 * 10**9
    assert cache.get("gan", seeds[0]) is first
    keys = [key[0] for key in cache._generators]
    assert keys == ["gan", "gan"]


def test_a_model_folder_too_large_for_free_memory_is_refused_before_it_loads(monkeypatch, tmp_path):
    from genimg import memory, registry
    from genimg.options import SpeedOptions

    _header_only_safetensors(tmp_path / "unet.safetensors", [50_000, 40_000])  # 2 billion fp16 parameters
    assert memory.folder_parameters(tmp_path) == 2 * 10**9
    loads = []
    monkeypatch.setattr(registry, "load_backend", lambda backend, options, model: loads.append(model) or object())
    monkeypatch.setattr(memory, "available_bytes", lambda: 6 * 2**30)
    cache = registry.GeneratorCache(memory_budget=None)
    cache.get("gan", SpeedOptions(device="cpu"))
    with pytest.raises(genimg.ModelLoadError, match=r"2\.00 billion parameters.*needs about 9\.3 GiB.*6\.0 GiB"):
        cache.get("latent", SpeedOptions(device="cpu"), str(tmp_path))
    assert loads == [None]  # never loaded; the cached generators were let go to make room
    assert not cache._generators
    # bf16 halves it: 4.7 GiB fits
    cache.get("latent", SpeedOptions(device="cpu", precision="bf16"), str(tmp_path))
    assert loads == [None, str(tmp_path)]


def test_the_cache_memory_budget_setting():
    from genimg.registry import default_memory_budget

    assert default_memory_budget({"GENIMG_CACHE_MEMORY_GB": "4"}) == 4 * 10**9
    assert default_memory_budget({}) > 0
    with pytest.raises(genimg.InvalidRequest, match="GENIMG_CACHE_MEMORY_GB"):
        default_memory_budget({"GENIMG_CACHE_MEMORY_GB": "lots"})
