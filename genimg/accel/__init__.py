"""Making a module faster: fused QKV, channels_last, torch.compile, CUDA graphs.

Each option is a no-op where the hardware cannot use it, and says so in the generation's notes. ``prepare_module``
applies what a ``SpeedOptions`` asks for, in order; the backends call nothing else from here.
"""
from genimg.accel.cuda_graphs import CudaGraphed
from genimg.accel.fuse import fuse_qkv
from genimg.accel.inductor import Frozen, compile_module
from genimg.accel.notes import add_note, note_inapplicable
from genimg.accel.prepare import prepare_module, prepare_text_embedder

__all__ = ["CudaGraphed", "Frozen", "add_note", "compile_module", "fuse_qkv", "note_inapplicable", "prepare_module",
           "prepare_text_embedder"]
