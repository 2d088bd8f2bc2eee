"""The FLOPs predictor: latency ∝ MACs, with one scale fitted on measured latencies."""

from __future__ import annotations

import math
from collections.abc import Sequence

from latprof.predictors.layer_info import LayerInfo
from latprof.rank_metrics import fit_scale as _fit

__all__ = ["fit_scale", "predict"]


def fit_scale(macs: Sequence[float], measured: Sequence[float]) -> float:
    """Seconds (or whatever unit `measured` has) per MAC: least squares through the origin,
    a = Σxy / Σx² (NaN when all MACs are 0)."""
    return _fit(macs, measured)


def predict(layers: Sequence[LayerInfo]) -> float:
    """Total MACs of the layer calls (unscaled; multiply by `fit_scale` for a time)."""
    return float(math.fsum(layer.macs for layer in layers))
