"""Profile and LayerRecord: the result of `latprof profile`, with its derived tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from latprof.config import ProfileConfig
from latprof.env import Environment
from latprof.module_tree import tree_rows
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


def time_columns(s: Stats) -> dict[str, float | int]:
    """The statistics columns of a row of samples: time_us (the mean) to outliers."""
    return {
        "time_us": s.mean,
        "time_us_median": s.median,
        "time_us_std": s.std,
        "time_us_min": s.min,
        "time_us_iqr": s.iqr,
        "n": s.n,
        "outliers": s.outliers,
    }


class Sampled:
    """Statistics of `samples_us` and mean calls of `call_samples` (µs, calls per forward)."""

    samples_us: list[float]
    call_samples: list[int]

    @cached_property
    def stats(self) -> Stats:
        return summarize(self.samples_us)

    @property
    def calls(self) -> float:
        return float(np.mean(self.call_samples)) if self.call_samples else 0.0


@dataclass
class LayerRecord(Sampled):
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
    macs_by: str = ""  # the counter behind `macs`: thop, latprof or aten


@dataclass
class ModuleRecord(Sampled):
    """A module with timed children: its self time (its own forward minus its children's
    calls and their timers' cost) and its total, per trial (µs per forward)."""

    name: str
    category: str
    macs: float | None  # self MACs: aten ops its own forward ran (matmul, conv, attention)
    params: int  # parameters it owns directly
    samples_us: list[float]  # self time
    total_samples_us: list[float]
    call_samples: list[int]
    macs_by: str = "aten"
    children: list[str] = field(default_factory=list)  # direct children, first calls first

    @cached_property
    def total_stats(self) -> Stats:
        return summarize(self.total_samples_us)


@dataclass(frozen=True)
class Summary:
    """Where the end-to-end time goes (means over trials, µs per forward)."""

    e2e: Stats
    hooked: Stats
    leaf_sum_us: float
    self_sum_us: float  # self times of the modules with timed children
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
    modules: list[ModuleRecord] = field(default_factory=list)  # with timed children
    nest_us: float = 0.0  # per child call: its timer's cost inside its parent, subtracted
    nest_identity_us: float | None = None  # nest calibrated on nn.Identity chains
    nest_in_model_us: float | None = None  # nest as these passes measured it
    ops: list[dict[str, Any]] | None = None  # --by op: aten ops inside one module
    # [caller, callee, calls per forward, the callee's total µs per forward in those calls]
    edges: list[list[Any]] = field(default_factory=list)
    e2e_faults_per_pass: float | None = None  # minor page faults of the passes without hooks

    def _matrix(self, attr: str, records: list[Any] | None = None) -> np.ndarray:
        records = self.layers if records is None else records
        if not records:
            return np.zeros((len(self.e2e_us), 0))
        return np.array([getattr(r, attr) for r in records], dtype=float).T

    @cached_property
    def summary(self) -> Summary:
        e2e, hooked = summarize(self.e2e_us), summarize(self.hooked_us)
        timed = [*self.layers, *self.modules]
        leaf_sum = float(self._matrix("samples_us").sum(axis=1).mean()) if self.layers else 0.0
        own = self._matrix("samples_us", self.modules)
        self_sum = float(own.sum(axis=1).mean()) if self.modules else 0.0
        calls = float(self._matrix("call_samples", timed).sum(axis=1).mean()) if timed else 0.0
        overhead = hooked.mean - e2e.mean
        return Summary(
            e2e=e2e,
            hooked=hooked,
            leaf_sum_us=leaf_sum,
            self_sum_us=self_sum,
            unattributed_us=e2e.mean - leaf_sum - self_sum,
            overhead_us=overhead,
            overhead_per_call_us=overhead / calls if calls else 0.0,
            calls_per_pass=calls,
            bias_us=self.bias_us,
        )

    @cached_property
    def categories(self) -> list[CategoryRow]:
        """Leaves by their time, modules with timed children by their self time."""
        timed = [*self.layers, *self.modules]
        if not timed:
            return []
        return aggregate_categories(
            [r.category for r in timed],
            self._matrix("samples_us", timed),
            self._matrix("call_samples", timed),
            [r.macs for r in timed],
            [r.params for r in timed],
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
                    **time_columns(s),
                    "share": s.mean / total if total else float("nan"),
                    "macs": layer.macs,
                    "params": layer.params,
                    "input_shape": layer.input_shape,
                    "output_shape": layer.output_shape,
                    "page_faults": layer.page_faults,
                    "macs_by": layer.macs_by,
                }
            )
        if self.calibration is not None:
            from latprof.roofline_columns import layer_columns

            size = {"float32": 4, "float16": 2, "bfloat16": 2}.get(self.config.dtype, 4)
            for row in rows:
                row.update(layer_columns(row, size, self.calibration))
        return rows

    def rows(self, by: str, depth: int | None = None) -> list[dict[str, Any]]:
        """The rows of one view: category, layer, module (down to `depth`) or op."""
        if by == "layer":
            return self.layer_rows()
        if by == "module":
            return self.module_rows(depth)
        if by == "op":
            return list(self.ops or [])
        return self.category_rows()

    def module_rows(self, depth: int | None = None) -> list[dict[str, Any]]:
        """The module tree, depth first in order of first call: total and self time of every
        timed module (leaves: self = total), down to `depth` (root = 0)."""
        return tree_rows(self.layers, self.modules, self.summary.e2e.mean, depth, self.edges)
