"""Limits of a server built on genimg: which folders a model may be read from, and the time, queue and batch
settings read from GENIMG_* variables. Each refusal says what to change."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import InvalidRequest

# What one configuration may spend outside the timed generation: loading its models and the untimed warm-up run,
# torch.compile included (compile took 55 s on the 2-core CPU and 76-99 s per pipeline on an H100,
# docs/benchmarks.md), plus prompt-match scoring (well under a second).
LOAD_AND_WARM_UP_S = 120
# Hub ids as huggingface_hub accepts them: "owner/name", letters, digits, '-', '_' and '.'.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def allowed_model_folders(assets: Path) -> list[Path]:
    """The project's assets folder, plus the folders named in GENIMG_MODEL_DIRS (os.pathsep-separated)."""
    extra = os.environ.get("GENIMG_MODEL_DIRS", "").split(os.pathsep)
    return [Path(assets), *(Path(folder).expanduser() for folder in extra if folder.strip())]


def check_model_source(model: str, allowed_folders: list[Path]) -> str:
    """A hub id ("owner/name") passes; a local path must lie inside an allowed folder. Nothing is read here: the
    path is only resolved (symlinks and '..' included) and compared, so '/etc' or '../..' never reach a loader."""
    model = model.strip()
    candidate = Path(model).expanduser()
    looks_like_hub_id = HUB_ID.fullmatch(model) is not None and ".." not in model
    if looks_like_hub_id and not candidate.exists():
        return model
    resolved = candidate.resolve()
    if not any(resolved.is_relative_to(Path(folder).resolve()) for folder in allowed_folders):
        raise InvalidRequest(f"{model!r} is not a hub id ('owner/name') and not inside a model folder this app may "
                             f"read ({', '.join(str(folder) for folder in allowed_folders)}); put the pipeline "
                             "folder there, or add its parent folder to GENIMG_MODEL_DIRS.")
    return str(resolved)


BATCHING = ("genimg", "gradio")


def positive_numbers_from_env(names: dict, environ=os.environ) -> dict:
    """``{field: (VARIABLE, int or float)}`` -> the fields whose variable is set, parsed; a value that is not a
    positive number of that kind is an InvalidRequest naming the variable."""
    values = {}
    for field_name, (variable, kind) in names.items():
        if environ.get(variable, "").strip():
            try:
                values[field_name] = kind(environ[variable])
            except ValueError:
                raise InvalidRequest(f"{variable}={environ[variable]!r} is not a {kind.__name__}.") from None
            if values[field_name] <= 0:
                raise InvalidRequest(f"{variable} must be positive, got {environ[variable]!r}.")
    return values


@dataclass(frozen=True)
class ServingLimits:
    """What a server built on genimg allows; ``from_env`` reads the GENIMG_* variables named below."""

    request_timeout_s: float = 300.0  # GENIMG_REQUEST_TIMEOUT_S: the most one request may take, queueing excluded
    queue_size: int = 32  # GENIMG_QUEUE_SIZE: requests waiting beyond this are told the server is busy
    max_batch_size: int = 8  # GENIMG_MAX_BATCH: one-image requests batched together (1 = no dynamic batching)
    # GENIMG_BATCHING: who batches the one-image API. "genimg": genimg.serve.batching's micro-batcher (a bad request
    # fails alone); "gradio": the event's own batch=True (Gradio hands the function a list; one bad request fails
    # the batch it came in). docs/serving.md compares the two.
    batching: str = "genimg"
    # GENIMG_WARM_START: once the app is up, prepare its tabs' default configurations in the background (1), or load
    # each on its first request (0; the tests run so).
    warm_start: bool = True

    @classmethod
    def from_env(cls, environ=os.environ) -> "ServingLimits":
        names = {"request_timeout_s": ("GENIMG_REQUEST_TIMEOUT_S", float), "queue_size": ("GENIMG_QUEUE_SIZE", int),
                 "max_batch_size": ("GENIMG_MAX_BATCH", int)}
        values = positive_numbers_from_env(names, environ)
        batching = environ.get("GENIMG_BATCHING", "").strip()
        if batching:
            if batching not in BATCHING:
                raise InvalidRequest(f"GENIMG_BATCHING={batching!r}: choose one of {', '.join(BATCHING)}.")
            values["batching"] = batching
        warm_start = environ.get("GENIMG_WARM_START", "").strip()
        if warm_start:
            if warm_start not in ("0", "1"):
                raise InvalidRequest(f"GENIMG_WARM_START={warm_start!r}: choose 1 (on) or 0 (off).")
            values["warm_start"] = warm_start == "1"
        return cls(**values)

    def gpu_duration_s(self, configurations: int = 1) -> int:
        """Seconds of GPU a request may hold (``spaces.GPU(duration=...)`` on a ZeroGPU Space): each configuration it
        runs may load and warm up (LOAD_AND_WARM_UP_S), then generate until request_timeout_s stops it."""
        return math.ceil(configurations * (self.request_timeout_s + LOAD_AND_WARM_UP_S))
