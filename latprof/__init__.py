"""latprof: per-layer latency profiles and latency lookup tables for PyTorch models.

Attributes are imported lazily so that `latprof --help` never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from latprof._version import __version__

_EXPORTS = {
    "profile": "latprof.profiler",
    "Profile": "latprof.records",
    "LayerRecord": "latprof.records",
    "ProfileConfig": "latprof.config",
    "Environment": "latprof.env",
    "load_model": "latprof.loading",
    "LatprofError": "latprof.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'latprof' has no attribute {name!r}")
