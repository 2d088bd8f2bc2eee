"""Benchmarks of latprof's own costs; prints numbers and whether each goal is met.

1. `latprof --help` wall time (goal < 0.5 s; help must not import torch).
2. Per-leaf-call timing overhead: plain forward vs forward hooks vs latprof's TreeTimer, on
   1000 `nn.Identity` layers and on zoo:dscnn (goal: latprof <= 3 µs per call).
3. `latprof.profile` accounting on zoo:cnn and zoo:dscnn: end-to-end, leaf sum, unattributed,
   bias, overhead; closure check hooked - calls x calibrated overhead vs end-to-end (goal 3 %).
4. `latprof profile zoo:dscnn --threads 1 --format csv` wall time beyond its forward passes
   (goal < 2 s), with a breakdown of where the rest goes.

Run with `make bench` or `.venv/bin/python bench/run_all.py profile`; see docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELP_GOAL_S = 0.5
CALL_GOAL_US = 3.0
CLOSURE_GOAL_PCT = 3.0
CLI_GOAL_S = 2.0
ROUNDS = 40  # timed passes per variant in benchmark 2 (after 3 warm-up rounds)
CLI_ARGS = ["profile", "zoo:dscnn", "--threads", "1", "--format", "csv"]
CLI_WARMUP, CLI_TRIALS = 10, 20  # the CLI's defaults, for the pass count of benchmark 4


# ---------------------------------------------------------------- helpers


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        out = []
        for i, c in enumerate(r):
            numeric = c.replace(".", "", 1).replace("-", "", 1).replace("+", "", 1).isdigit()
            out.append(c.rjust(widths[i]) if numeric else c.ljust(widths[i]))
        return "  " + "  ".join(out).rstrip()

    rule = "  " + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def verdict(met: bool) -> str:
    return "goal MET" if met else "goal MISSED"


def heading(text: str) -> None:
    print(f"\n{text}\n{'-' * len(text)}", flush=True)


def latprof_cmd() -> list[str]:
    """The installed `latprof` console script next to this interpreter, else `-m latprof`."""
    script = Path(sys.executable).parent / "latprof"
    return [str(script)] if script.exists() else [sys.executable, "-m", "latprof"]


def wall_times(cmd: Sequence[str], runs: int, warm: int = 1) -> list[float]:
    """Wall seconds of `runs` runs of a command (after `warm` untimed runs); stdout dropped."""
    times = []
    for i in range(warm + runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        if i >= warm:
            times.append(time.perf_counter() - start)
    return times


def python_wall(code: str, runs: int = 3) -> float:
    """Median wall seconds of `python -c code` in fresh interpreters (after one warm run)."""
    return statistics.median(wall_times([sys.executable, "-c", code], runs))


# ---------------------------------------------------------------- 1. --help


def bench_help() -> None:
    """`latprof --help` wall time, and whether it imports torch."""
    heading("1. `latprof --help` wall time (median of 5 runs after 1 warm run)")
    times = wall_times([*latprof_cmd(), "--help"], runs=5, warm=1)
    probe = (
        "import sys\n"
        "sys.argv = ['latprof', '--help']\n"
        "from latprof.cli import run_cli\n"
        "try:\n    run_cli()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str(sorted(m for m in ('torch', 'thop', 'pandas', 'pyarrow', 'numpy')"
        " if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = proc.stderr.strip().splitlines()[-1]
    med = statistics.median(times)
    print(
        table(
            ["runs (ms)", "median ms", "heavy modules imported", "goal", "result"],
            [
                [
                    " ".join(f"{t * 1e3:.0f}" for t in times),
                    f"{med * 1e3:.0f}",
                    loaded if loaded != "[]" else "none",
                    f"< {HELP_GOAL_S * 1e3:.0f} ms",
                    verdict(med < HELP_GOAL_S and "torch" not in loaded),
                ]
            ],
        )
    )


# ---------------------------------------------------------------- 2. per-call overhead


@dataclass
class CallOverhead:
    """Median pass times (µs) of each variant and its extra µs per leaf call vs plain."""

    model: str
    calls: int
    pass_us: dict[str, float]  # variant -> median pass time
    extra_us: dict[str, float]  # variant -> extra µs per call (paired with plain)
    plain_iqr_pct: float


VARIANTS = ("plain", "hooks", "latprof", "latprof_cold")


def _median_paired(a: list[float], b: list[float]) -> float:
    return statistics.median(y - x for x, y in zip(a, b, strict=True))


def call_overhead(name: str, model: Any, x: Any, leaves: list[Any]) -> CallOverhead:
    """Interleave the variants (one timed pass of each per round) and compare with plain.

    plain: no instrumentation; hooks: forward pre+post hooks reading perf_counter_ns;
    latprof: TreeTimer attached, one untimed pass, then the timed pass, as `run_trials` does
    for every hooked sample (since 2026-11-30); latprof_cold: TreeTimer attached right
    before the timed pass (what `run_trials` did before). Extra µs per call = median over
    rounds of (variant - plain of the same round) / leaf calls per pass; pairing within a
    round cancels slow drift of the machine.
    """
    import numpy as np
    import torch

    from latprof.measure.clocks import CpuClock
    from latprof.measure.hooks import TreeTimer

    clock = time.perf_counter_ns
    log: list[int] = []

    def pre(_m: Any, _a: Any, _k: Any) -> None:
        log.append(clock())

    def post(_m: Any, _a: Any, _k: Any, _o: Any) -> None:
        log.append(clock())

    def one_pass() -> float:
        start = clock()
        model(x)
        return (clock() - start) / 1e3

    timer = TreeTimer(leaves, CpuClock())
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    calls = 0
    with torch.inference_mode():
        for r in range(ROUNDS + 3):
            now: dict[str, float] = {}
            model(x)
            now["plain"] = one_pass()
            handles = []
            for m in leaves:
                handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
                handles.append(m.register_forward_hook(post, with_kwargs=True, always_call=True))
            try:
                model(x)
                log.clear()
                now["hooks"] = one_pass()
            finally:
                for h in handles:
                    h.remove()
            with timer.attached():
                model(x)
                timer.calls.clear()
                now["latprof"] = one_pass()
                calls = len(timer.calls)
            model(x)
            with timer.attached():
                timer.calls.clear()
                now["latprof_cold"] = one_pass()
            if r >= 3:
                for v in VARIANTS:
                    samples[v].append(now[v])
    q1, q3 = np.percentile(samples["plain"], [25, 75])
    plain_med = statistics.median(samples["plain"])
    return CallOverhead(
        model=name,
        calls=calls,
        pass_us={v: statistics.median(samples[v]) for v in VARIANTS},
        extra_us={v: _median_paired(samples["plain"], samples[v]) / calls for v in VARIANTS},
        plain_iqr_pct=100 * float(q3 - q1) / plain_med,
    )


def bench_call_overhead() -> dict[str, CallOverhead]:
    """Benchmark 2 on 1000 x nn.Identity ("identity"), zoo:cnn and zoo:dscnn."""
    import torch
    from torch import nn

    from latprof.loading import load_model
    from latprof.measure.hooks import find_leaves

    heading(
        f"2. Per-leaf-call timing overhead (1 thread, inference_mode, median of {ROUNDS} "
        "interleaved rounds)"
    )
    identity = nn.Sequential(*(nn.Identity() for _ in range(1000)))
    results = {
        "identity": call_overhead("1000 x nn.Identity", identity, torch.zeros(1), list(identity))
    }
    for spec in ("zoo:cnn", "zoo:dscnn"):
        loaded = load_model(spec, batch_size=1)
        model = loaded.module.eval()
        leaves = [m for _, m in find_leaves(model)]
        shape = "x".join(map(str, loaded.args[0].shape))
        results[spec] = call_overhead(f"{spec} ({shape})", model, loaded.args[0], leaves)
    rows = []
    for r in results.values():
        noise = r.plain_iqr_pct / 100 * r.pass_us["plain"] / r.calls
        rows.append(
            [
                r.model,
                r.calls,
                f"{r.pass_us['plain']:.0f}",
                f"{r.pass_us['plain'] / r.calls:.2f}",
                f"{noise:.2f}",
                f"{r.pass_us['hooks']:.0f}",
                f"{r.extra_us['hooks']:+.2f}",
                f"{r.pass_us['latprof']:.0f}",
                f"{r.extra_us['latprof']:+.2f}",
                f"{r.extra_us['latprof_cold']:+.2f}",
                verdict(max(r.extra_us["latprof"], r.extra_us["latprof_cold"]) <= CALL_GOAL_US),
            ]
        )
    print(
        table(
            [
                "model",
                "calls/pass",
                "(a) plain µs",
                "(a) µs/call",
                "noise µs/call",
                "(b) hooks µs",
                "(b) extra/call",
                "(c) latprof µs",
                "(c) extra/call",
                "(d) cold extra/call",
                f"latprof <= {CALL_GOAL_US:g} µs/call",
            ],
            rows,
        )
    )
    print(
        "  (a) no instrumentation; (b) forward pre+post hooks (with_kwargs, always_call) that\n"
        "  append perf_counter_ns to a list; (c) latprof's TreeTimer with CpuClock (shadowed\n"
        "  forward), after one untimed pass, as run_trials does for every hooked sample; (d)\n"
        "  the same, attached right before the timed pass. extra/call (µs) = median over\n"
        "  rounds of (variant - plain) / calls per pass. noise = IQR of the plain pass / calls."
    )
    return results


# ---------------------------------------------------------------- 3. profile accounting


@dataclass
class Accounting:
    """What benchmark 3 measured for one model (µs per forward pass, means)."""

    model: str
    e2e_us: float
    e2e_median_us: float
    e2e_iqr_pct: float
    hooked_us: float
    hooked_median_us: float
    leaf_sum_us: float
    unattributed_us: float
    bias_us: float
    overhead_per_call_us: float
    calls: float


def profile_model(spec: str, trials: int, warmup: int = 10) -> Accounting:
    """Run latprof.profile on a zoo model with 1 thread and batch 1."""
    from latprof.config import ProfileConfig
    from latprof.loading import load_model
    from latprof.profiler import profile

    loaded = load_model(spec, batch_size=1)
    config = ProfileConfig(threads=1, warmup=warmup, trials=trials)
    prof = profile(loaded.module, loaded.args, loaded.kwargs, config, name=spec)
    s = prof.summary
    return Accounting(
        model=spec,
        e2e_us=s.e2e.mean,
        e2e_median_us=s.e2e.median,
        e2e_iqr_pct=100 * s.e2e.iqr / s.e2e.median,
        hooked_us=s.hooked.mean,
        hooked_median_us=s.hooked.median,
        leaf_sum_us=s.leaf_sum_us,
        unattributed_us=s.unattributed_us,
        bias_us=s.bias_us,
        overhead_per_call_us=s.overhead_per_call_us,
        calls=s.calls_per_pass,
    )


def bench_accounting(overheads: dict[str, CallOverhead]) -> dict[str, Accounting]:
    """Benchmark 3 on zoo:cnn and zoo:dscnn; returns the results by model."""
    calib = overheads["identity"].extra_us["latprof"]
    heading("3. latprof.profile accounting (threads 1, batch 1, warm-up 10, trials 30)")
    results = {spec: profile_model(spec, trials=30) for spec in ("zoo:cnn", "zoo:dscnn")}
    rows = []
    for a in results.values():
        rows.append(
            [
                a.model,
                f"{a.e2e_us:.1f}",
                f"{a.e2e_median_us:.1f}",
                f"{a.e2e_iqr_pct:.1f}",
                f"{a.leaf_sum_us:.1f}",
                f"{a.unattributed_us:.1f}",
                f"{100 * a.unattributed_us / a.e2e_us:.1f}",
                f"{a.leaf_sum_us / a.e2e_us:.3f}",
                f"{a.calls:.0f}",
                f"{a.bias_us:.3f}",
                f"{a.overhead_per_call_us:+.2f}",
                f"{(a.hooked_median_us - a.e2e_median_us) / a.calls:+.2f}",
            ]
        )
    print(
        table(
            [
                "model",
                "e2e mean µs",
                "e2e median",
                "e2e IQR %",
                "leaf sum µs",
                "unattr. µs",
                "unattr. %",
                "leaf/e2e",
                "calls",
                "bias µs/call",
                "overhead µs/call",
                "(from medians)",
            ],
            rows,
        )
    )
    print(
        "\n  Closure check: predict the unhooked pass from the hooked one,\n"
        "  e2e' = hooked mean - calls x per-call overhead measured in benchmark 2, vs e2e mean."
    )
    rows = []
    for a in results.values():
        own = overheads[a.model].extra_us["latprof"]
        predicted = a.hooked_us - a.calls * calib
        diff_pct = 100 * (predicted - a.e2e_us) / a.e2e_us
        own_pct = 100 * (a.hooked_us - a.calls * own - a.e2e_us) / a.e2e_us
        rows.append(
            [
                a.model,
                f"{a.hooked_us:.1f}",
                f"{a.e2e_us:.1f}",
                f"{predicted:.1f}",
                f"{diff_pct:+.2f}",
                verdict(abs(diff_pct) <= CLOSURE_GOAL_PCT),
                f"{own:.2f}",
                f"{own_pct:+.2f}",
            ]
        )
    print(
        table(
            [
                "model",
                "hooked µs",
                "e2e µs",
                f"e2e' (Identity calib {calib:.3f} µs)",
                "vs e2e %",
                f"within {CLOSURE_GOAL_PCT:g} %",
                "same-model calib (d) µs",
                "vs e2e % with it",
            ],
            rows,
        )
    )
    return results


# ---------------------------------------------------------------- 4. CLI overhead


def bias_calibration_s(runs: int = 5) -> float:
    """Median seconds of latprof's bias calibration (the same call the profiler makes)."""
    import torch

    from latprof.measure.clocks import CpuClock
    from latprof.measure.runner import calibrate_bias

    times = []
    with torch.inference_mode():
        for _ in range(runs):
            start = time.perf_counter()
            calibrate_bias(CpuClock(), "cpu")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_phases() -> tuple[float, dict[str, Any]]:
    """Wall seconds of one instrumented CLI run (bench/_cli_phases.py) and its phases."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phases.json"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "_cli_phases.py"), str(out), *CLI_ARGS],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        wall = time.perf_counter() - start
        return wall, json.loads(out.read_text(encoding="utf-8"))


def cli_imports() -> str:
    """Which of torch/thop/pandas/pyarrow/rich an uninstrumented CLI run has imported."""
    probe = (
        "import sys\n"
        f"sys.argv = ['latprof', *{CLI_ARGS!r}]\n"
        "from latprof.cli import run_cli\n"
        "try:\n    run_cli()\nexcept SystemExit:\n    pass\n"
        "names = ('torch', 'thop', 'pandas', 'pyarrow', 'rich', 'pydantic')\n"
        "sys.stderr.write(' '.join(m for m in names if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    return proc.stderr.strip().splitlines()[-1]


def bench_cli(dscnn: Accounting) -> None:
    """Benchmark 4: CLI wall time vs the forward passes it must run, and a breakdown."""
    heading(f"4. `latprof {' '.join(CLI_ARGS)}`: wall time beyond the forward passes")
    walls = wall_times([*latprof_cmd(), *CLI_ARGS], runs=3, warm=1)
    wall = statistics.median(walls)
    # shape probe + hooked warm-up and trials, each after an untimed pass with the timers;
    # the plain passes of trials 0, 2, 4, ... follow an untimed plain pass (since 2026-12-01)
    hooked_passes = 1 + 2 * (CLI_WARMUP + CLI_TRIALS)
    plain_passes = CLI_WARMUP + CLI_TRIALS + (CLI_TRIALS + 1) // 2
    passes_s = (hooked_passes * dscnn.hooked_us + plain_passes * dscnn.e2e_us) / 1e6
    bias_s = bias_calibration_s()
    needed_s = passes_s + bias_s
    overhead_s = wall - needed_s
    print(
        table(
            ["quantity", "seconds"],
            [
                ["CLI wall time, runs " + " ".join(f"{w:.2f}" for w in walls), f"{wall:.3f}"],
                [
                    f"{hooked_passes} hooked passes x {dscnn.hooked_us:.0f} µs + {plain_passes} "
                    f"plain x {dscnn.e2e_us:.0f} µs (benchmark 3 means)",
                    f"{passes_s:.3f}",
                ],
                [
                    "bias calibration (64 x nn.Identity, 46 hooked passes, 23 timed; median of 5)",
                    f"{bias_s:.3f}",
                ],
                ["overhead beyond the passes", f"{overhead_s:.3f}"],
                [f"goal < {CLI_GOAL_S:g} s", verdict(overhead_s < CLI_GOAL_S)],
            ],
        )
    )

    phase_wall, data = cli_phases()
    in_process = data["in_process_s"]
    rows = [["python start-up + interpreter exit (wall - in-process)", phase_wall - in_process]]
    rows += [[name, seconds] for name, seconds in data["phases"]]
    print(f"\n  Breakdown of one instrumented run (bench/_cli_phases.py), wall {phase_wall:.3f} s:")
    print(
        table(
            ["phase", "ms", "% of wall"],
            [[n, f"{s * 1e3:.1f}", f"{100 * s / phase_wall:.1f}"] for n, s in rows],
        )
    )
    print(f"  heavy modules a plain CLI run imports: {cli_imports()}")

    print("\n  Reference: fresh interpreters, median of 3 runs after 1 warm run:")
    refs: list[tuple[str, str]] = [
        ("python -c pass", "pass"),
        ("python -c 'import latprof.cli'", "import latprof.cli"),
        ("python -c 'import torch'", "import torch"),
        (
            "python -c 'import torch' ending in os._exit(0) (no teardown)",
            "import torch, os, sys; sys.stdout.flush(); os._exit(0)",
        ),
        ("python -c 'import thop' (imports torch)", "import thop"),
        ("python -c 'import pandas'", "import pandas"),
        ("python -c 'import pyarrow.parquet'", "import pyarrow.parquet"),
    ]
    measured = [(label, python_wall(code)) for label, code in refs]
    print(table(["command", "ms"], [[label, f"{s * 1e3:.0f}"] for label, s in measured]))


# ---------------------------------------------------------------- entry point


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def other_cpu_use(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy over `seconds` while this process sleeps (/proc/stat)."""

    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return (total - (idle1 - idle0)) / total if total else None


def load_line() -> str:
    """Other CPU use right now and the load average, warning when other work competes."""
    busy = other_cpu_use()
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    text = f"load average {one:.2f} {five:.2f} on {cores} cores"
    if busy is None:
        return text
    warn = "; OTHER WORK IS RUNNING, numbers may be inflated" if busy > 0.2 else ""
    return f"CPU busy {100 * busy:.0f}% of {cores} cores while idle (1 s sample), {text}{warn}"


def main() -> None:
    """Run benchmarks 1-4 and print their results."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    print(
        f"{cpu_model()}, {os.cpu_count()} cores; python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}"
    )
    print(f"before: {load_line()}", flush=True)
    bench_help()
    overheads = bench_call_overhead()
    accounting = bench_accounting(overheads)
    bench_cli(accounting["zoo:dscnn"])
    print(f"\nafter: {load_line()}")
    print(f"profile_bench: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
