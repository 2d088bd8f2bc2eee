"""Roofline columns for profile rows: operational intensity, achieved MAC/s and the fraction of
the roofline bound reached per layer (seed 003's execution efficiency), given a calibration."""

from __future__ import annotations

import math
import re
from typing import Any

_SHAPE = re.compile(r"\d+(?:x\d+)*")


def elements(shape_text: str) -> int:
    """Elements of every tensor in a shape text such as '1x3x8x8' or '(1x3, 2x2)'."""
    if shape_text == "scalar":
        return 1
    return sum(math.prod(int(d) for d in m.split("x")) for m in _SHAPE.findall(shape_text))


def layer_columns(row: dict[str, Any], dtype_bytes: int, cal: Any) -> dict[str, Any]:
    """intensity (MACs/byte), achieved_macs_per_s, bound, roofline_fraction for a layer row.

    Bytes per call: input + output tensors + parameters at the dtype's size; times calls."""
    macs, time_us, calls = row.get("macs"), row.get("time_us"), row.get("calls") or 0.0
    per_call = elements(row["input_shape"]) + elements(row["output_shape"]) + row["params"]
    moved = per_call * dtype_bytes * calls
    if not macs or not moved or not time_us or time_us <= 0:
        return {
            "intensity": None,
            "achieved_macs_per_s": None,
            "bound": None,
            "roofline_fraction": None,
        }
    intensity = macs / moved
    achieved = macs / (time_us * 1e-6)
    attainable = min(cal.peak_macs_per_s, intensity * cal.bandwidth_bytes_per_s)
    ridge = cal.ridge_point
    return {
        "intensity": intensity,
        "achieved_macs_per_s": achieved,
        "bound": "compute" if intensity >= ridge else "memory",
        "roofline_fraction": achieved / attainable,
    }


def category_columns(row: dict[str, Any]) -> dict[str, Any]:
    macs, time_us = row.get("macs"), row.get("time_us")
    ok = bool(macs) and time_us is not None and time_us > 0
    return {"achieved_macs_per_s": macs / (time_us * 1e-6) if ok else None}
