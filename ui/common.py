"""What every tab of the app shares: genimg errors as gr.Error, checked number inputs, the serving limits."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import gradio as gr

import genimg
from genimg.serve.limits import ServingLimits

LIMITS = ServingLimits.from_env()  # timeout per request, queue size, dynamic batch size

try:  # On a Hugging Face ZeroGPU Space the GPU is attached only inside functions decorated with spaces.GPU.
    import spaces

    def gpu(configurations: int = 1):
        """Holds the GPU as long as the slowest request the limits allow (see ServingLimits.gpu_duration_s)."""
        return spaces.GPU(duration=LIMITS.gpu_duration_s(configurations))
except ImportError:
    def gpu(configurations: int = 1):
        return lambda function: function

logger = logging.getLogger("genimg.app")


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
