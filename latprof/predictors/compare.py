"""Rank random architectures of a space by each predictor and by measured latency.

For `latprof compare`: N seeded random archs, each measured end to end, and per predictor
(flops, roofline, systolic, lut) Kendall tau, Spearman rho, MAPE after a scale fit and the
overlap of the fastest 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latprof import rank_metrics as metrics
from latprof.errors import UsageError
from latprof.lut.measurement import Tick
from latprof.measure.device import random_input
from latprof.predictors import describe, make
from latprof.space import arch as archmod

if TYPE_CHECKING:
    from latprof.calibrate import Calibration
    from latprof.config import MeasureSettings
    from latprof.lut.table import LatencyTable
    from latprof.space.model import SearchSpace


@dataclass
class Comparison:
    """Per-arch records (measured and each predictor's number) and per-predictor metrics.

    Units of the per-arch numbers: flops in MACs, roofline and lut in µs, systolic in cycles.
    """

    archs: list[dict[str, Any]] = field(default_factory=list)
    predictors: list[str] = field(default_factory=list)

    def metric_rows(self) -> list[dict[str, Any]]:
        measured = [a["measured_us"] for a in self.archs]
        rows = []
        for name in self.predictors:
            pred = [a[name] for a in self.archs]
            rows.append(
                {
                    "predictor": name,
                    "kendall_tau": metrics.kendall_tau(pred, measured),
                    "spearman": metrics.spearman(pred, measured),
                    "mape": metrics.mape_after_fit(pred, measured),
                    "top10_overlap": metrics.top_overlap(pred, measured, 0.1),
                    "scale": metrics.fit_scale(pred, measured),
                }
            )
        return rows

    def ceiling(self) -> dict[str, float]:
        """The measurement against itself (`validate.split_half` of the even and the odd
        rounds): about how high any predictor's τ could go; empty without halves."""
        from latprof.lut.validate import split_half

        return split_half(self.archs)


def compare(
    space: SearchSpace,
    archs: list[archmod.Arch],
    settings: MeasureSettings,
    batch: int,
    calibration: Calibration | None = None,
    table: LatencyTable | None = None,
    progress: Tick | None = None,
) -> Comparison:
    """Predict every arch with every available predictor, then measure them all end to end
    (`measure_networks`). `measured_us` is the statistic the table predicts (p10 without
    one); `half_a_us` and `half_b_us` the same of the even and of the odd rounds."""
    from latprof.lut.predict import predict_arch
    from latprof.lut.validate import measure_networks
    from latprof.measure.device import DTYPES

    dtype_bytes = DTYPES[settings.dtype].itemsize
    names = ["flops", "systolic"]
    if calibration is not None:
        names.insert(1, "roofline")
    funcs = {n: make(n, calibration) for n in names}
    if table is not None:
        names.append("lut")
    result = Comparison(predictors=names)
    networks = []
    for arch in archs:
        net = archmod.build_module(arch, space)
        x = random_input(*archmod.input_shape(arch, space, batch))
        layers = describe(net, (x,), dtype_bytes=dtype_bytes)
        record: dict[str, Any] = {"arch": arch.name}
        for name, fn in funcs.items():
            record[name] = fn(layers) * (1e6 if name == "roofline" else 1.0)
        if table is not None:
            record["lut"] = predict_arch(table, arch, space, on_miss="measure").total_us
        record["choices"] = " ".join(c.label() for c in arch.choices)
        result.archs.append(record)
        networks.append((net, (x,), {}))
    measured = measure_networks(networks, settings, progress=progress)
    statistic = table.statistic if table is not None else "p10"
    for record, (stats, macs, halves) in zip(result.archs, measured, strict=True):
        record.update(
            measured_us=float(getattr(stats, statistic)),
            measured_median_us=stats.median,
            measured_iqr_us=stats.iqr,
            macs=macs,
            half_a_us=float(getattr(halves[0], statistic)) if halves else None,
            half_b_us=float(getattr(halves[1], statistic)) if halves else None,
        )
    return result


def plot(result: Comparison, path: Any) -> None:
    """Predicted (after the scale fit) vs measured scatter, one panel per predictor."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib: pip install 'latprof[plot]' (or pip install matplotlib)"
        ) from None
    measured = [a["measured_us"] / 1e3 for a in result.archs]
    rows = result.metric_rows()
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        scale = row["scale"]
        pred = [a[row["predictor"]] * scale / 1e3 for a in result.archs]
        ax.scatter(measured, pred, s=12)
        lo, hi = min(measured + pred), max(measured + pred)
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
        ax.set_title(f"{row['predictor']}: tau {row['kendall_tau']:.2f}")
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted, scaled (ms)")
    fig.tight_layout()
    from latprof.io.atomic import write_with

    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def space_and_table(
    space: str,
    lut: Path | None,
    allow_mismatch: bool,
    **target: Any,
) -> tuple[SearchSpace, LatencyTable | None]:
    """The space to sample, and the table of that space (when `lut` is given) checked
    against the target (device, batch, dtype, threads)."""
    from latprof.lut.table import LatencyTable
    from latprof.space.builtin import get_space

    the_space = get_space(space)
    if lut is None:
        return the_space, None
    table = LatencyTable.load(lut)
    if not table.is_for_space(the_space):
        if table.meta.get("source") == "models":
            raise UsageError(
                f"{lut} is a layer table (build-lut --models), not a table of space "
                f"{the_space.name!r}; compare needs build-lut --space {the_space.name}"
            )
        raise UsageError(
            f"{lut} is a table of space {table.meta.get('space')!r}, not {the_space.name!r}"
        )
    table.check_target(allow_mismatch, **target)
    return the_space, table


def calibration(path: Path | None, device: str, dtype: str) -> Calibration:
    """A saved calibration, or one measured now."""
    from latprof import calibrate

    return calibrate.load(path) if path is not None else calibrate.measure(device, dtype)
