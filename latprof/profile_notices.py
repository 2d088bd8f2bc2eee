"""Warnings about how far to trust a profile, each with a hint on what to do."""

from __future__ import annotations

from collections.abc import Sequence

from latprof.records import Notice, Profile
from latprof.stats import Stats


def notices_for(
    prof: Profile, uncalled: Sequence[str] = (), unseen: Sequence[str] = ()
) -> list[Notice]:
    """Warnings about the trustworthiness of a profile, each with a hint. `uncalled`: leaves
    never called; `unseen`: leaves called only through `.forward`, whose MACs no counter saw."""
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
    if unseen:
        out.append(
            Notice(
                "macs-not-counted",
                f"MACs are not counted for {_some(unseen)}: called through .forward(), which "
                "forward hooks (and so THOP's counters) do not see; shown empty",
                "call the module itself (module(x)) rather than module.forward(x)",
            )
        )
    uncounted = sorted(
        {layer.category for layer in prof.layers if layer.macs is None and layer.name not in unseen}
    )
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
    negative = [m.name for m in prof.modules if _below_zero(m.stats)]
    if negative:
        out.append(
            Notice(
                "negative-self",
                f"{len(negative)} module(s) have a self time below 0 beyond the noise "
                f"(e.g. {', '.join(negative[:3])}): their children's timer cost was "
                "over-subtracted, or a child ran on another thread",
                "compare self_us in --by module with --trials 50; pass --leaves-only to time "
                "leaves alone",
            )
        )
    if len(prof.e2e_us) < 5:
        out.append(
            Notice(
                "few-trials",
                f"only {len(prof.e2e_us)} trial(s): spread and outlier statistics are rough",
                "use --trials 10 or more",
            )
        )
    callers: dict[str, list[str]] = {}
    for caller, callee, *_ in prof.edges:
        if caller != callee:
            callers.setdefault(callee, []).append(caller)
    shared = sorted(name for name, who in callers.items() if len(who) > 1)
    if shared:
        out.append(
            Notice(
                "shared",
                f"{len(shared)} module(s) are called from more than one parent (e.g. "
                f"{shared[0]}, from {', '.join(sorted(callers[shared[0]]))}): --by module lists "
                "each under every caller with the calls and time spent there, its MACs in "
                "proportion to those calls (its parameters where first listed)",
                "--by layer lists each leaf once with all its calls",
            )
        )
    if uncalled:
        out.append(
            Notice(
                "uncalled",
                f"{len(uncalled)} leaf module(s) were never called in the forward pass "
                f"({_some(uncalled)}); not listed",
                "a parent that uses their weights directly (as attention blocks do with their "
                "projections) "
                + (
                    "has that work in its self time"
                    if prof.config.scope == "modules"
                    else "is not timed with --leaves-only: that work is in (unattributed)"
                ),
            )
        )
    return out


BUSY_FACTOR = 10
"""(unattributed) below 0 by more than this many times the timers' cost per timed call is the
machine's doing, not the timers'."""


def _negative_unattributed(prof: Profile) -> Notice:
    """Why (unattributed) is negative: usually one slow sample raising a layer's mean."""
    s = prof.summary
    timed = "sum of leaf and self times" if prof.modules else "leaf sum"
    excess = -s.unattributed_us
    within = f", within the end-to-end IQR of {s.e2e.iqr:.2f} µs" if excess <= s.e2e.iqr else ""
    hint = "compare time_us with time_us_median in --by layer"
    gaps = [(layer.stats.mean - layer.stats.median, layer.name) for layer in prof.layers]
    gap, name = max(gaps, default=(0.0, ""))
    if gap > 0:
        hint += f" (largest gap: {name}, mean {gap:.2f} µs above its median)"
    measured = prof.nest_in_model_us
    identity = prof.nest_identity_us if prof.nest_identity_us is not None else prof.nest_us
    from_passes = measured is not None and prof.nest_us == measured and measured > identity
    per_call = excess / (s.calls_per_pass or 1.0)
    timers = s.bias_us + prof.nest_us
    if within or not prof.modules:
        why = "a slow sample (spike) in a layer raises its mean"
    elif per_call > BUSY_FACTOR * max(timers, 0.05):
        why = (
            f"{per_call:.2f} µs per timed call, over {BUSY_FACTOR} times what the timers cost "
            f"({timers:.2f} µs): the timed passes ran slower than the plain ones, i.e. the "
            "machine was busy"
        )
        hint = "pin the threads (--threads 1), close other programs"
    elif from_passes:  # the passes' medians add up by construction: the means do not
        why = (
            "slow timed passes raise the layers' means above their medians (the timers' cost "
            f"is removed: bias {s.bias_us:.2f} µs per call, nest {prof.nest_us:.2f} µs per "
            "child call as these passes measured it)"
        )
    else:  # beyond the noise with every module timed: the timers' cost, not spikes
        why = (
            f"about {per_call:.2f} µs per timed call of the timers' own cost is not "
            f"removed by the bias ({s.bias_us:.2f} µs) and the nest calibrated on nn.Identity "
            f"({prof.nest_us:.2f} µs per child call), which real layers make dearer"
        )
        hint = (
            "read self times of parents with many children as high by up to that much per "
            "child; --leaves-only times leaves alone"
        )
    return Notice(
        "negative-unattributed",
        f"(unattributed) is negative: the {timed} exceeds end-to-end latency by "
        f"{excess:.2f} µs{within}; {why}",
        f"{hint}; raise --trials, or re-run on a quieter machine",
    )


def _below_zero(stats: Stats) -> bool:
    """A mean below 0 by more than twice its standard error (and 0.05 µs)."""
    margin = 2 * stats.std / max(stats.n, 1) ** 0.5
    return stats.mean < -max(margin, 0.05)


def launch_bound_notice(share: float) -> Notice:
    """The GPU waited on the host in most passes: per-layer times measure the launches."""
    return Notice(
        "launch-bound",
        f"in {100 * share:.0f} % of the timed passes the GPU waited on the host: it finished "
        "as soon as the CPU had launched the last kernel, so the layer times measure Python "
        "and kernel-launch overhead more than GPU work",
        "use a larger --batch-size, or CUDA graphs / torch.compile in deployment",
    )


def _some(names: Sequence[str], shown: int = 3) -> str:
    """'a, b, c' or 'a, b, c and 4 more'."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
