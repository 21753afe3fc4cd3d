"""Known start-up noise of the libraries genimg imports, filtered where it starts (``filter_known_noise``, called by
``genimg/__init__.py`` before anything imports diffusers).

diffusers imports torchao whenever one of its models is imported (to register torchao's tensor types for loading
torchao-serialised checkpoints), whether or not anything asked for a quantisation. torchao then logs that its optional
CUDA/mxfp8 kernels did not load, torch that torchao registers enums it no longer needs registered, and diffusers that
torchao's tensor objects could not be imported. None of it concerns genimg, which imports torchao itself only for
``quantize=...`` (genimg.accel.quantize) and never loads torchao-serialised checkpoints. Each filter drops one message,
matched by its logger and its words; everything else those loggers say still shows.
"""
from __future__ import annotations

import logging
import re

# (logger name, the message's words): what is dropped, and nothing else.
KNOWN_NOISE = (
    ("torchao", r"^Failed to load .*torchao/_C"),
    ("torch.utils._pytree", r"is an Enum subclass and is now natively supported by torch\.compile"),
    ("diffusers.quantizers.torchao.torchao_quantizer", r"^Unable to import `torchao` Tensor objects"),
)


class DropMessage(logging.Filter):
    """Drops the records whose message matches ``pattern``."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def filter_known_noise() -> None:
    """Installs KNOWN_NOISE's filters on their loggers, once per process."""
    for name, pattern in KNOWN_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessage) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(DropMessage(pattern))
