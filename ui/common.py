"""What every tab of the app shares: genimg errors as gr.Error, checked number inputs, the serving limits, the
speed options' choices."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import gradio as gr

import genimg
from genimg.serve.limits import ServingLimits

LIMITS = ServingLimits.from_env()  # timeout per request, queue size, dynamic batch size
BACKEND_CHOICES = list(genimg.BACKENDS)
SCHEDULER_CHOICES = ["default", "dpm++", "ddim", "euler", "lcm"]
ENGINE_CHOICES = ["torch", "openvino"]  # openvino: CPU, converted once and cached on disk
QUANTIZE_CHOICES = ["none", "int8", "fp8"]  # int8: CPU and CUDA; fp8: CUDA with fp8 units
# Classifier-free guidance on the first fraction of the steps only (guided backends): fewer UNet passes.
GUIDANCE_CUTOFF_CHOICES = [("every step", 1.0), ("first half of the steps", 0.5), ("first quarter", 0.25)]
OFF = "off"  # a Compare configuration left out
# Every tab draws 128 px by default (the 2x upscaler after the embedded models); the models' own 64 px is one click
# away. The one-image API (/generate_one, POST /v1/image), genimg.load and the CLI keep upscale off by default.
UPSCALE_INFO = "on: the 2x upscaler sharpens the 64 px drawing (a few ms); off: the model's own 64 px"

try:  # On a Hugging Face ZeroGPU Space the GPU is attached only inside functions decorated with spaces.GPU.
    import spaces

    def gpu(configurations: int = 1):
        """Holds the GPU as long as the slowest request the limits allow (see ServingLimits.gpu_duration_s)."""
        return spaces.GPU(duration=LIMITS.gpu_duration_s(configurations))
except ImportError:
    def gpu(configurations: int = 1):
        return lambda function: function

logger = logging.getLogger("genimg.app")


def current_event():
    """(whether the caller runs in a Gradio queue event, that event or None once Gradio has dropped it). Outside the
    queue, or if Gradio's internals change, (False, None): the helpers below then have nothing to report."""
    try:
        from gradio.context import LocalContext

        blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
        if blocks is None or event_id is None or blocks._queue is None:
            return False, None
        events = [event for job in blocks._queue.active_jobs if job for event in job if event._id == event_id]
        return True, events[0] if events else None
    except Exception:  # noqa: BLE001 - gradio internals may change
        return False, None


def client_gone() -> bool:
    """Whether the client of the running event disconnected or cancelled it. Gradio drops such an event from the
    queue, but cannot stop a function already running in a thread; checking between steps frees the slot early."""
    in_queue, event = current_event()
    return in_queue and (event is None or not event.alive)


def stop_if_client_gone() -> None:
    """Raises gr.Error when the client of the running event left (see client_gone): a wait it no longer needs ends."""
    if client_gone():
        raise gr.Error("Stopped: the client disconnected.")


def queue_wait_ms() -> float | None:
    """How long the running event spent between joining Gradio's queue and this call (queue wait and preprocessing):
    the part of a request's time in the server that comes before the function. None outside the queue."""
    _, event = current_event()
    enqueued = getattr(event, "enqueue_time", None)
    return None if enqueued is None else (time.monotonic() - enqueued) * 1000


@contextmanager
def user_errors():
    """genimg's errors become gr.Error with their message; anything else is logged and reported, never a crash."""
    try:
        yield
    except gr.Error:
        raise
    except genimg.GenimgError as error:
        raise gr.Error(str(error)) from error
    except Exception as error:  # noqa: BLE001 - the UI must survive whatever a model or a hub id throws
        logger.exception("unexpected error")
        raise gr.Error(f"Unexpected {type(error).__name__}: {error}") from error


def number_input(component):
    """The component, telling an API caller who sends text or null what is wrong (gradio's own error is opaque).
    Wrapped on the instance: a subclass of a gradio component makes gradio write a .pyi file next to app.py."""
    preprocess = component.preprocess

    def checked_preprocess(payload):
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise gr.Error(f"{component.label} must be a number, got {payload!r}.")
        return preprocess(payload)

    component.preprocess = checked_preprocess
    return component


def raw_upload(component):
    """An image input whose upload reaches genimg as the file the caller sent, unopened: genimg checks its size,
    format and pixel count itself (genimg.images.load_image), so a bad file gets genimg's message, not gradio's."""

    def path_only(payload):
        if payload is None:
            return None
        if payload.path is None:
            raise gr.Error(f"{component.label}: send an image file (PNG, JPEG or WebP).")
        return payload.path

    component.preprocess = path_only
    return component


def pruned_models_present() -> bool:
    """genimg ships no pruned weights (they cost more prompt-match than they save time; docs/benchmarks.md,
    "Pruning"): the option shows where `python -m genimg train prune-unet` / `prune-gan` made them. The API takes it
    either way."""
    import genimg.assets

    return any((genimg.assets.ASSETS / name).is_dir() for name in ("gan-pruned", "latent-pruned"))


def embedded_upscale(upscale, model) -> tuple[bool, str]:
    """The page's "Upscale 2x" is on by default and sharpens the embedded models' 64 px drawings; a model= pipeline
    draws at its own resolution, so it is not upscaled and the report says so: (upscale to use, that note or "")."""
    if upscale and (model or "").strip():
        return False, ("\n\n_Upscale 2x is for the embedded 64 px models: the diffusers model drew at its own "
                       "resolution._")
    return bool(upscale), ""
