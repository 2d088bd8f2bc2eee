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
    "LatencyTable": "latprof.lut.table",
    "predict": "latprof.lut.predict",
    "Prediction": "latprof.lut.predict",
    "latency_model": "latprof.lut.expected",
    "expected_latency": "latprof.lut.expected",
    "LatencyModel": "latprof.lut.expected",
    "recalibrate": "latprof.lut.validate",
    "get_space": "latprof.space.builtin",
    "MeasureSettings": "latprof.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'latprof' has no attribute {name!r}")
