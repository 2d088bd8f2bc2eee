"""profile(): model + inputs + config -> Profile. Never prints, never exits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from latprof import env as envmod
from latprof.config import ProfileConfig
from latprof.errors import ModelRunError, UsageError, is_out_of_memory, out_of_memory
from latprof.macs import count_layer_costs
from latprof.measure import allocator
from latprof.measure.clocks import Clock, clock_for
from latprof.measure.device import (
    DTYPES,
    check_device,
    cuda_flags,
    device_context,
    eval_mode,
    model_devices,
    place,
    prepare_model,
    threads,
)
from latprof.measure.hooks import (
    ROOT_NAME,
    FaultProbe,
    ShapeProbe,
    find_leaves,
    is_scripted,
    scripted_modules,
    shape_of,
)
from latprof.measure.runner import Progress, calibrate_bias, run_trials
from latprof.records import LayerRecord, Notice, Profile


def check_model(model: Any) -> None:
    if type(model).__name__ == "OptimizedModule" or hasattr(model, "_orig_mod"):
        raise UsageError(
            "the model is a torch.compile'd module, whose graph has no per-layer hooks; "
            "profile the original module instead (model._orig_mod)"
        )
    if not isinstance(model, nn.Module):
        raise UsageError(f"expected an nn.Module, got {type(model).__name__}")
    if is_scripted(model):
        raise UsageError(
            "the model is a TorchScript module, which has no per-layer hooks; "
            "profile the eager nn.Module it was scripted from"
        )


def _run_probe(
    model: nn.Module, names: list[str], leaves: list[nn.Module], args: tuple, kwargs: dict
) -> ShapeProbe:
    probe = ShapeProbe(names, leaves)
    try:
        with probe.attached():
            model(*args, **kwargs)
    except Exception as exc:  # the user's forward may raise anything
        if is_out_of_memory(exc):
            raise out_of_memory(exc, "in the model's forward") from exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if probe.failed:
            name, shape = probe.failed
            index = names.index(name)
            raise ModelRunError(
                f"layer '{name}' ({type(leaves[index]).__name__}) failed on input {shape}: "
                f"{reason}; check --input-shape"
            ) from exc
        where = f" after layer '{probe.last_finished}'" if probe.last_finished else ""
        raise ModelRunError(
            f"the model's forward failed outside any leaf layer{where} "
            f"(inputs {shape_of([*args, *kwargs.values()])}): {reason}; check --input-shape"
        ) from exc
    return probe


def profile(
    model: nn.Module,
    args: tuple = (),
    kwargs: dict | None = None,
    config: ProfileConfig | None = None,
    *,
    name: str = "model",
    clock: Clock | None = None,
    progress: Progress | None = None,
    fault_counter: Callable[[], int] = allocator.minor_faults,
) -> Profile:
    """Time every leaf layer of `model` on `args`/`kwargs`; the model is left as found.

    The process is measured as it is (``config.allocator == "system"``, the default). With
    ``"steady"`` glibc's mmap/trim thresholds are fixed first: that changes the allocator of
    the whole process for the rest of its life (glibc cannot undo it)."""
    config = config or ProfileConfig()
    kwargs = kwargs or {}
    allocator.apply(config.allocator)
    check_model(model)
    check_device(config.device)
    dtype = DTYPES[config.dtype]
    with (
        threads(config.threads),
        device_context(config.device),
        cuda_flags(config.tf32, config.cudnn_benchmark),
    ):
        moved_from = next(iter(model_devices(model)), None)
        try:
            model = prepare_model(model, config.device, dtype)
            args = place(tuple(args), config.device, dtype)
            kwargs = place(kwargs, config.device, dtype)
        except (MemoryError, RuntimeError) as exc:
            if is_out_of_memory(exc):
                raise out_of_memory(
                    exc, f"placing the model and inputs on {config.device}"
                ) from exc
            raise
        all_leaves = find_leaves(model)
        names = [n for n, _ in all_leaves]
        modules = [m for _, m in all_leaves]
        with eval_mode(model):
            with torch.inference_mode():
                probe = _run_probe(model, names, modules, args, kwargs)
            order = probe.order
            qualified = {n: ("" if n == ROOT_NAME else n) for n in names}
            clock = clock or clock_for(config.device)
            environment = envmod.capture(config.device)
            with torch.inference_mode():
                bias = calibrate_bias(clock, config.device) if config.calibrate_bias else 0.0
                try:
                    result = run_trials(
                        lambda: model(*args, **kwargs),
                        [modules[i] for i in order],
                        clock,
                        config.warmup,
                        config.trials,
                        bias,
                        progress,
                    )
                except Exception as exc:
                    if is_out_of_memory(exc):
                        raise out_of_memory(exc, "during the timed passes") from exc
                    raise ModelRunError(f"the model failed during the timed passes: {exc}") from exc
                faults = FaultProbe([modules[i] for i in order], fault_counter)
                with faults.attached():
                    model(*args, **kwargs)
            # after the timed passes: counting works on copies whose memory would otherwise
            # be in the heap the timed passes run in (2-5 % slower passes on zoo:cnn)
            costs = count_layer_costs(
                model, args, kwargs, leaves=[qualified[names[i]] for i in order]
            )
    layers = [
        LayerRecord(
            name=names[i],
            category=type(modules[i]).__name__,
            macs=costs[qualified[names[i]]].macs,
            params=costs[qualified[names[i]]].params,
            input_shape=probe.input_shapes[i],
            output_shape=probe.output_shapes[i],
            samples_us=result.leaf_time_us[:, j].tolist(),
            call_samples=result.leaf_calls[:, j].tolist(),
            page_faults=faults.faults[j],
        )
        for j, i in enumerate(order)
    ]
    result_profile = Profile(
        model=name,
        input_shapes=[shape_of(a) for a in [*args, *kwargs.values()]],
        config=config,
        environment=environment,
        layers=layers,
        e2e_us=result.e2e_us.tolist(),
        hooked_us=result.hooked_us.tolist(),
        bias_us=bias,
    )
    result_profile.notices.extend(notices_for(result_profile, uncalled=len(names) - len(order)))
    if moved_from and moved_from.startswith("cuda") and moved_from != _indexed(config.device):
        result_profile.notices.append(
            Notice(
                "moved",
                f"the model was on {moved_from}; a copy was measured on {config.device} (the "
                "model itself was not moved)",
                f"pass --device {moved_from} to measure it where it is",
            )
        )
    launch_bound = getattr(clock, "launch_bound_share", None)
    if launch_bound is not None and launch_bound > 0.5:
        result_profile.notices.append(launch_bound_notice(launch_bound))
    scripted = scripted_modules(model)
    if scripted:
        result_profile.notices.append(
            Notice(
                "scripted",
                f"{len(scripted)} TorchScript submodule(s) ({', '.join(scripted[:3])}) cannot be "
                "instrumented; their time is in (unattributed)",
                "profile the eager modules they were scripted from",
            )
        )
    return result_profile


def notices_for(prof: Profile, uncalled: int = 0) -> list[Notice]:
    """Warnings about the trustworthiness of a profile, each with a hint."""
    out: list[Notice] = []
    s = prof.summary
    if s.e2e.noisy:
        out.append(
            Notice(
                "noisy",
                f"end-to-end latency is noisy: IQR is {s.e2e.iqr / s.e2e.median:.0%} of the median",
                "close other programs, pin threads with --threads 1, or raise --trials",
            )
        )
    # layer-level warnings only where they matter: >= 1% of the end-to-end time
    major = [layer for layer in prof.layers if layer.stats.mean >= 0.01 * s.e2e.mean]
    noisy_layers = [layer.name for layer in major if layer.stats.noisy]
    if noisy_layers:
        out.append(
            Notice(
                "noisy-layers",
                f"{len(noisy_layers)} layer(s) with >= 1% of the time have IQR > 10% of their "
                f"median (e.g. {', '.join(noisy_layers[:3])})",
                "raise --trials, or compare time_us_median with time_us in --by layer",
            )
        )
    # outliers are common at µs scale; warn when they move a mean by more than 5%
    skewed = [
        layer.name
        for layer in major
        if layer.stats.outliers and abs(layer.stats.mean / layer.stats.median - 1) > 0.05
    ]
    if s.e2e.outliers or skewed:
        out.append(
            Notice(
                "outliers",
                f"outlier samples (|x - median| / MAD > 14.8): {s.e2e.outliers} in end-to-end; "
                f"{len(skewed)} layer(s) whose mean they move by > 5% "
                f"{'(e.g. ' + ', '.join(skewed[:3]) + ')' if skewed else ''}; kept in the means",
                "compare time_us with time_us_median, or re-run on a quieter machine",
            )
        )
    uncounted = sorted({layer.category for layer in prof.layers if layer.macs is None})
    if uncounted:
        out.append(
            Notice(
                "macs-not-counted",
                f"MACs are not counted for {', '.join(uncounted)} (no counter known); shown empty",
                "register one with latprof.macs.register_counter(type, fn)",
            )
        )
    if s.unattributed_us < 0:
        out.append(_negative_unattributed(prof))
    if len(prof.e2e_us) < 5:
        out.append(
            Notice(
                "few-trials",
                f"only {len(prof.e2e_us)} trial(s): spread and outlier statistics are rough",
                "use --trials 10 or more",
            )
        )
    if uncalled:
        out.append(
            Notice(
                "uncalled",
                f"{uncalled} leaf module(s) were never called in the forward pass; not listed",
                "",
            )
        )
    return out


def _negative_unattributed(prof: Profile) -> Notice:
    """Why (unattributed) is negative: usually one slow sample raising a layer's mean."""
    s = prof.summary
    excess = -s.unattributed_us
    within = f", within the end-to-end IQR of {s.e2e.iqr:.2f} µs" if excess <= s.e2e.iqr else ""
    hint = "compare time_us with time_us_median in --by layer"
    gaps = [(layer.stats.mean - layer.stats.median, layer.name) for layer in prof.layers]
    gap, name = max(gaps, default=(0.0, ""))
    if gap > 0:
        hint += f" (largest gap: {name}, mean {gap:.2f} µs above its median)"
    return Notice(
        "negative-unattributed",
        f"(unattributed) is negative: the leaf sum exceeds end-to-end latency by "
        f"{excess:.2f} µs{within}; a slow sample (spike) in a layer raises its mean",
        f"{hint}; raise --trials, or re-run on a quieter machine",
    )


def launch_bound_notice(share: float) -> Notice:
    """The GPU waited on the host in most passes: per-layer times measure the launches."""
    return Notice(
        "launch-bound",
        f"in {100 * share:.0f} % of the timed passes the GPU waited on the host: it finished "
        "as soon as the CPU had launched the last kernel, so the layer times measure Python "
        "and kernel-launch overhead more than GPU work",
        "use a larger --batch-size, or CUDA graphs / torch.compile in deployment",
    )


def _indexed(device: str) -> str:
    """'cuda' -> 'cuda:N' (the current device), as torch names a tensor's device."""
    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    return device
