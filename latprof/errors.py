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
