"""Validate a lookup table: measure whole networks end to end and compare with its prediction
(seed 004 Table 4: lookup-table latency vs measured latency)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from latprof.config import MeasureSettings
from latprof.errors import UsageError, is_out_of_memory, out_of_memory
from latprof.lut.predict import OnMiss, Prediction, predict_arch, predict_model
from latprof.lut.recalibrate import REFERENCE_ARCHS
from latprof.lut.table import LatencyTable
from latprof.macs import count_layer_costs
from latprof.measure import allocator
from latprof.measure.clocks import Clock, clock_for
from latprof.measure.device import DTYPES, eval_mode, measuring, place, prepare_model, random_input
from latprof.measure.runner import time_plain
from latprof.space import arch as archmod
from latprof.stats import Stats, summarize

Network = tuple[nn.Module, tuple, dict]
PER_ROUND = 2  # timed passes of each network per round


Halves = tuple[Stats, Stats]


def measure_many(
    networks: list[Network],
    settings: MeasureSettings,
    clock: Clock | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[Stats, float]]:
    """(latency statistics in µs, MACs) of whole forward passes of each network, without
    hooks (see `measure_networks`)."""
    got = measure_networks(networks, settings, clock, progress)
    return [(stats, macs) for stats, macs, _ in got]


def measure_networks(
    networks: list[Network],
    settings: MeasureSettings,
    clock: Clock | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[Stats, float, Halves | None]]:
    """(latency statistics in µs, MACs, halves) of whole forward passes of each network,
    without hooks. All are warmed up, then timed in rounds: in each round every network runs
    one untimed pass and then its share of the trials back to back (A A A B B B ... A A A
    ...). Back to back, a network runs in its own steady cache state (timing A B C A B C
    instead made each network pay for the others' evicting its weights: +46 % on 30 mbv2
    archs); the rounds spread the machine's drift over all of them. Rounds of 2 timed passes
    (15 for 30 trials, instead of 5 rounds of 6) narrowed the per-arch spread between two
    measurements in one process (16 mbv2 archs, one run each: docs/benchmarks.md).

    `halves` are the statistics of the even and of the odd rounds' passes, as many from
    each (the first ones; None with a single round, i.e. 2 trials or fewer): two
    measurements of each network over the same minutes, whose agreement is the
    measurement's own repeatability (see `split_half`)."""
    with measuring(settings.device, settings.tf32, settings.cudnn_benchmark):
        allocator.steady()
        clock = clock or clock_for(settings.device)
        dtype = DTYPES[settings.dtype]
        ready = []
        with torch.inference_mode():
            for module, args, kwargs in networks:
                module = prepare_model(module, settings.device, dtype)
                args = place(args, settings.device, dtype)
                kwargs = place(kwargs, settings.device, dtype)
                ready.append((module, args, kwargs))
        samples: list[list[list[float]]] = [[[], []] for _ in ready]  # even, odd rounds
        macs = []
        with ExitStack() as stack, torch.inference_mode():
            for module, args, kwargs in ready:
                stack.enter_context(eval_mode(module))
                macs.append(
                    float(count_layer_costs(module, args, kwargs, leaves=[""])[""].macs or 0)
                )
                for _ in range(settings.warmup):
                    module(*args, **kwargs)
            rounds = -(-settings.trials // PER_ROUND)
            done = 0
            for r in range(rounds):
                per_round = settings.trials // rounds + (r < settings.trials % rounds)
                for i, (module, args, kwargs) in enumerate(ready):
                    module(*args, **kwargs)  # untimed: back to this network's own cache state
                    for _ in range(per_round):
                        samples[i][r % 2].append(
                            time_plain(lambda m=module, a=args, k=kwargs: m(*a, **k), clock)
                        )
                done += per_round
                if progress:
                    progress(done, settings.trials)
        out: list[tuple[Stats, float, Halves | None]] = []
        for (even, odd), m in zip(samples, macs, strict=True):
            n = min(len(even), len(odd))  # equal halves: an odd last round is left out
            halves = (summarize(even[:n]), summarize(odd[:n])) if n else None
            out.append((summarize(even + odd), m, halves))
        return out


def measure_end_to_end(
    module: nn.Module,
    args: tuple,
    kwargs: dict,
    settings: MeasureSettings,
    clock: Clock | None = None,
) -> tuple[Stats, float]:
    """(latency statistics in µs, MACs) of whole forward passes, without any hooks."""
    return measure_many([(module, args, kwargs)], settings, clock)[0]


def row(
    name: str,
    pred: Prediction,
    stats: Stats | None,
    macs: float,
    statistic: str = "median",
    halves: Halves | None = None,
) -> dict[str, Any]:
    """One validation row. `measured_us` is the `statistic` of the passes (the one the table
    predicts); error_pct is (predicted - measured) / measured in percent; `half_a_us` and
    `half_b_us` the statistic of the even and of the odd rounds' passes. Without `stats`
    (a target with missing entries, not measured) the measured columns are empty."""
    predicted = pred.total_us if not pred.misses else None
    raw = pred.sum_us if not pred.misses else None
    measured = None if stats is None else float(getattr(stats, statistic))
    err = None if predicted is None or measured is None else 100 * (predicted - measured) / measured
    return {
        "arch": name,
        "measured_us": measured,
        "statistic": statistic,
        "measured_median_us": None if stats is None else stats.median,
        "measured_iqr_us": None if stats is None else stats.iqr,
        "predicted_us": predicted,
        "error_pct": err,
        "sum_us": raw,
        "sum_error_pct": None if err is None else 100.0 * (raw - measured) / measured,
        "unattributed_us": None if err is None else measured - predicted,
        "scale": pred.scale,
        "macs": macs,
        "blocks": len(pred.blocks),
        "interpolated": sum(b.source == "interpolated" for b in pred.blocks),
        "misses": len(pred.misses),
        "noisy": None if stats is None else stats.noisy,
        "half_a_us": float(getattr(halves[0], statistic)) if halves else None,
        "half_b_us": float(getattr(halves[1], statistic)) if halves else None,
    }


def is_model_target(table: LatencyTable, target: str | archmod.Arch) -> bool:
    """Whether `target` names a MODEL (of a layer table) rather than an architecture."""
    return (
        isinstance(target, str)
        and table.meta.get("source") == "models"
        and not target.endswith((".json", ".toml"))
    )


def prediction_for(
    table: LatencyTable, target: str | archmod.Arch, on_miss: OnMiss = "report", exact: bool = False
) -> tuple[Prediction, Callable[[], Network]]:
    """The table's prediction for an arch (spec or Arch) or a MODEL spec, and a function
    that builds the network it predicts (module, args, kwargs)."""
    if is_model_target(table, target):
        from latprof.loading import load_model

        loaded = load_model(str(target), batch_size=int(table.meta["batch"]))
        pred = predict_model(table, str(target), loaded.module, loaded.args, loaded.kwargs, on_miss)
        return pred, lambda: (loaded.module, loaded.args, loaded.kwargs)
    if isinstance(target, str) and _names_a_model(target):
        raise UsageError(
            f"{target} is not an architecture of the {table.meta.get('space')} search space "
            "this table was built for (zoo:tfnas-a, or an arch .json/.toml): for a model, "
            f"build a layer table with `latprof build-lut --models {target}`"
        )
    arch = target if isinstance(target, archmod.Arch) else archmod.load(target)
    pred = predict_arch(table, arch, on_miss=on_miss, exact=exact)

    def network() -> Network:
        shape = archmod.input_shape(arch, None, int(table.meta["batch"]))
        return archmod.build_module(arch), (random_input(*shape),), {}

    return pred, network


def _names_a_model(spec: str) -> bool:
    """A zoo model, a torchvision model or a model file: not an architecture (a mistyped
    paper arch, zoo:tfnas-z, is left to the arch loader, which lists the known ones)."""
    from latprof.zoo import ZOO

    if spec.startswith("zoo:"):
        return spec[4:] in ZOO and not archmod.is_arch_spec(spec)
    return spec.startswith("torchvision:") or spec.split(":")[0].endswith(".py")


SAFE_MODEL_PREFIXES = ("zoo:", "torchvision:")
"""MODEL specs a table may name that build a model without running a file's code."""


def default_targets(table: LatencyTable) -> list[str]:
    """Every zoo arch of the table's space, or the models a layer table was built from.

    A table is data and must never cause code execution: of the models a layer table
    names, only built-in ones (zoo:, torchvision:) are used without being asked; model
    files (.py) run only when the user names them."""
    if table.meta.get("source") == "models":
        models = [str(m) for m in table.meta.get("models") or []]
        files = [m for m in models if not m.startswith(SAFE_MODEL_PREFIXES)]
        if files or not models:
            listed = ", ".join(models) or "none recorded"
            raise UsageError(
                f"the table was built from these models: {listed}; name the ones to validate "
                "(e.g. `latprof validate --lut TABLE model.py`): a table never runs model "
                "files by itself"
            )
        return models
    from latprof.space.paper_archs import PAPER_ARCHS

    space = table.meta.get("space")
    targets = [f"zoo:{name}" for name, p in PAPER_ARCHS.items() if p.space == space]
    if not targets:
        raise UsageError(
            f"the zoo has no architectures of space {space!r}; name some (arch .json/.toml "
            "files, or --samples N for random ones)"
        )
    return targets


def sampled_targets(table: LatencyTable, samples: int, seed: int) -> list[archmod.Arch]:
    """`samples` random archs of the table's space (seeded), named sample-SEED-I."""
    if not samples:
        return []
    from latprof.space.builtin import space_of_table

    ref = table.meta.get("space_file") or table.meta["space"]
    archs = archmod.sample_archs(space_of_table(table.meta), samples, seed)
    return [replace(a, space=ref) for a in archs]


def validate(
    table: LatencyTable,
    targets: list[str | archmod.Arch],
    settings: MeasureSettings,
    on_miss: OnMiss = "report",
    progress: Callable[[int, int], None] | None = None,
    exact: bool = False,
    reference: int = 0,
) -> list[dict[str, Any]]:
    """One row per target (arch spec, Arch or MODEL spec); all measured round-robin. With
    `reference` K > 0 the predictions are recalibrated (see `measure`)."""
    return measure(table, targets, settings, on_miss, progress, exact, reference)[0]


def measure(
    table: LatencyTable,
    targets: list[str | archmod.Arch],
    settings: MeasureSettings,
    on_miss: OnMiss = "report",
    progress: Callable[[int, int], None] | None = None,
    exact: bool = False,
    reference: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(validation rows, the recalibration or None). With `reference` K > 0, K reference
    archs (lut/recalibrate.py) are measured in the same rounds as the targets and every
    prediction is multiplied by the recalibration's factor (`scale`) instead of any factor
    the table carries; the table itself is not changed."""
    from latprof.lut import recalibrate as recal

    refs = recal.references(table, reference) if reference else []
    preds: list[Prediction] = []
    builders = []
    for target in targets:
        pred, network = prediction_for(table, target, on_miss, exact)
        preds.append(pred)
        builders.append(network)
    # a target the table cannot predict is not measured: its row says what is missing
    kept = [i for i, p in enumerate(preds) if not p.misses]
    networks = [builders[i]() for i in kept]
    ref_preds = []
    for target in refs:  # never measured into the table, never raising on a miss
        pred, network = prediction_for(table, target, "report")
        ref_preds.append(pred)
        networks.append(network())
    if refs:
        recal.check_usable(table.meta, ref_preds)
        recal.warn_allocator(table.meta)
    try:
        measured = measure_networks(networks, settings, progress=progress) if networks else []
    except (MemoryError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise out_of_memory(exc, "measuring the networks") from exc
        raise
    n = len(kept)
    recalibration = None
    if refs:
        for p in ref_preds:
            p.scale = 1.0
        ref_rows = [
            row(p.name, p, stats, macs, table.statistic, halves)
            for p, (stats, macs, halves) in zip(ref_preds, measured[n:], strict=True)
        ]
        recalibration = recal.from_rows(ref_rows, table.meta)
        for p in preds:
            p.scale = recalibration["factor"]
    of_target: dict[int, Any] = dict(zip(kept, measured[:n], strict=True))
    rows = []
    for i, (t, p) in enumerate(zip(targets, preds, strict=True)):
        stats, macs, halves = of_target.get(i, (None, p.macs, None))
        rows.append(
            {**row(p.name, p, stats, macs, table.statistic, halves), "population": population_of(t)}
        )
    return rows, recalibration


def recalibration(
    table: LatencyTable,
    k: int = REFERENCE_ARCHS,
    settings: MeasureSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_mismatch: bool = False,
) -> dict[str, Any]:
    """Measure k reference archs (lut/recalibrate.py) end to end in this process and return
    the recalibration, without changing the table. torch must run with the table's thread
    count (UsageError otherwise, unless `allow_mismatch`: the factor then absorbs it)."""
    threads = table.meta.get("threads")
    other = threads and torch.get_num_threads() != int(threads)
    if other and table.meta.get("device", "cpu") == "cpu" and not allow_mismatch:
        raise UsageError(
            f"the table was measured with {threads} threads, torch runs with "
            f"{torch.get_num_threads()} here: call torch.set_num_threads({threads}) first"
        )
    settings = settings or MeasureSettings.of_table(table.meta)
    return measure(table, [], settings, progress=progress, reference=k)[1] or {}


def recalibrate(
    table: LatencyTable,
    k: int = REFERENCE_ARCHS,
    settings: MeasureSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """`recalibration`, stored in `table.meta["recalibration"]`: every later prediction and
    expected latency of this table object is multiplied by its factor (and it is saved with
    the table if you save it). Returns it."""
    result = recalibration(table, k, settings, progress)
    table.meta["recalibration"] = result
    return result


def population_of(target: str | archmod.Arch) -> str:
    """zoo (a paper arch), random (sampled), model, or file (an arch file)."""
    if isinstance(target, archmod.Arch):
        return "random" if target.name.startswith("sample-") else "given"
    if target.startswith("zoo:tfnas"):
        return "zoo"
    return "file" if target.endswith((".json", ".toml")) else "model"


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median and max |error| in percent, and Kendall τ, over the rows with a prediction."""
    from latprof.rank_metrics import kendall_tau

    ok = [r for r in rows if r["error_pct"] is not None]
    errs = sorted(abs(r["error_pct"]) for r in ok)
    if not errs:
        return {}
    mid = len(errs) // 2
    median = errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2
    tau = kendall_tau([r["predicted_us"] for r in ok], [r["measured_us"] for r in ok])
    return {
        "median_abs_error_pct": median,
        "max_abs_error_pct": errs[-1],
        "kendall_tau": tau,
        "n": len(errs),
        **split_half(ok),
    }


def split_half(rows: list[dict[str, Any]]) -> dict[str, float]:
    """How far the measurement agrees with itself over the rows' networks (validation rows,
    or compare's per-arch records): τ and median
    difference between the even and the odd rounds' measurements, and `tau_ceiling`
    (`rank_metrics.split_half`). Both halves come from one process, so this is the
    measurement's noise within it; what the halves share (this process's per-network
    effects) counts as truth, so the ceiling is an upper bound. Empty without halves (a
    single round, or rows of older files)."""
    from latprof.rank_metrics import split_half as halves

    pairs = [(r.get("half_a_us"), r.get("half_b_us")) for r in rows]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return halves([a for a, _ in pairs], [b for _, b in pairs])


def summaries(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """`summary` per population (zoo, random, ...), in the order they first appear."""
    names = list(dict.fromkeys(r.get("population", "all") for r in rows))
    return {n: summary([r for r in rows if r.get("population", "all") == n]) for n in names}
