"""What a build-lut run will do: its jobs, context slots, settings, metadata and default file.

One place assembles a table's metadata; the CLI only passes the user's options in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latprof.config import BUILD_TRIALS, MeasureSettings, ProfileConfig, parse_device
from latprof.errors import UsageError
from latprof.lut import jobs as jobsmod
from latprof.lut.jobs import Job
from latprof.lut.table import FORMAT_VERSION, KIND, STATISTICS, default_width_align
from latprof.measure import allocator
from latprof.space.builtin import DEFAULT_SPACE

CONTEXTS = ("networks", "models", "alone")


@dataclass
class BuildPlan:
    """Everything a build needs, decided before anything is measured."""

    jobs: list[Job]
    slots: list[list[Job]] | None  # context networks' slots (None: entries measured alone)
    settings: MeasureSettings
    meta: dict[str, Any]
    label: str
    shard: tuple[int, int] | None

    def unit_entries(self) -> dict[str, int]:
        """Entries per unit class (--unit), in the order of `meta["units"]`."""
        units = self.meta.get("units") or []
        ops = [j.columns["op"] for j in self.jobs if j.columns["signature"].startswith("unit ")]
        return {u: ops.count(u) for u in units}

    def default_output(self) -> Path:
        """tables/LABEL-DEVICE-bBATCH[-DTYPE][-shardIofN].parquet"""
        s = self.settings
        suffix = "" if s.dtype == "float32" else f"-{s.dtype}"
        name = f"{self.label}-{s.device.replace(':', '')}-b{s.batch}{suffix}"
        if self.shard:
            name += f"-shard{self.shard[0]}of{self.shard[1]}"
        return Path("tables") / f"{name}.parquet"


def check_options(
    *,
    space: str | None,
    archs: list[str] | None,
    models: list[str] | None,
    width_step: int | None,
    context: str | None,
    statistic: str,
    resume: bool,
    remeasure_noisy: bool,
    shard: str | None,
    units: list[str] | None = None,
) -> str:
    """Validate option combinations before anything is loaded; the context to use."""
    if units and not models:
        raise UsageError("--unit names a module class of the --models; it needs --models")
    if archs and models:
        raise UsageError("--archs picks entries of a space; it does not go with --models")
    if space and models:
        raise UsageError("give either --space or --models, not both")
    jobsmod.parse_shard(shard)
    if width_step is not None and width_step < 1:
        raise UsageError(f"--width-step must be at least 1, got {width_step}")
    if remeasure_noisy and not resume:
        raise UsageError("--remeasure-noisy works on an existing table; add --resume")
    if statistic not in STATISTICS:
        raise UsageError(f"--statistic {statistic!r}: choose one of {', '.join(STATISTICS)}")
    if context not in (None, *CONTEXTS):
        raise UsageError(f"--context {context!r}: choose networks, models or alone")
    if models and context == "networks":
        raise UsageError(
            "--context networks needs a search space (slots to chain); layer tables from "
            "--models are measured in their models (--context models) or alone"
        )
    if context == "models" and not models:
        raise UsageError(
            "--context models times entries inside the --models they come from; a space's "
            "entries are measured in networks (--context networks) or alone"
        )
    return context or ("alone" if models else "networks")


def plan_build(
    *,
    space: str | None = None,
    archs: list[str] | None = None,
    models: list[str] | None = None,
    units: list[str] | None = None,
    device: str = "cpu",
    batch: int | None = None,
    dtype: str = "float32",
    warmup: int = 10,
    trials: int = BUILD_TRIALS,
    width_step: int | None = None,
    context: str | None = None,
    statistic: str = "p10",
    shard: str | None = None,
    tf32: bool | None = None,
    cudnn_benchmark: bool | None = None,
) -> BuildPlan:
    """The jobs and metadata of a table of a space (or of some models' leaf layers and
    `units`: modules of these classes, each timed as a whole)."""
    from latprof.env import capture

    device = parse_device(device)
    ProfileConfig(
        device=device,
        dtype=dtype,
        warmup=warmup,
        trials=trials,
        tf32=tf32,
        cudnn_benchmark=cudnn_benchmark,
    )
    if batch is None:
        batch = 32 if device.startswith("cuda") else 1
    if batch < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch}")
    shard_spec = jobsmod.parse_shard(shard)
    meta: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "batch": batch,
        "dtype": dtype,
        "warmup": warmup,
        "trials": trials,
        "context": context,
        "statistic": statistic,
        "tf32": tf32,
        "cudnn_benchmark": cudnn_benchmark,
    }
    if models:
        jobs, slots, label = _model_part(models, units or [], batch, dtype, meta)
    else:
        jobs, slots, label = _space_part(space, archs, batch, dtype, width_step, context, meta)
    env = capture(device).to_dict()
    meta.update(
        allocator=allocator.planned(),  # what the build's measuring sets (steady)
        device=device,
        device_name=env["device_name"],
        torch=env["torch"],
        threads=env["intra_op_threads"],
        environment=env,
        width_align=(
            default_width_align(device, dtype, env.get("cpu_capability"))
            if meta.get("source") == "space"
            else None
        ),
        shard=list(shard_spec) if shard_spec else None,
    )
    settings = MeasureSettings(
        device=device,
        dtype=dtype,
        batch=batch,
        warmup=warmup,
        trials=trials,
        tf32=tf32,
        cudnn_benchmark=cudnn_benchmark,
    )
    jobs = [j for j in jobs if jobsmod.in_shard(j.key, shard_spec)]
    return BuildPlan(jobs, slots, settings, meta, label, shard_spec)


def _model_part(
    models: list[str], units: list[str], batch: int, dtype: str, meta: dict[str, Any]
) -> tuple[list[Job], None, str]:
    from latprof.lut.model_layers import model_jobs

    units = sorted(set(units))
    jobs, per_model = model_jobs(models, batch, dtype, units)
    label = "layers-" + "-".join(Path(m.split(":")[-1]).stem for m in models)[:60]
    meta.update(
        source="models",
        space=None,
        models=models,
        units=units,
        model_keys=per_model,
        space_hash=hashlib.sha256("\n".join(sorted(models)).encode()).hexdigest()[:16],
        width_step=None,
    )
    return jobs, None, label


def _space_part(
    space: str | None,
    archs: list[str] | None,
    batch: int,
    dtype: str,
    width_step: int | None,
    context: str | None,
    meta: dict[str, Any],
) -> tuple[list[Job], list[list[Job]] | None, str]:
    from latprof.space.builtin import BUILTIN, default_width_step, get_space

    the_space = get_space(space or DEFAULT_SPACE)
    step = width_step or default_width_step(the_space.name)
    jobs = jobsmod.space_jobs(the_space, batch, dtype, step)
    label = the_space.name
    per_slot = [slot.entries(step) for slot in the_space.slots]
    if archs:
        from latprof.space import arch as archmod

        placed = [(s, e) for a in archs for s, e in archmod.entries(archmod.load(a), the_space)]
        jobs = jobsmod.entry_jobs(list(dict.fromkeys(e for _, e in placed)), batch, dtype)
        per_slot = [
            list(dict.fromkeys(e for s, e in placed if s == slot.name)) for slot in the_space.slots
        ]
        label += "-archs"
    slots = None
    if context == "networks":
        slots = [jobsmod.entry_jobs(es, batch, dtype) for es in per_slot if es]
    meta.update(
        source="space",
        space=the_space.name,
        space_file=None if space in BUILTIN or space is None else str(Path(space).resolve()),
        space_hash=the_space.hash(),
        width_step=step,
        models=None,
    )
    return jobs, slots, label
