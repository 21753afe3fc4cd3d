"""What the speed options' wrappers share: they answer for the module inside them, so callers that read its
attributes (diffusers reads ``unet.config``, ``vae.dtype``, ...) see no difference."""
from __future__ import annotations

import torch


class ModuleWrapper(torch.nn.Module):
    """A module around another, held as ``self.<wrapped>``; attributes the wrapper lacks are looked up there."""

    wrapped = "module"  # the attribute that holds the wrapped module

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == self.wrapped:  # not set yet (inside __init__): no module to ask
                raise
            return getattr(getattr(self, self.wrapped), name)
