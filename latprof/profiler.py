"""profile(): model + inputs + config -> Profile. Never prints, never exits."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from latprof import env as envmod
from latprof.aten_ops import MacCounter, count_macs, time_ops
from latprof.config import ProfileConfig
from latprof.errors import (
    LatprofError,
    ModelRunError,
    UsageError,
    is_out_of_memory,
    out_of_memory,
)
from latprof.macs import LayerCost, count_layer_costs
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
    find_modules,
    is_scripted,
    scripted_modules,
    shape_of,
)
from latprof.measure.runner import (
    Progress,
    RunResult,
    calibrate_bias,
    calibrate_nesting,
    nest_in_model,
    nest_to_subtract,
    run_trials,
    with_nest,
)
from latprof.module_tree import children_of, parent_of
from latprof.profile_notices import launch_bound_notice, notices_for
from latprof.records import LayerRecord, ModuleRecord, Notice, Profile


@contextmanager
def _failures(during: str) -> Iterator[None]:
    """The user's forward failing here: a ModelRunError (or out-of-memory error) saying when."""
    try:
        yield
    except LatprofError:
        raise
    except Exception as exc:  # the user's forward may raise anything
        if is_out_of_memory(exc):
            raise out_of_memory(exc, during) from exc
        raise ModelRunError(f"the model failed {during}: {type(exc).__name__}: {exc}") from exc


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
    lazy = [n for n, m in model.named_modules() if any(map(is_lazy, m.parameters(False)))]
    if lazy:
        raise UsageError(
            f"the model has lazy modules not initialised yet ({', '.join(lazy[:3])}); run one "
            "forward pass on an input first (profiling would change the model)"
        )


def explain_failure(model: nn.Module, args: tuple, kwargs: dict, hint: str) -> ModelRunError | None:
    """Why `model` fails on `args`/`kwargs`, from one probed pass: a ModelRunError naming the
    leaf that failed and its input (or where outside any leaf), ending in `hint`; None when
    the probed pass runs (the failure was not the model's)."""
    timed = find_leaves(model)
    with eval_mode(model), torch.inference_mode():
        try:
            _run_probe(model, [n for n, _ in timed], [m for _, m in timed], args, kwargs, hint)
        except ModelRunError as exc:
            return exc
    return None


def _run_probe(
    model: nn.Module,
    names: list[str],
    leaves: list[nn.Module],
    args: tuple,
    kwargs: dict,
    hint: str = "check --input-shape",
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
                f"{reason}; {hint}"
            ) from exc
        where = f" after layer '{probe.last_finished}'" if probe.last_finished else ""
        raise ModelRunError(
            f"the model's forward failed outside any leaf layer{where} "
            f"(inputs {shape_of([*args, *kwargs.values()])}): {reason}; {hint} if the "
            "inputs are wrong, else the model's own code raised (latprof --debug shows where)"
        ) from exc
    return probe


FAULT_PASSES = 5


