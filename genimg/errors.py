"""Exceptions with messages a user can act on; the UI turns them into ``gr.Error``."""


class GenimgError(Exception):
    """Base class of every error genimg raises on purpose."""


class InvalidRequest(GenimgError, ValueError):
    """A prompt, option or limit the user gave is not acceptable."""


class UnsupportedOption(InvalidRequest):
    """The option exists but this device or backend cannot honour it."""


class ModelLoadError(GenimgError):
    """A model folder or hub id could not be loaded."""


class RequestTooLarge(InvalidRequest):
    """A request asks for more pixels than one request may hold on this device."""


class GenerationTimeout(GenimgError):
    """A generation ran past the time one request may take."""


class OutOfMemory(GenimgError):
    """The device ran out of memory; a smaller batch (or half precision) fits."""


class NonFiniteOutput(GenimgError):
    """A model produced NaN or infinite values instead of an image."""


class ServerBusy(GenimgError):
    """The server could not take or finish a sound request now (full, or its worker was lost); send it again."""
