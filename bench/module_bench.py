"""Issue 14: every module timed. Prints, per goal, the measured figures and whether it is met.

1. Timer cost with every module timed, on nested `nn.Identity` chains (wrappers of depth
   1..32): added time per timed call (goal <= 1 µs) and whether self times are unbiased
   (the chain's (unattributed) near 0, every wrapper's self time near its plain cost).
2. zoo:vit, zoo:swin, zoo:densenet, zoo:dscnn (the structure of ViT, Swin, DenseNet and
   MobileNetV2 blocks): (unattributed) share of end-to-end (goal <= 3 %) and the model's
   own total against end-to-end (goal within 3 %); aten MACs against FlopCounterMode / 2
   (goal within 1 % where FlopCounterMode counts every op).
3. CNN numbers unchanged: zoo:cnn and zoo:dscnn profiled with every module timed and with
   --leaves-only, alternately: leaf times (ratio of sums, median of per-layer ratios) and MACs.
4. Self times against a known cost: 24 convolutions, each inside d wrappers whose forward
   only calls the child. A wrapper's true self time is what the d wrappers add to plain
   passes of the same convolutions called directly (median of 400 paired differences).
   latprof's self times (the nest these passes measure subtracted, `nest_us`) and what they
   would be with the nest calibrated on nn.Identity (`nest_identity_us`, subtracted until
   2026-12-07), against it; and the convolutions' leaf sum against the plain passes of the
   bare convolutions.

CPU, 1 thread, batch 1. Run alone: nothing else may use the CPU while it times.

`module_bench.py MODEL ...` runs part 2 only, on other MODEL specs (e.g.
`torchvision:vit_b_16`, issue 14's own table; torchvision is not a dependency), with the
`--leaves-only` share beside it.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

TRIALS = 50
MODELS = ("zoo:vit", "zoo:swin", "zoo:densenet", "zoo:dscnn")


class Wrap(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def chain(depth: int) -> nn.Module:
    model: nn.Module = nn.Identity()
    for _ in range(depth):
        model = Wrap(model)
    return model


def profile(model: nn.Module, args: tuple, scope: str = "modules", trials: int = TRIALS):
    from latprof.config import ProfileConfig
    from latprof.profiler import profile as run

    config = ProfileConfig(threads=1, warmup=10, trials=trials, scope=scope)
    return run(model, args, {}, config)


def timer_cost() -> None:
    print("1. timer cost on nested Identity chains (depth = wrappers around one Identity)")
    print("   depth  calls  e2e µs  timed µs  added µs/call  Σself+leaf µs  unattributed µs")
    x = torch.zeros(1)
    worst = 0.0
    for depth in (1, 4, 16, 32):
        prof = profile(chain(depth), (x,), trials=200)
        s = prof.summary
        worst = max(worst, s.overhead_per_call_us)
        timed = s.leaf_sum_us + s.self_sum_us
        print(
            f"   {depth:5d}  {s.calls_per_pass:5.0f}  {s.e2e.mean:6.2f}  {s.hooked.mean:8.2f}  "
            f"{s.overhead_per_call_us:13.3f}  {timed:13.2f}  {s.unattributed_us:15.3f}"
        )
    print(
        f"   bias {prof.bias_us:.3f} µs/call, nest {prof.nest_us:.3f} µs per child call "
        f"(nn.Identity {prof.nest_identity_us:.3f})"
    )
    print(
        f"   goal: added time per timed call <= 1 µs: worst {worst:.3f} µs -> "
        f"{'met' if worst <= 1.0 else 'NOT met'}"
    )


def aten_total(model: nn.Module, args: tuple) -> tuple[float, float]:
    from torch.utils.flop_counter import FlopCounterMode

    from latprof.aten_ops import count_macs

    modules = list(model.modules())
    with torch.inference_mode():
        ours = sum(count_macs(model, args, {}, modules).macs.values())
        with FlopCounterMode(display=False) as fc:
            model(*args)
    return ours, fc.get_total_flops() / 2


def attribution(specs: tuple[str, ...] = MODELS, leaves_only: bool = False) -> None:
    from latprof.loading import load_model

    print("\n2. attribution and MACs on transformer / dense / inverted-residual models")
    print(
        "   model     e2e µs  unattributed  model total/e2e  aten MACs     FlopCounter/2  diff"
        + ("  unattributed --leaves-only" if leaves_only else "")
    )
    for spec in specs:
        loaded = load_model(spec)
        model = loaded.module.eval()
        prof = profile(model, loaded.args)
        s = prof.summary
        root = next(r for r in prof.module_rows(0))
        ours, theirs = aten_total(model, loaded.args)
        diff = (ours - theirs) / theirs if theirs else float("nan")
        old = ""
        if leaves_only:
            leaves = profile(model, loaded.args, scope="leaves").summary
            old = f"  {leaves.unattributed_us / leaves.e2e.mean:11.1%}"
        name = spec.split(":")[-1]
        print(
            f"   {name:8s} {s.e2e.mean:7.0f}  {s.unattributed_us / s.e2e.mean:11.1%}  "
            f"{root['time_us'] / s.e2e.mean:15.3f}  {ours:12,.0f}  {theirs:13,.0f}  {diff:+.2%}"
            + old
        )
        top = sorted(prof.module_rows(), key=lambda r: r["self_us"], reverse=True)
        containers = [r for r in top if r["macs_by"] == "aten" and r["self_us"] > 0][:3]
        print(
            "            largest parent self times: "
            + ", ".join(f"{r['class']} {r['self_us']:.0f} µs" for r in containers)
        )
        identity = prof.nest_identity_us  # always set by profile()
        measured = "-" if prof.nest_in_model_us is None else f"{prof.nest_in_model_us:.2f}"
        less = (prof.nest_us - identity) * (s.calls_per_pass - 1)  # all but the model nest
        print(
            f"            nest subtracted {prof.nest_us:.2f} µs (nn.Identity {identity:.2f}, "
            f"these passes {measured}); (unattributed) with nn.Identity's nest "
            f"{(s.unattributed_us - less) / s.e2e.mean:.1%}"
        )


def cnn_unchanged() -> None:
    from latprof.loading import load_model

    print("\n3. CNN numbers with every module timed vs --leaves-only (alternating, 3 rounds)")
    for name in ("cnn", "dscnn"):
        loaded = load_model(f"zoo:{name}")
        sums: dict[str, list[float]] = {"modules": [], "leaves": []}
        per_layer: dict[str, dict[str, list[float]]] = {"modules": {}, "leaves": {}}
        macs: dict[str, dict[str, float | None]] = {}
        for _ in range(3):
            for scope in ("modules", "leaves"):
                prof = profile(loaded.module, loaded.args, scope=scope)
                sums[scope].append(prof.summary.leaf_sum_us)
                for layer in prof.layers:
                    per_layer[scope].setdefault(layer.name, []).append(layer.stats.median)
                macs[scope] = {layer.name: layer.macs for layer in prof.layers}
        ratio = statistics.median(sums["modules"]) / statistics.median(sums["leaves"])
        ratios = [
            statistics.median(per_layer["modules"][n]) / statistics.median(v)
            for n, v in per_layer["leaves"].items()
            if statistics.median(v) > 0
        ]
        same = macs["modules"] == macs["leaves"]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(
            f"   {name:6s} leaf sum modules/leaves-only {ratio:.3f}; per-layer median ratio "
            f"{statistics.median(ratios):.3f} (IQR of ratios {q1:.3f}-{q3:.3f}); "
            f"MACs identical: {same}"
        )


def plain_cost(
    model: nn.Module, bare: nn.Module, x: torch.Tensor, clock
) -> tuple[float, float, float]:
    """Median and mean over 400 pairs of plain passes of (model - bare), and bare's median
    (µs)."""
    from latprof.measure.runner import time_plain

    diffs, bares = [], []
    with torch.inference_mode():
        for _ in range(20):
            model(x), bare(x)
        for _ in range(400):
            b = time_plain(lambda: bare(x), clock, settle=True)
            diffs.append(time_plain(lambda: model(x), clock, settle=True) - b)
            bares.append(b)
    return statistics.median(diffs), statistics.mean(diffs), statistics.median(bares)


def known_self_times() -> None:
    from latprof.measure.clocks import clock_for

    print("\n4. self times of wrappers around 24 convolutions against their plain cost")
    print(
        "   depth  plain µs/wrapper  self (reported)  self (median)  self with nn.Identity's nest  "
        "nest Identity / subtracted µs  conv leaf / plain"
    )
    clock = clock_for("cpu")
    x = torch.randn(1, 16, 28, 28)
    torch.manual_seed(0)
    convs = [nn.Conv2d(16, 16, 3, padding=1) for _ in range(24)]
    bare = nn.Sequential(*convs).eval()
    errors: dict[str, list[float]] = {
        "reported": [], "mean to mean": [], "median": [], "identity": []
    }  # fmt: skip
    for depth in (1, 2, 4):
        wrapped = []
        for conv in convs:
            block: nn.Module = conv
            for _ in range(depth):
                block = Wrap(block)
            wrapped.append(block)
        model = nn.Sequential(*wrapped).eval()
        true, true_mean, bare_us = plain_cost(model, bare, x, clock)
        true /= 24 * depth
        true_mean /= 24 * depth
        prof = profile(model, (x,), trials=200)
        wraps = [m for m in prof.modules if m.category == "Wrap"]
        self_us = sum(m.stats.mean for m in wraps) / len(wraps)
        # the same per-trial self times, by their median: the reference is a median too
        self_median = sum(m.stats.median for m in wraps) / len(wraps)
        identity = prof.nest_identity_us  # always set by profile()
        with_identity = self_us + (prof.nest_us - identity)  # each wrapper has one child
        conv_us = sum(r.stats.mean for r in prof.layers) / bare_us
        print(
            f"   {depth:5d}  {true:16.2f}  {self_us:15.2f}  {self_median:13.2f}  "
            f"{with_identity:28.2f}  {identity:.2f} / {prof.nest_us:.2f}  {conv_us:22.3f}"
        )
        errors["reported"].append(self_us - true)
        errors["mean to mean"].append(self_us - true_mean)
        errors["median"].append(self_median - true)
        errors["identity"].append(with_identity - true)
    print(
        "   self - plain per wrapper, mean over depths: reported "
        f"{statistics.mean(errors['reported']):+.2f} µs (against the plain cost's mean "
        f"{statistics.mean(errors['mean to mean']):+.2f}), by trials' median "
        f"{statistics.mean(errors['median']):+.2f} µs, with nn.Identity's nest "
        f"{statistics.mean(errors['identity']):+.2f} µs"
    )


def noise_line() -> str:
    """The machine's noise right now (bench/_noise.py), to print beside the figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _noise

    return _noise.line()


def main(specs: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    print(noise_line())
    if specs:
        attribution(tuple(specs), leaves_only=True)
    else:
        timer_cost()
        attribution()
        cnn_unchanged()
        known_self_times()
    print(noise_line())
    print(f"\nmodule_bench: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
