"""Which backends exist, and a small cache of loaded generators keyed by everything that shapes them."""
from __future__ import annotations

import gc
import importlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from genimg import memory
from genimg.assets import check_models
from genimg.errors import GenimgError, InvalidRequest, ModelLoadError, UnsupportedOption
from genimg.guards import free_device_memory, is_out_of_memory
from genimg.options import SpeedOptions
from genimg.threads import LOAD_LOCK, in_passing_thread

# name -> (module, loader function, one-line description)
BACKENDS = {
    "gan": ("genimg.backends.gan", "load", "text-conditional GAN: one forward pass per image"),
    "vae": ("genimg.backends.vae", "load", "text-conditional VAE: one decoder pass per image"),
    "latent": ("genimg.backends.latent", "load", "latent diffusion (embedded teacher, or any diffusers model=)"),
    "latent-lcm": ("genimg.backends.latent", "load_distilled", "latent diffusion distilled to 1-4 LCM steps"),
}

# backends whose embedded model has a channel-pruned variant (SpeedOptions.pruned; genimg.accel.prune)
PRUNED_BACKENDS = ("gan", "latent")



def load_backend(backend: str, options: SpeedOptions, model: str | None):
    """The backend's loader; anything it throws becomes a ModelLoadError that names the backend."""
    module, function, _ = BACKENDS[backend]
    if model is None:  # an embedded model: say where genimg looked, not a hub error about a missing folder
        check_models()
    try:
        with LOAD_LOCK:  # in a thread of its own on a server's CPU (genimg.threads)
            loader = getattr(importlib.import_module(module), function)
            return in_passing_thread(lambda: loader(options, model), options.device)
    except GenimgError:
        raise
    except Exception as error:  # noqa: BLE001 - corrupt weights, missing files, drivers: all "could not load"
        failure, out_of_memory = f"{type(error).__name__}: {error}", is_out_of_memory(error)
    if out_of_memory:
        free_device_memory()
        raise ModelLoadError(f"Not enough device memory to load {backend!r} ({failure}); free the device or use "
                             "precision='bf16'.")
    raise ModelLoadError(f"Could not load the {backend!r} backend ({failure}); the other backends still work.")


# The share of the machine's memory the cached generators may hold (GENIMG_CACHE_MEMORY_GB sets it in GB instead).
CACHE_MEMORY_SHARE = 0.5


def default_memory_budget(environ=os.environ) -> int | None:
    """Bytes the cached generators may hold: GENIMG_CACHE_MEMORY_GB, or CACHE_MEMORY_SHARE of the machine's memory;
    None where the machine's memory cannot be read (the count alone bounds the cache)."""
    setting = environ.get("GENIMG_CACHE_MEMORY_GB", "").strip()
    if setting:
        try:
            budget = float(setting)
        except ValueError:
            raise InvalidRequest(f"GENIMG_CACHE_MEMORY_GB must be a number of GB, got {setting!r}.") from None
        return int(budget * 1e9)
    total = memory.total_bytes()
    return None if total is None else int(total * CACHE_MEMORY_SHARE)


class GeneratorCache:
    """Loaded generators, most recently used last. Each configuration loads once (concurrent callers wait for it);
    a load never blocks callers of other, loaded configurations, and a failed load leaves nothing cached.

    Bounded by count (``capacity``) and by memory: each generator is charged the resident memory its load added,
    and the least recently used go while the total is over ``memory_budget``. A local model= folder whose weights
    would not fit in the memory free (after the cached generators are let go) is refused before it loads."""

    def __init__(self, capacity: int = 6, memory_budget: int | None = -1):
        self.capacity = capacity
        self.memory_budget = default_memory_budget() if memory_budget == -1 else memory_budget
        self._generators: OrderedDict = OrderedDict()
        self._costs: dict = {}  # key -> resident bytes its load added
        self._loading: dict = {}  # key -> lock held while that key loads
        self._lock = threading.Lock()

    def get(self, backend: str, options: SpeedOptions, model: str | None = None):
        if backend not in BACKENDS:
            raise InvalidRequest(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
        if model is not None and backend != "latent":  # the other loaders would draw their embedded model instead
            raise InvalidRequest(f"A diffusers model (model={model!r}) runs on the 'latent' backend, not "
                                 f"{backend!r}: use backend='latent', or leave model out.")
        options = options.validated()
        if options.pruned and (backend not in PRUNED_BACKENDS or model is not None):
            raise UnsupportedOption(f"pruned: genimg ships pruned weights for the embedded "
                                    f"{' and '.join(PRUNED_BACKENDS)} models only, not for {model or backend!r}; "
                                    "use pruned=False.")
        if options.upscale != 1 and model is not None:
            raise UnsupportedOption(f"upscale={options.upscale}: the upscaler is for the embedded 64x64 models; "
                                    f"{model!r} draws at its own resolution. Use upscale=1 with model=, or an "
                                    "embedded backend (gan, vae, latent, latent-lcm) to upscale.")
        key = (backend, model, options)
        with self._lock:
            if key in self._generators:
                self._generators.move_to_end(key)
                return self._generators[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._generators:  # loaded by the caller we waited for
                    return self._generators[key]
            try:
                if model is not None:
                    self._make_room(model, options)
                before = memory.resident_bytes()
                generator = load_backend(backend, options, model)
                after = memory.resident_bytes()
                with self._lock:
                    self._generators[key] = generator
                    self._costs[key] = max(0, after - before) if None not in (before, after) else 0
                    self._evict(keep=key)
                return generator
            finally:
                with self._lock:
                    self._loading.pop(key, None)

    def held_bytes(self) -> int:
        """The resident memory the cached generators' loads added."""
        with self._lock:
            return sum(self._costs.get(key, 0) for key in self._generators)

    def _evict(self, keep=None) -> None:
        """Drop the least recently used generators (never ``keep``) while over the count or the memory budget. Under
        self._lock."""
        def over() -> bool:
            held = sum(self._costs.get(key, 0) for key in self._generators)
            return len(self._generators) > self.capacity or (
                self.memory_budget is not None and held > self.memory_budget and len(self._generators) > 1)

        dropped = False
        while over():
            oldest = next(iter(self._generators))
            if oldest == keep:
                break
            self._generators.pop(oldest)
            self._costs.pop(oldest, None)
            dropped = True
        if dropped:
            gc.collect()

    def _make_room(self, model: str, options: SpeedOptions) -> None:
        """Refuse a local model folder that would not fit in free memory, after letting the cached generators go."""
        parameters = memory.folder_parameters(Path(model))
        available = memory.available_bytes()
        if parameters is None or available is None:
            return  # a hub id not on disk yet, or a machine that does not say: the load itself will tell
        need = memory.load_estimate_bytes(parameters, options.precision, options.engine)
        if need <= available:
            return
        with self._lock:
            self._generators.clear()
            self._costs.clear()
        gc.collect()
        free_device_memory()
        available = memory.available_bytes() or available
        if need > available:
            raise ModelLoadError(
                f"{model} has {parameters / 1e9:.2f} billion parameters: loading it at {options.precision} on "
                f"{options.engine} needs about {memory.gib(need)}, and {memory.gib(available)} of memory is free. "
                "Free memory (close other programs), or use precision='bf16' (half the weights' memory).")

    def clear(self) -> None:
        with self._lock:
            self._generators.clear()
            self._costs.clear()


DEFAULT_CACHE = GeneratorCache()
