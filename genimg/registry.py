"""Which backends exist, and a small cache of loaded generators keyed by everything that shapes them."""
from __future__ import annotations

import importlib
import threading
from collections import OrderedDict

from genimg.assets import check_models
from genimg.errors import GenimgError, InvalidRequest, ModelLoadError, UnsupportedOption
from genimg.guards import free_device_memory, is_out_of_memory
from genimg.options import SpeedOptions
from genimg.threads import in_passing_thread

# name -> (module, loader function, one-line description)
BACKENDS = {
    "gan": ("genimg.backends.gan", "load", "text-conditional GAN: one forward pass per image"),
    "vae": ("genimg.backends.vae", "load", "text-conditional VAE: one decoder pass per image"),
    "latent": ("genimg.backends.latent", "load", "latent diffusion (embedded teacher, or any diffusers model=)"),
    "latent-lcm": ("genimg.backends.latent", "load_distilled", "latent diffusion distilled to 1-4 LCM steps"),
}

# backends whose embedded model has a channel-pruned variant (SpeedOptions.pruned; genimg.accel.prune)
PRUNED_BACKENDS = ("gan", "latent")

# Models load one at a time (generating with loaded ones goes on meanwhile): two threads importing diffusers' lazy
# modules at once fail with "partially initialized module", and from_pretrained's empty-weights init patches torch
# for the whole process ("Cannot copy out of meta tensor"). Both were seen when the first requests for two backends
# arrived together (genimg.serve.soak). Re-entrant: a loader may load a part through a loader.
LOAD_LOCK = threading.RLock()


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


class GeneratorCache:
    """Loaded generators, most recently used last. Each configuration loads once (concurrent callers wait for it);
    a load never blocks callers of other, loaded configurations, and a failed load leaves nothing cached."""

    def __init__(self, capacity: int = 6):
        self.capacity = capacity
        self._generators: OrderedDict = OrderedDict()
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
                generator = load_backend(backend, options, model)
                with self._lock:
                    self._generators[key] = generator
                    while len(self._generators) > self.capacity:
                        self._generators.popitem(last=False)
                return generator
            finally:
                with self._lock:
                    self._loading.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generators.clear()


DEFAULT_CACHE = GeneratorCache()
