"""Errors raised by the library; the CLI turns them into one-line messages."""

from __future__ import annotations


class LatprofError(Exception):
    """Base class: the message says what was wrong and how to fix it."""

    exit_code = 2


class UsageError(LatprofError):
    """A flag or argument value is invalid."""


class ModelLoadError(LatprofError):
    """A MODEL spec could not be turned into an nn.Module and inputs."""


class ModelRunError(LatprofError):
    """The model failed while running on the given inputs."""

    exit_code = 3


class DeviceError(LatprofError):
    """The requested device is unavailable."""


class FileFormatError(LatprofError):
    """A file is not a latprof file or is malformed."""


class SpaceError(LatprofError):
    """A search space definition is invalid."""


class LookupMissError(LatprofError):
    """A lookup table has no entry for some keys."""


class LatprofWarning(UserWarning):
    """Something the user should know, raised with warnings.warn by the library."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says memory ran out: MemoryError, torch's OutOfMemoryError (CUDA), or
    the RuntimeError of torch's CPU allocator ("not enough memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "not enough memory" in text or "out of memory" in text
    )


def out_of_memory(exc: BaseException, during: str) -> ModelRunError:
    """The one-line error for running out of memory `during` something."""
    lines = str(exc).strip().splitlines()
    detail = f" ({lines[0][:200]})" if lines else ""
    return ModelRunError(f"out of memory {during}{detail}; lower --batch-size (or the input shape)")
