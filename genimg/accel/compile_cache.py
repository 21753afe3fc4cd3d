"""Inductor's compiled artefacts kept across processes and machines: torch.compiler's cache artefacts ("mega-cache":
``save_cache_artifacts`` / ``load_cache_artifacts``) written to files and read back before anything compiles.

What they hold: inductor's compiled graphs (FX graph cache: the generated code and, on CUDA, the Triton kernels'
binaries), AOTAutograd entries and autotuning results (max-autotune's choice per matmul/convolution). Loaded into a
fresh process on a machine of the same kind (same GPU architecture, e.g. sm_90 for H100 and H200; same torch and
Triton versions), ``torch.compile`` finds its graphs in the cache and skips code generation and autotuning: the first
call costs tracing and loading only. On another architecture or version the entries simply miss and compilation runs
as without them; nothing wrong is ever loaded (the cache keys include the device, versions and the graph).

    from genimg.accel.compile_cache import load_compile_cache, save_compile_cache
    load_compile_cache(folder, "sd")      # before the first compiled call: {"loaded": True, "artifacts": {...}}
    load_compile_caches(folder, other)    # or every <name>.NN.bin group in these folders
    ...                                   # compile and run as usual (genimg.load(..., compile=True))
    save_compile_cache(folder, "sd")      # after: folder/sd.00.bin, sd.01.bin, ... (zlib, chunks <= 15 MiB)

Save once per process, at the end: each ``save_cache_artifacts`` appends what compiled since the last one to the
same byte string, and ``load_cache_artifacts`` keeps only the last save's artefacts (seen with torch 2.13: a run that
saved after every row loaded 1 of its 3 graphs). Chunks keep every file under the GPU machine's 16 MiB limit on files
it sends back. Weights are never in the files:
inductor's freezing keys its graphs on the weights' shapes and dtypes, not their values.
"""
from __future__ import annotations

import time
import zlib
from pathlib import Path

CHUNK_BYTES = 15 * 2**20
SUFFIX = ".bin"


def chunk_paths(folder: Path, name: str) -> list[Path]:
    """``folder/name.00.bin``, ``name.01.bin``, ... in order (what ``save_compile_cache`` wrote)."""
    return sorted(Path(folder).glob(f"{name}.[0-9][0-9]{SUFFIX}"))


def save_compile_cache(folder: Path, name: str, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Everything this process compiled so far, zlib-compressed, in chunks of at most ``chunk_bytes``; replaces what
    an earlier save of ``name`` wrote (each file is written aside, then renamed). Returns what was saved."""
    import torch

    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return {"saved": False, "reason": "nothing was compiled in this process"}
    artifacts, info = saved
    packed = zlib.compress(artifacts, 6)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in chunk_paths(folder, name):
        stale.unlink()
    pieces = [packed[start:start + chunk_bytes] for start in range(0, len(packed), chunk_bytes)]
    if len(pieces) > 100:
        raise ValueError(f"{len(packed)} bytes of compile cache need {len(pieces)} chunks; at most 100 are named")
    for index, piece in enumerate(pieces):
        target = folder / f"{name}.{index:02d}{SUFFIX}"
        partial = target.with_suffix(".partial")
        partial.write_bytes(piece)
        partial.replace(target)
    return {"saved": True, "bytes": len(artifacts), "compressed_bytes": len(packed), "chunks": len(pieces),
            "artifacts": counts(info)}


def load_compile_cache(folder: Path | None, name: str) -> dict:
    """Loads ``name``'s chunks from ``folder`` into this process's compile caches, before anything compiles. A
    missing folder or file is a cold start (``loaded`` False, with the reason), never an error."""
    import torch

    if folder is None:
        return {"loaded": False, "reason": "no compile cache folder given (cold start)"}
    paths = chunk_paths(Path(folder), name)
    if not paths:
        return {"loaded": False, "reason": f"no {name}.NN{SUFFIX} in {folder} (cold start)"}
    started = time.perf_counter()
    artifacts = zlib.decompress(b"".join(path.read_bytes() for path in paths))
    info = torch.compiler.load_cache_artifacts(artifacts)
    return {"loaded": info is not None, "bytes": len(artifacts), "chunks": len(paths),
            "artifacts": counts(info) if info is not None else {}, "load_s": time.perf_counter() - started}


def load_compile_caches(*folders: Path | None) -> dict:
    """Every cache saved in these folders (each ``<name>.NN.bin`` group), loaded folder by folder in name order: one
    step's graphs can serve another's (the fp16 row of the quantised step is the compiled benchmark's graph).
    ``loaded`` is True when any group loaded."""
    groups = {f"{folder}/{name}": load_compile_cache(folder, name) for folder in folders
              if folder is not None and Path(folder).is_dir()
              for name in sorted({path.name.split(".")[0] for path in Path(folder).glob(f"*.[0-9][0-9]{SUFFIX}")})}
    if not groups:
        return {"loaded": False, "reason": f"no <name>.NN{SUFFIX} in {', '.join(map(str, folders)) or 'no folder'} "
                                           "(cold start)"}
    artifacts: dict = {}
    for group in groups.values():
        for kind, count in group.get("artifacts", {}).items():
            artifacts[kind] = artifacts.get(kind, 0) + count
    return {"loaded": any(group["loaded"] for group in groups.values()), "groups": list(groups),
            "artifacts": artifacts, "bytes": sum(group.get("bytes", 0) for group in groups.values()),
            "load_s": sum(group.get("load_s", 0.0) for group in groups.values())}


def counts(info) -> dict:
    """How many artefacts of each kind (inductor, autotune, aot_autograd, ...) a CacheInfo names."""
    return {kind: len(keys) for kind, keys in info.artifacts.items()}


def cache_hits() -> dict:
    """This process's inductor cache counters so far: FX graph cache hits and misses (a warm start hits)."""
    from torch._dynamo.utils import counters

    inductor = counters["inductor"]
    return {"fxgraph_cache_hit": int(inductor["fxgraph_cache_hit"]),
            "fxgraph_cache_miss": int(inductor["fxgraph_cache_miss"]),
            "fxgraph_cache_bypass": int(inductor["fxgraph_cache_bypass"])}
