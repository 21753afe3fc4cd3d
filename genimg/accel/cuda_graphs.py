"""CUDA graphs without torch.compile: capture once per input signature, then replay."""
from __future__ import annotations

import torch
from torch.utils import _pytree as pytree

from genimg.accel.wrapper import ModuleWrapper


class CudaGraphed(ModuleWrapper):
    """Replays a captured CUDA graph per input signature; tensors are copied into static buffers first.

    Outputs are cloned, so a caller may keep them across calls (schedulers keep past model outputs).
    """

    def __init__(self, module: torch.nn.Module, warmup_calls: int = 2):
        super().__init__()
        self.module, self.warmup_calls = module, warmup_calls
        self._graphs: dict = {}

    @staticmethod
    def _key(flat, spec):
        return spec, tuple((tuple(x.shape), x.dtype, x.device) if isinstance(x, torch.Tensor) else x for x in flat)

    def forward(self, *args, **kwargs):
        flat, spec = pytree.tree_flatten((args, kwargs))
        key = self._key(flat, spec)
        if key not in self._graphs:
            self._graphs[key] = self._capture(flat, spec)
        static_inputs, graph, static_output = self._graphs[key]
        for buffer, value in zip(static_inputs, flat):
            if isinstance(value, torch.Tensor):
                buffer.copy_(value)
        graph.replay()
        return pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, static_output)

    def _capture(self, flat, spec):
        static_inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in flat]
        args, kwargs = pytree.tree_unflatten(static_inputs, spec)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):  # lazy init and autotuning happen outside the capture
                self.module(*args, **kwargs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.module(*args, **kwargs)
        return static_inputs, graph, static_output
