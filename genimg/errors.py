"""Exceptions with messages a user can act on; the UI turns them into ``gr.Error``."""


class GenimgError(Exception):
    """Base class of every error genimg raises on purpose."""


class InvalidRequest(GenimgError, ValueError):
    """A prompt, option or limit the user gave is not acceptable."""


class UnsupportedOption(InvalidRequest):
    """The option exists but this device or backend cannot honour it."""


class ModelLoadError(GenimgError):
    """A model folder or hub id could not be loaded."""
