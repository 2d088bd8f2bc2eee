"""The U-Boost systolic-array runtime model (seed 002, appendix B, Eq. 9-15, Table 3).

Symbols as in the seed: k1, k2 kernel sizes, c input and f output channels, s1 × s2 the array
(default 128 × 128, seed 002 Table 6 ``array_size``), h, w spatial size, b batch. Runtimes are
in array cycles; utilization is MACs / (s1 · s2 · runtime), in (0, 1].

Reading of the seed (stated because the text leaves it open):
* h, w are the **output** height and width (``h_out``, ``w_out``): the seed calls them the
  input's, but its search space keeps h, w fixed (stride 1, same padding), and Eq. 9's
  MAC count ``hwbk1k2cf`` is only right with output sizes.
* Depthwise uses Eq. 12 / Eq. 13. Table 3 prints the depthwise runtime with an extra factor f
  and the utilization as k1k2 / (⌈k1k2/s1⌉ f); both contradict Eq. 12 / 13 and
  "utilization = MACs / runtime", so they are taken as typos.
* Grouped (not depthwise) convolution, which the seed does not cover, is g independent
  convolutions of c/g → f/g channels (Eq. 10 per group, times g). With g = 1 this is Eq. 10
  exactly, and with g = c = f it gives Eq. 12 exactly.
* Fully connected (Eq. 14): b is the number of rows multiplied, ``batch · h_out · w_out``
  (tokens count as rows for [B, T, C] input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from latprof.predictors.layer_info import LayerInfo

__all__ = ["ARRAY_SIZE", "layer_cycles", "predict", "utilization"]

ARRAY_SIZE = (128, 128)
"""Default s1 × s2 (seed 002, Table 6, ``array_size``)."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check(s1: int, s2: int) -> None:
    if s1 < 1 or s2 < 1:
        raise ValueError(f"systolic array size must be positive, got {s1} x {s2}")


def _per_group(layer: LayerInfo) -> tuple[int, int, int]:
    """(groups, c per group, f per group) of a conv layer."""
    g = max(layer.groups, 1)
    return g, layer.c_in // g, layer.c_out // g


def layer_cycles(layer: LayerInfo, s1: int = ARRAY_SIZE[0], s2: int = ARRAY_SIZE[1]) -> float:
    """Runtime of one layer call in array cycles.

    * conv (Eq. 10):      ⌈k1·k2·c / s1⌉ · ⌈f / s2⌉ · h·w·b
      (grouped: g · ⌈k1·k2·(c/g) / s1⌉ · ⌈(f/g) / s2⌉ · h·w·b)
    * depthwise (Eq. 12): c · ⌈k1·k2 / s1⌉ · h·w·b
    * fc (Eq. 14):        ⌈c / s1⌉ · ⌈f / s2⌉ · b
    * anything else:      0 (Table 3, †)
    """
    _check(s1, s2)
    k1, k2 = layer.kernel
    hwb = layer.h_out * layer.w_out * layer.batch
    if layer.kind == "conv":
        g, c, f = _per_group(layer)
        return float(g * _ceil_div(k1 * k2 * c, s1) * _ceil_div(f, s2) * hwb)
    if layer.kind == "dwconv":
        return float(layer.c_in * _ceil_div(k1 * k2, s1) * hwb)
    if layer.kind == "fc":
        return float(_ceil_div(layer.c_in, s1) * _ceil_div(layer.c_out, s2) * hwb)
    return 0.0


def utilization(layer: LayerInfo, s1: int = ARRAY_SIZE[0], s2: int = ARRAY_SIZE[1]) -> float:
    """Fraction of the s1 × s2 array doing useful MACs during the layer.

    * conv (Eq. 11):      k1·k2·c·f / (s1·s2 · ⌈k1·k2·c / s1⌉ · ⌈f / s2⌉)  (per group)
    * depthwise (Eq. 13): k1·k2 / (s1·s2 · ⌈k1·k2 / s1⌉)
    * fc (Eq. 15):        c·f / (s1·s2 · ⌈c / s1⌉ · ⌈f / s2⌉)
    * anything else:      1 (Table 3, †)
    """
    _check(s1, s2)
    k1, k2 = layer.kernel
    if layer.kind == "conv":
        _, c, f = _per_group(layer)
        return k1 * k2 * c * f / (s1 * s2 * _ceil_div(k1 * k2 * c, s1) * _ceil_div(f, s2))
    if layer.kind == "dwconv":
        return k1 * k2 / (s1 * s2 * _ceil_div(k1 * k2, s1))
    if layer.kind == "fc":
        c, f = layer.c_in, layer.c_out
        return c * f / (s1 * s2 * _ceil_div(c, s1) * _ceil_div(f, s2))
    return 1.0


def predict(layers: Sequence[LayerInfo], s1: int = ARRAY_SIZE[0], s2: int = ARRAY_SIZE[1]) -> float:
    """Total runtime of the layer calls in array cycles (sum of `layer_cycles`)."""
    return float(math.fsum(layer_cycles(layer, s1, s2) for layer in layers))