def plain_faults(forward: Callable[[], Any], counter: Callable[[], int]) -> float:
    """Minor page faults per pass of FAULT_PASSES untimed passes without hooks, run right
    after the timed ones (so the timed passes carry no counter reads)."""
    before = counter()
    for _ in range(FAULT_PASSES):
        forward()
    return (counter() - before) / FAULT_PASSES


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
    ``"steady"`` glibc's trim threshold is fixed and mmap turned off first: that changes the
    allocator of the whole process for the rest of its life (glibc cannot undo it)."""
    config = config or ProfileConfig()
    kwargs = kwargs or {}
    if isinstance(args, torch.Tensor):  # one input given bare, not as a tuple
        args = (args,)
    check_model(model)
    check_device(config.device)
    allocator.apply(config.allocator)  # only once the call is known to go ahead
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
        timed = find_modules(model) if config.scope == "modules" else find_leaves(model)
        names = [n for n, _ in timed]
        modules = [m for _, m in timed]
        target = _op_target(model, config.op_module)
        with eval_mode(model):
            with torch.inference_mode():
                probe = _run_probe(model, names, modules, args, kwargs)
            # modules the hooked probe did not see are timed too: a child called through
            # child.forward(x) bypasses hooks but not its shadowed forward
            seen = set(probe.order)
            order = probe.order + [i for i in range(len(modules)) if i not in seen]
            clock = clock or clock_for(config.device)
            environment = envmod.capture(config.device)
            called = [modules[i] for i in order]
            leaf = [not _has_children(m) for m in called]
            with torch.inference_mode():
                bias = calibrate_bias(clock, config.device) if config.calibrate_bias else 0.0
                nest = (
                    calibrate_nesting(clock, config.device)
                    if config.calibrate_bias and not all(leaf)
                    else 0.0
                )
                before = _launch_counts(clock)  # the calibration passes launch no real work
                with _failures("during the timed passes"):
                    result = run_trials(
                        lambda: model(*args, **kwargs),
                        called,
                        clock,
                        config.warmup,
                        config.trials,
                        bias,
                        progress,
                        nest,
                    )
                launch_bound = _launch_share(clock, before)
                # only where nn.Identity's nest was calibrated: with leaves alone timed, a
                # leaf calling another would take every unnested call's cost as its nest
                calibrated = config.calibrate_bias and not all(leaf)
                in_model = nest_in_model(result, bias, nest) if calibrated else None
                identity_nest = nest
                nest = nest_to_subtract(identity_nest, in_model, config.device)
                result = with_nest(result, identity_nest, nest)
                with _failures("after the timed passes (page faults, aten ops)"):
                    e2e_faults = plain_faults(lambda: model(*args, **kwargs), fault_counter)
                    faults = FaultProbe(called, fault_counter)
                    with faults.attached():
                        model(*args, **kwargs)
                    ops = (
                        time_ops(
                            model,
                            args,
                            kwargs,
                            target,
                            clock,
                            config.trials,
                            bias,
                            config.device,
                            config.op_module or "",
                        )
                        if target is not None
                        else None
                    )
            # after the timed passes: counting works on copies whose memory would otherwise
            # be in the heap the timed passes run in (2-5 % slower passes on zoo:cnn)
            leaf_names = [
                _qualified(names[i]) for i, is_leaf in zip(order, leaf, strict=True) if is_leaf
            ]
            with _failures("while counting MACs"):
                costs = count_layer_costs(model, args, kwargs, leaves=leaf_names)
                aten = count_macs(model, args, kwargs, called)
    layers, containers, untimed, unseen = _records(
        [names[i] for i in order], called, probe, order, result, faults, costs, aten
    )
    result_profile = Profile(
        model=name,
        input_shapes=[shape_of(a) for a in [*args, *kwargs.values()]],
        config=config,
        environment=environment,
        layers=layers,
        e2e_us=result.e2e_us.tolist(),
        hooked_us=result.hooked_us.tolist(),
        bias_us=bias,
        modules=containers,
        nest_us=nest,
        nest_identity_us=identity_nest,
        nest_in_model_us=in_model,
        ops=ops,
        edges=[
            [names[order[a]], names[order[b]], calls, result.edge_us.get((a, b))]
            for (a, b), calls in result.edges.items()
        ],
        e2e_faults_per_pass=e2e_faults,
    )
    result_profile.notices.extend(notices_for(result_profile, untimed, unseen))
    if moved_from and moved_from.startswith("cuda") and moved_from != _indexed(config.device):
        result_profile.notices.append(
            Notice(
                "moved",
                f"the model was on {moved_from}; a copy was measured on {config.device} (the "
                "model itself was not moved)",
                f"pass --device {moved_from} to measure it where it is",
            )
        )
    if ops == [] and config.op_module is not None:
        result_profile.notices.append(
            Notice(
                "op-view-empty",
                f"--module {config.op_module} ran no aten op in the forward pass: it was never "
                "called (a parent may use its weights directly)",
                "pick a module with calls in --by module",
            )
        )
    if launch_bound is not None and launch_bound > 0.5:
        result_profile.notices.append(launch_bound_notice(launch_bound))
    scripted = scripted_modules(model)
    if scripted:
        result_profile.notices.append(
            Notice(
                "scripted",
                f"{len(scripted)} TorchScript submodule(s) ({', '.join(scripted[:3])}) cannot be "
                "instrumented; their time is in "
                + ("their parent's self time" if config.scope == "modules" else "(unattributed)"),
                "profile the eager modules they were scripted from",
            )
        )
    return result_profile


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _qualified(name: str) -> str:
    return "" if name == ROOT_NAME else name


def _op_target(model: nn.Module, wanted: str | None) -> nn.Module | None:
    """The module `--by op --module NAME` looks inside; a UsageError naming close ones."""
    if wanted is None:
        return None
    named = {
        name or ROOT_NAME: module for name, module in model.named_modules(remove_duplicate=False)
    }
    if wanted in named:
        return named[wanted]
    close = difflib.get_close_matches(wanted, list(named), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see the names in --by module"
    raise UsageError(f"--module {wanted!r} is not a module of the model; {hint}")


def _launch_counts(clock: Clock) -> tuple[int, int] | None:
    if not hasattr(clock, "launch_bound"):
        return None
    return clock.passes, clock.launch_bound  # type: ignore[attr-defined]


def _launch_share(clock: Clock, before: tuple[int, int] | None) -> float | None:
    """Share of the passes since `before` in which the GPU waited on the host."""
    after = _launch_counts(clock)
    if before is None or after is None or after[0] == before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


def _macs_by(counter: str) -> str:
    if counter.startswith("thop"):
        return "thop"
    return "" if counter in ("none", "not-called") else "latprof"


def _records(
    names: list[str],
    called: list[nn.Module],
    probe: ShapeProbe,
    order: list[int],
    result: RunResult,
    faults: FaultProbe,
    costs: dict[str, LayerCost],
    aten: MacCounter,
) -> tuple[list[LayerRecord], list[ModuleRecord], int]:
    """Leaf records and records of the modules that have children, in first-call order,
    and the number of leaves no timed pass called (never called, or a parent that takes a
    fused path, like nn.TransformerEncoderLayer, or uses their weights directly, like
    nn.MultiheadAttention's out_proj). Their parameters are counted with their nearest
    timed ancestor, whose forward is what uses them, if anything does."""
    timed = result.leaf_calls.sum(axis=0) > 0
    kept = [n for n, keep in zip(names, timed, strict=True) if keep]
    children = children_of(kept)
    adopted: dict[str | None, int] = {}
    for j, (name, module) in enumerate(zip(names, called, strict=True)):
        if not timed[j]:
            heir = parent_of(name, set(kept))
            own = sum(p.numel() for p in module.parameters(recurse=False))
            adopted[heir] = adopted.get(heir, 0) + own
    layers: list[LayerRecord] = []
    containers: list[ModuleRecord] = []
    untimed: list[str] = []
    unseen: list[str] = []
    total = result.total_us
    for j, (name, module) in enumerate(zip(names, called, strict=True)):
        if not timed[j]:
            if not _has_children(module):
                untimed.append(name)
            continue
        counted = aten.macs.get(j)
        if _has_children(module):
            containers.append(
                ModuleRecord(
                    name=name,
                    category=type(module).__name__,
                    macs=counted or 0.0,
                    params=sum(p.numel() for p in module.parameters(recurse=False))
                    + adopted.get(name, 0),
                    samples_us=result.leaf_time_us[:, j].tolist(),
                    total_samples_us=total[:, j].tolist(),
                    call_samples=result.leaf_calls[:, j].tolist(),
                    children=children[name],
                )
            )
            continue
        cost = costs[_qualified(name)]
        macs, by = cost.macs, _macs_by(cost.counter)
        if (macs is None or cost.counter == "not-called") and counted:
            # no counter, or THOP's hooks never saw the call (child.forward(x))
            macs, by = counted, "aten"
        elif cost.counter == "not-called":  # not 0: hooks saw no call, the aten pass no MACs
            macs = None
            unseen.append(name)
        layers.append(
            LayerRecord(
                name=name,
                category=type(module).__name__,
                macs=macs,
                params=cost.params + adopted.get(name, 0),
                input_shape=probe.input_shapes[order[j]],
                output_shape=probe.output_shapes[order[j]],
                samples_us=result.leaf_time_us[:, j].tolist(),
                call_samples=result.leaf_calls[:, j].tolist(),
                page_faults=faults.faults[j],
                macs_by=by,
            )
        )
    return layers, containers, untimed, unseen


def _indexed(device: str) -> str:
    """'cuda' -> 'cuda:N' (the current device), as torch names a tensor's device."""
    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    return device
