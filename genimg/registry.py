"""Which backends exist, and a small cache of loaded generators keyed by everything that shapes them."""
from __future__ import annotations

import importlib
import threading
from collections import OrderedDict

from genimg.errors import InvalidRequest
from genimg.options import SpeedOptions

# name -> (module, loader function, one-line description)
BACKENDS = {
    "gan": ("genimg.backends.gan", "load", "text-conditional GAN: one forward pass per image"),
    "vae": ("genimg.backends.vae", "load", "text-conditional VAE: one decoder pass per image"),
    "latent": ("genimg.backends.latent", "load", "latent diffusion (embedded teacher, or any diffusers model=)"),
    "latent-lcm": ("genimg.backends.latent", "load_distilled", "latent diffusion distilled to 1-4 LCM steps"),
}


class GeneratorCache:
    """Loaded generators, most recently used last; loading is serialised so a model is never loaded twice."""

    def __init__(self, capacity: int = 6):
        self.capacity = capacity
        self._generators: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, backend: str, options: SpeedOptions, model: str | None = None):
        if backend not in BACKENDS:
            raise InvalidRequest(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
        options = options.validated()
        key = (backend, model, options)
        with self._lock:
            if key not in self._generators:
                module, function, _ = BACKENDS[backend]
                self._generators[key] = getattr(importlib.import_module(module), function)(options, model)
                while len(self._generators) > self.capacity:
                    self._generators.popitem(last=False)
            self._generators.move_to_end(key)
            return self._generators[key]

    def clear(self) -> None:
        with self._lock:
            self._generators.clear()


DEFAULT_CACHE = GeneratorCache()
