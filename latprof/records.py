"""Profile and LayerRecord: the result of `latprof profile`, with its derived tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from latprof.config import ProfileConfig
from latprof.env import Environment
from latprof.stats import CategoryRow, Stats, aggregate_categories, summarize

UNATTRIBUTED = "(unattributed)"


@dataclass(frozen=True)
class Notice:
    """A warning for the user, with a hint on what to do about it."""

    kind: str
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class LayerRecord:
    """One leaf layer: identity, cost and raw per-trial samples (µs per forward)."""

    name: str
    category: str
    macs: float | None
    params: int
    input_shape: str
    output_shape: str
    samples_us: list[float]
    call_samples: list[int]
    page_faults: int | None = None  # minor page faults in one separate instrumented pass

    @cached_property
    def stats(self) -> Stats:
        return summarize(self.samples_us)

    @property
    def calls(self) -> float:
        return float(np.mean(self.call_samples)) if self.call_samples else 0.0


@dataclass(frozen=True)
class Summary:
    """Where the end-to-end time goes (means over trials, µs per forward)."""

    e2e: Stats
    hooked: Stats
    leaf_sum_us: float
    unattributed_us: float
    overhead_us: float
    overhead_per_call_us: float
    calls_per_pass: float
    bias_us: float


@dataclass
class Profile:
    """Config + environment + layer records + end-to-end samples + notices."""

    model: str
    input_shapes: list[str]
    config: ProfileConfig
    environment: Environment
    layers: list[LayerRecord]
    e2e_us: list[float]
    hooked_us: list[float]
    bias_us: float
    notices: list[Notice] = field(default_factory=list)
    calibration: Any = field(default=None, repr=False, compare=False)  # adds roofline columns
    allocator_check: dict[str, Any] | None = None  # end-to-end under the other allocator

    def _matrix(self, attr: str) -> np.ndarray:
        trials = len(self.e2e_us)
        if not self.layers:
            return np.zeros((trials, 0))
        return np.array([getattr(layer, attr) for layer in self.layers], dtype=float).T

    @cached_property
    def summary(self) -> Summary:
        e2e, hooked = summarize(self.e2e_us), summarize(self.hooked_us)
        leaf_sum = float(self._matrix("samples_us").sum(axis=1).mean()) if self.layers else 0.0
        calls = float(self._matrix("call_samples").sum(axis=1).mean()) if self.layers else 0.0
        overhead = hooked.mean - e2e.mean
        return Summary(
            e2e=e2e,
            hooked=hooked,
            leaf_sum_us=leaf_sum,
            unattributed_us=e2e.mean - leaf_sum,
            overhead_us=overhead,
            overhead_per_call_us=overhead / calls if calls else 0.0,
            calls_per_pass=calls,
            bias_us=self.bias_us,
        )

    @cached_property
    def categories(self) -> list[CategoryRow]:
        if not self.layers:
            return []
        return aggregate_categories(
            [layer.category for layer in self.layers],
            self._matrix("samples_us"),
            self._matrix("call_samples"),
            [layer.macs for layer in self.layers],
            [layer.params for layer in self.layers],
        )

    def category_rows(self) -> list[dict[str, Any]]:
        """Category table rows plus the `(unattributed)` row; shares add up to 1."""
        total = self.summary.e2e.mean
        rows = [
            {
                "category": c.category,
                "calls": c.calls,
                "time_us": c.time_us,
                "share": c.time_us / total if total else float("nan"),
                "macs": c.macs,
                "params": c.params,
                "layers": c.layers,
            }
            for c in self.categories
        ]
        if self.calibration is not None:
            from latprof.roofline_columns import category_columns

            for row in rows:
                row.update(category_columns(row))
        rest = self.summary.unattributed_us
        rows.append(
            {
                "category": UNATTRIBUTED,
                "calls": 0.0,
                "time_us": rest,
                "share": rest / total if total else float("nan"),
                "macs": None,
                "params": 0,
                "layers": 0,
            }
        )
        return rows

    def layer_rows(self) -> list[dict[str, Any]]:
        """One row per leaf layer, in execution order of first call."""
        total = self.summary.e2e.mean
        rows = []
        for layer in self.layers:
            s = layer.stats
            rows.append(
                {
                    "layer": layer.name,
                    "category": layer.category,
                    "calls": layer.calls,
                    "time_us": s.mean,
                    "time_us_median": s.median,
                    "time_us_std": s.std,
                    "time_us_min": s.min,
                    "time_us_iqr": s.iqr,
                    "n": s.n,
                    "outliers": s.outliers,
                    "share": s.mean / total if total else float("nan"),
                    "macs": layer.macs,
                    "params": layer.params,
                    "input_shape": layer.input_shape,
                    "output_shape": layer.output_shape,
                    "page_faults": layer.page_faults,
                }
            )
        if self.calibration is not None:
            from latprof.roofline_columns import layer_columns

            size = {"float32": 4, "float16": 2, "bfloat16": 2}.get(self.config.dtype, 4)
            for row in rows:
                row.update(layer_columns(row, size, self.calibration))
        return rows
