"""The measurement engine on a fake clock: exact, hand-computed numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from latprof.config import ProfileConfig
from latprof.errors import ModelRunError, UsageError
from latprof.measure.clocks import FakeClock
from latprof.profile_notices import notices_for
from latprof.profiler import profile
from tests.helpers import Work, assert_untouched, snapshot, timed_now

READ_NS = 100  # each clock read costs 100 ns of fake time


class Conv(Work):
    pass


class Act(Work):
    pass


class Net(nn.Module):
    """conv(3 µs) -> act(1 µs) -> shared conv(2 µs) twice; 0.5 µs of functional work."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.c1 = Conv(clock, 3000)
        self.a1 = Act(clock, 1000)
        self.shared = Conv(clock, 2000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared(self.a1(self.c1(x)))
        self.clock.advance(500)  # like a residual add: no module
        return self.shared(x)


def run(model: nn.Module, clock: FakeClock, trials: int = 4, **kw: object):
    config = ProfileConfig(warmup=2, trials=trials, **kw)
    return profile(model, (torch.zeros(1, 2),), config=config, clock=clock)


def test_exact_layer_and_category_times() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(Net(clock), clock)
    # bias: an Identity call is credited with one clock read = 0.1 µs, then subtracted
    assert prof.bias_us == pytest.approx(0.1)
    layers = {r["layer"]: r for r in prof.layer_rows()}
    assert layers["c1"]["time_us"] == pytest.approx(3.0)
    assert layers["a1"]["time_us"] == pytest.approx(1.0)
    assert layers["shared"]["calls"] == 2
    assert layers["shared"]["time_us"] == pytest.approx(4.0)
    assert [r["layer"] for r in prof.layer_rows()] == ["c1", "a1", "shared"]
    cats = {r["category"]: r for r in prof.category_rows()}
    assert cats["Conv"]["time_us"] == pytest.approx(7.0)
    assert cats["Conv"]["calls"] == 3
    assert cats["Act"]["time_us"] == pytest.approx(1.0)
    # end-to-end without hooks: 8.5 µs of work + one clock read
    s = prof.summary
    assert s.e2e.mean == pytest.approx(8.6)
    assert s.leaf_sum_us == pytest.approx(8.0)
    # the model itself is timed too: its own 0.5 µs is its self time, in category Net.
    # Its raw span: 8 µs of leaves + 4 x 2 reads + 0.5 + its own end read = 9.4 µs; less
    # its bias 0.1, its children's raw 8.4 and 4 x 0.1 µs of their timers outside their marks
    assert prof.nest_us == pytest.approx(0.1)
    assert s.self_sum_us == pytest.approx(0.5)
    assert cats["Net"]["time_us"] == pytest.approx(0.5)
    # only the plain pass's own clock read is outside every module
    assert s.unattributed_us == pytest.approx(0.1)
    assert cats["(unattributed)"]["time_us"] == pytest.approx(0.1)
    assert sum(r["share"] for r in prof.category_rows()) == pytest.approx(1.0)
    # hooked pass: 5 calls (4 leaves + the model) x 2 reads extra = 1.0 µs, 0.2 µs per call
    assert s.overhead_us == pytest.approx(1.0)
    assert s.overhead_per_call_us == pytest.approx(0.2)
    assert s.e2e.n == 4 and len(prof.layers[0].samples_us) == 4


def test_leaves_scope_leaves_the_model_own_work_unattributed() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(Net(clock), clock, scope="leaves")
    assert prof.modules == [] and prof.nest_us == 0.0
    s = prof.summary
    assert s.leaf_sum_us == pytest.approx(8.0) and s.self_sum_us == 0.0
    assert s.unattributed_us == pytest.approx(0.6)  # 0.5 µs of Net's work + one read
    assert s.overhead_us == pytest.approx(0.8)  # 4 calls x 2 reads


def test_warmup_passes_are_not_samples() -> None:
    clock = FakeClock()
    model = Net(clock)
    run(model, clock, trials=3, calibrate_bias=False)
    # probe 1 + warm-up 2x(2 hooked + plain) + trials 3x(2 hooked + plain) + the untimed
    # plain pass before trials 0 and 2's plain pass (after their hooked one) + 5 plain passes
    # counting page faults + layer page-fault pass 1 + aten MAC pass 1 = 25 forward passes;
    # each forward advances 8.5 µs of work
    assert clock.now_ns == 25 * 8500


def test_model_left_as_found_and_training_restored() -> None:
    clock = FakeClock()
    model = Net(clock)
    model.train()
    model.a1.eval()
    keys, flags = snapshot(model)
    run(model, clock)
    assert_untouched(model, keys, flags)


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("kaboom")


def test_raising_forward_names_layer_and_leaves_model_clean() -> None:
    model = nn.Sequential(nn.Linear(2, 2), Boom())
    model.train()
    keys, flags = snapshot(model)
    with pytest.raises(ModelRunError, match=r"layer .1. \(Boom\) failed on input 1x2: kaboom"):
        profile(model, (torch.zeros(1, 2),), config=ProfileConfig(warmup=1, trials=1))
    assert_untouched(model, keys, flags)


def test_shape_mismatch_names_the_layer() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ModelRunError, match=r"layer '2' \(Linear\) failed on input 1x3"):
        profile(model, (torch.zeros(1, 4),), config=ProfileConfig(warmup=1, trials=1))


def test_failure_outside_leaves() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).view(3, 7)

    with pytest.raises(ModelRunError, match="outside any leaf layer after layer 'fc'"):
        profile(Bad(), (torch.zeros(1, 2),), config=ProfileConfig(warmup=1, trials=1))


def test_model_without_children_is_its_own_leaf() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.w

    prof = profile(Plain(), (torch.ones(2, 3),), config=ProfileConfig(warmup=1, trials=2))
    assert [r["layer"] for r in prof.layer_rows()] == ["(model)"]
    assert prof.layers[0].category == "Plain" and prof.layers[0].params == 3


def test_keyword_and_multiple_inputs() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(5, 4)

        def forward(self, x: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    prof = profile(
        Two(),
        (torch.ones(2, 3),),
        {"y": torch.ones(2, 5)},
        config=ProfileConfig(warmup=1, trials=2),
    )
    rows = {r["layer"]: r for r in prof.layer_rows()}
    assert rows["a"]["input_shape"] == "2x3" and rows["b"]["input_shape"] == "2x5"
    assert rows["a"]["macs"] == 2 * 3 * 4
    assert prof.input_shapes == ["2x3", "2x5"]


def test_compiled_model_is_refused() -> None:
    class OptimizedModule(nn.Module):
        pass

    with pytest.raises(UsageError, match=r"torch\.compile"):
        profile(OptimizedModule(), ())


def test_cuda_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from latprof.errors import DeviceError

    with pytest.raises(DeviceError, match="CUDA is not available"):
        profile(nn.Linear(2, 2), (torch.zeros(1, 2),), config=ProfileConfig(device="cuda"))


def test_bad_config_values() -> None:
    with pytest.raises(UsageError, match="--trials must be at least 1"):
        ProfileConfig(trials=0)
    with pytest.raises(UsageError, match="--warmup"):
        ProfileConfig(warmup=-1)
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        ProfileConfig(device="tpu")
    with pytest.raises(UsageError, match="--dtype"):
        ProfileConfig(dtype="int8")


def test_real_clock_end_to_end(tiny_cnn: nn.Module) -> None:
    keys, flags = snapshot(tiny_cnn)
    prof = profile(tiny_cnn, (torch.randn(1, 3, 8, 8),), config=ProfileConfig(warmup=2, trials=3))
    assert [layer.category for layer in prof.layers] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
    ]
    for layer in prof.layers:
        assert layer.stats.n == 3 and layer.stats.min == min(layer.samples_us)
    assert prof.environment.torch == torch.__version__
    assert prof.layers[0].macs == 8 * 8 * 4 * 3 * 3 * 3
    assert_untouched(tiny_cnn, keys, flags)


def test_dtype_conversion_does_not_touch_user_model(tiny_cnn: nn.Module) -> None:
    prof = profile(
        tiny_cnn,
        (torch.randn(1, 3, 8, 8),),
        config=ProfileConfig(dtype="bfloat16", warmup=1, trials=2),
    )
    assert next(tiny_cnn.parameters()).dtype == torch.float32
    assert prof.config.dtype == "bfloat16"


def test_instance_forward_is_restored_and_scripted_leaf_is_unattributed() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), torch.jit.script(nn.Linear(2, 2)))
    custom = model[1].forward
    model[1].forward = custom  # an instance-level forward the user set
    prof = profile(model, (torch.zeros(1, 2),), config=ProfileConfig(warmup=1, trials=2))
    assert model[1].__dict__["forward"] is custom
    assert "forward" not in model[0].__dict__
    assert [layer.name for layer in prof.layers] == ["0", "1"]
    [notice] = [n for n in prof.notices if n.kind == "scripted"]
    assert "'2'" not in notice.message and "(2)" in notice.message
    # the Sequential is timed: the scripted module's time is in its self time
    assert "their parent's self time" in notice.message
    assert [m.name for m in prof.modules] == ["(model)"]
    leaves = profile(
        model, (torch.zeros(1, 2),), config=ProfileConfig(warmup=1, trials=2, scope="leaves")
    )
    assert "in (unattributed)" in next(n for n in leaves.notices if n.kind == "scripted").message


def test_torchscript_root_is_refused() -> None:
    with pytest.raises(UsageError, match="TorchScript"):
        profile(torch.jit.script(nn.Linear(2, 2)), (torch.zeros(1, 2),))


def test_negative_unattributed_from_one_spike_has_a_notice_with_a_hint() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(Net(clock), clock, trials=20, scope="leaves")
    assert not [n for n in prof.notices if n.kind == "negative-unattributed"]
    # one 20 µs spike in c1 raises the leaf sum by 1 µs, past the end-to-end mean of 8.6 µs,
    # but by less than the end-to-end IQR
    layers = [replace(layer, samples_us=list(layer.samples_us)) for layer in prof.layers]
    layers[0].samples_us[7] += 20.0
    e2e = [8.6 + d for d in [-1.5, -0.5, 0.5, 1.5] * 5]
    spiked = replace(prof, layers=layers, e2e_us=e2e, notices=[])
    s = spiked.summary
    assert s.unattributed_us == pytest.approx(-0.4) and -s.unattributed_us < s.e2e.iqr
    [notice] = [n for n in notices_for(spiked) if n.kind == "negative-unattributed"]
    assert "exceeds end-to-end latency by 0.40 µs" in notice.message
    assert "time_us_median" in notice.hint and "largest gap: c1" in notice.hint


# ------------------------------------------------------------------ skewed samples
# Samples that are neither constant nor symmetric, with 5 trials: mean != median everywhere, so
# a row, a category or (unattributed) computed from the wrong statistic shows.


class Skewed(nn.Module):
    """A leaf taking `timed_us[i]` µs of fake time in the i-th timed trial pass with timers,
    `timed_us[0]` in warm-up and in the untimed pass with timers that precedes each timed
    one, and `plain_us` in passes without timers; `calls` is its calls per pass."""

    def __init__(
        self, clock: FakeClock, timed_us: list[float], plain_us: float, warmup: int, calls: int = 1
    ) -> None:
        super().__init__()
        self.clock, self.timed_us, self.plain_us = clock, timed_us, plain_us
        self.warmup, self.calls = warmup, calls
        self.hooked = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if timed_now(self):  # latprof's timer shadows forward while it times
            attached = self.hooked // self.calls  # passes with timers so far, untimed included
            self.hooked += 1
            i = attached // 2 - self.warmup  # the timed pass of each pair is the second
            timed = attached % 2 == 1 and i >= 0
            us = self.timed_us[i % len(self.timed_us)] if timed else self.timed_us[0]
        else:
            us = self.plain_us
        self.clock.advance(round(us * 1000))
        return x + 0


class SkewConv(Skewed):
    pass


class SkewAct(Skewed):
    pass


WARMUP = 2
C1_US = [2.0, 50.0, 1.0, 3.0, 2.0]  # per trial; sorted 1 2 2 3 50
A1_US = [1.0, 1.0, 6.0, 1.0, 1.0]  # sorted 1 1 1 1 6
E2E_US = [20.0, 60.0, 21.0, 20.0, 22.0]  # passes without timers; sorted 20 20 21 22 60


class SkewedNet(nn.Module):
    """c1 (SkewConv) -> a1 (SkewAct) -> shared (SkewConv, 2 µs) twice. Without timers the
    leaves take 2 + 1 + 2 x 2 = 7 µs and the net adds E2E_US - 7 µs of its own work."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.c1 = SkewConv(clock, C1_US, 2.0, WARMUP)
        self.a1 = SkewAct(clock, A1_US, 1.0, WARMUP)
        self.shared = SkewConv(clock, [2.0], 2.0, WARMUP, calls=2)
        self.plain = 0
        self.passes_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared(self.a1(self.c1(x)))
        x = self.shared(x)
        # a timed pass follows a start_pass(); an untimed plain pass (before a plain pass that
        # follows one with timers) does not
        timed, self.passes_seen = self.clock.passes != self.passes_seen, self.clock.passes
        if not timed_now(self.c1) and timed:  # a timed plain pass
            i = self.plain - WARMUP
            self.plain += 1
            e2e = E2E_US[i] if 0 <= i < len(E2E_US) else 20.0  # warm-up, page-fault pass
            self.clock.advance(round(e2e * 1000) - 7000)
        return x


def skewed_profile():
    clock = FakeClock()  # free clock reads: bias 0, samples exactly the work
    prof = run(SkewedNet(clock), clock, trials=5)
    return prof, clock


def test_skewed_layer_rows_exact_statistics() -> None:
    prof, _ = skewed_profile()
    assert prof.bias_us == 0.0
    rows = {r["layer"]: r for r in prof.layer_rows()}
    c1, a1, shared = rows["c1"], rows["a1"], rows["shared"]
    # c1: 2 50 1 3 2 -> mean 58/5, median 2; deviations from 11.6: -9.6 38.4 -10.6 -8.6 -9.6
    assert c1["time_us"] == pytest.approx(11.6)
    assert c1["time_us_median"] == pytest.approx(2.0)
    ss = 9.6**2 + 38.4**2 + 10.6**2 + 8.6**2 + 9.6**2  # = 1845.2
    assert c1["time_us_std"] == pytest.approx(math.sqrt(ss / 4))  # ddof = 1
    assert c1["time_us_min"] == pytest.approx(1.0)
    assert c1["time_us_iqr"] == pytest.approx(1.0)  # sorted 1 2 2 3 50: q1 = 2, q3 = 3
    assert c1["n"] == 5
    # MAD = median(|x - 2|) = median(0 48 1 1 0) = 1; 48 / 1 > 14.8: one outlier
    assert c1["outliers"] == 1
    assert c1["share"] == pytest.approx(11.6 / 28.6)
    # a1: 1 1 6 1 1 -> mean 2, median 1, std sqrt((1+1+16+1+1)/4), IQR 0, MAD 0: no outlier
    assert (a1["time_us"], a1["time_us_median"]) == pytest.approx((2.0, 1.0))
    assert a1["time_us_std"] == pytest.approx(math.sqrt(5.0))
    assert (a1["time_us_min"], a1["time_us_iqr"], a1["n"], a1["outliers"]) == (1.0, 0.0, 5, 0)
    assert shared["time_us"] == pytest.approx(4.0) and shared["calls"] == 2


def test_skewed_categories_are_means_of_per_trial_sums() -> None:
    prof, _ = skewed_profile()
    cats = {r["category"]: r for r in prof.category_rows()}
    # SkewConv per trial: c1 + shared = 6 54 5 7 6 -> mean 15.6 (the median would be 6, the
    # sum of medians 2 + 4 = 6 too)
    assert cats["SkewConv"]["time_us"] == pytest.approx(15.6)
    assert cats["SkewAct"]["time_us"] == pytest.approx(2.0)  # its median is 1
    assert cats["SkewConv"]["calls"] == 3 and cats["SkewAct"]["calls"] == 1
    # leaf sums per trial 7 55 11 8 7 -> mean 17.6; end-to-end mean 143 / 5 = 28.6
    s = prof.summary
    assert s.leaf_sum_us == pytest.approx(17.6)
    assert s.unattributed_us == pytest.approx(11.0)  # from medians: 21 - 7 = 14, or 3.4
    assert cats["(unattributed)"]["time_us"] == pytest.approx(11.0)
    assert cats["SkewConv"]["share"] == pytest.approx(15.6 / 28.6)
    assert sum(r["share"] for r in prof.category_rows()) == pytest.approx(1.0)


def test_skewed_end_to_end_exact_statistics() -> None:
    prof, _ = skewed_profile()
    e2e = prof.summary.e2e
    assert prof.e2e_us == pytest.approx(E2E_US)  # trial order kept
    assert e2e.mean == pytest.approx(28.6) and e2e.median == pytest.approx(21.0)
    ss = 8.6**2 + 31.4**2 + 7.6**2 + 8.6**2 + 6.6**2  # = 1235.2
    assert e2e.std == pytest.approx(math.sqrt(ss / 4))
    assert (e2e.min, e2e.max, e2e.n) == (pytest.approx(20.0), pytest.approx(60.0), 5)
    assert e2e.iqr == pytest.approx(2.0)  # q1 = 20, q3 = 22
    # p10 of 20 20 21 22 60: position 0.4 between 20 and 20
    assert e2e.p10 == pytest.approx(20.0)
    assert e2e.outliers == 1  # MAD = median(1 39 0 1 1) = 1


def test_one_synchronisation_per_timed_pass() -> None:
    _, clock = skewed_profile()
    # bias calibration: 3 + 20 timed passes; nesting calibration: 2 x (3 + 20); warm-up and
    # trials: one pass with and one without timers each; a finish() (on CUDA a
    # synchronisation) per timed pass, never per layer call; every pass with timers follows
    # an untimed one with them, which starts (resets the events) but never synchronises
    timed = 23 + 2 * 23 + 2 * (WARMUP + 5)
    untimed = 23 + 2 * 23 + (WARMUP + 5)
    assert clock.finishes == timed
    assert clock.passes == timed + untimed
    # on CUDA the device is idle before each timed pass, and after the untimed plain pass
    # that precedes a trial's plain pass following one with timers (trials 0, 2 and 4)
    assert clock.settles == untimed + 3


def test_trials_alternate_with_and_without_timers() -> None:
    from latprof.measure.runner import run_trials

    clock = FakeClock()
    seen: list[str] = []

    class Recorder(nn.Module):
        """Each plain pass takes one µs more than the last (1, 2, 3, ...); timed ones 10 x."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            kind = "timers" if timed_now(self) else "plain"
            seen.append(kind)
            clock.advance(1000 * seen.count(kind) * (10 if kind == "timers" else 1))
            return x

    leaf = Recorder()
    x = torch.zeros(1)
    result = run_trials(lambda: leaf(x), [leaf], clock, warmup=1, trials=4)
    timers, plain = "timers", "plain"
    assert seen == [
        *(timers, timers, plain),  # warm-up
        # trial 0: A B (A: an untimed pass with the timers, then A; B: an untimed plain pass,
        # then B, because it follows a pass with timers)
        *(timers, timers, plain, plain),
        *(plain, timers, timers),  # trial 1: B A (B follows trial 0's B)
        *(timers, timers, plain, plain),
        *(plain, timers, timers),
    ]
    # each trial's samples come from its own timed passes (the first of each kind is
    # warm-up; of each two passes in a row of one kind, the first is untimed)
    assert result.e2e_us.tolist() == pytest.approx([3.0, 4.0, 6.0, 7.0])
    assert result.hooked_us.tolist() == pytest.approx([40.0, 60.0, 80.0, 100.0])
    assert result.leaf_time_us[:, 0].tolist() == pytest.approx([40.0, 60.0, 80.0, 100.0])
    assert clock.finishes == 10 and clock.passes == 15  # an untimed pass starts, never finishes


def test_untimed_passes_are_settled_before_the_timed_pass_starts() -> None:
    """On CUDA the timed pass must start on an idle device: every untimed pass is followed by
    settle() (a synchronisation) and only then by start_pass()."""
    from latprof.measure.runner import run_trials

    events: list[str] = []

    class Recording(FakeClock):
        def start_pass(self) -> None:
            events.append("start")
            super().start_pass()

        def settle(self) -> None:
            events.append("settle")
            super().settle()

        def finish(self) -> None:
            events.append("finish")
            super().finish()

    class Leaf(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            events.append("timers" if timed_now(self) else "plain")
            return x

    leaf = Leaf()
    run_trials(lambda: leaf(torch.zeros(1)), [leaf], Recording(), warmup=0, trials=2)
    hooked = ["start", "timers", "settle", "start", "timers", "finish"]
    assert events == [
        *hooked,  # trial 0: A (with timers), then B after an untimed plain pass
        *("plain", "settle", "start", "plain", "finish"),
        *("start", "plain", "finish"),  # trial 1: B (after a plain pass), then A
        *hooked,
    ]


def test_profile_reports_page_faults_per_plain_pass() -> None:
    clock = FakeClock()
    faults = {"n": 0}
    reads: list[int] = []  # timed passes finished when the counter was read

    class Faulting(nn.Module):
        """A plain pass takes 3 faults, a pass with timers 1000: only plain ones count."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            faults["n"] += 1000 if timed_now(self) else 3
            return x

    def counter() -> int:
        reads.append(clock.finishes)
        return faults["n"]

    config = ProfileConfig(warmup=1, trials=4, threads=1, calibrate_bias=False)
    prof = profile(
        nn.Sequential(Faulting()), (torch.zeros(1),), config=config, clock=clock,
        fault_counter=counter,
    )  # fmt: skip
    assert prof.e2e_faults_per_pass == 3.0
    assert reads and min(reads) == clock.finishes  # never read before the last timed pass


def test_plain_faults_reads_the_counter_once_before_and_once_after_the_passes() -> None:
    from latprof.profiler import FAULT_PASSES, plain_faults

    state = {"faults": 0, "reads": 0}

    def counter() -> int:
        state["reads"] += 1
        return state["faults"]

    def forward() -> None:
        state["faults"] += 4

    assert plain_faults(forward, counter) == 4.0
    assert state == {"faults": 4 * FAULT_PASSES, "reads": 2}


# ------------------------------------------------------------------ notices
# Each notice of README/docs/methodology.md "Warnings", from fake samples.


def with_samples(prof, e2e: list[float], **layer_samples: list[float]):
    """The profile with other end-to-end samples and layer samples (by layer name)."""
    layers = [
        replace(layer, samples_us=list(layer_samples.get(layer.name, layer.samples_us)))
        for layer in prof.layers
    ]
    return replace(prof, layers=layers, e2e_us=e2e, notices=[])


def kinds(prof) -> dict[str, object]:
    return {n.kind: n for n in notices_for(prof)}


@pytest.fixture(scope="module")
def quiet() -> object:
    """Net on a fake clock, 5 trials, leaves timed: constant samples, no notice but
    macs-not-counted."""
    clock = FakeClock(read_cost_ns=READ_NS)
    return run(Net(clock), clock, trials=5, scope="leaves")


def test_quiet_profile_has_no_measurement_notice(quiet) -> None:
    assert [n.kind for n in quiet.notices] == ["macs-not-counted"]


def test_noisy_end_to_end_notice(quiet) -> None:
    # sorted 80 100 100 120 140: IQR 20 = 20% of the median 100
    noisy = with_samples(quiet, [80.0, 100.0, 120.0, 140.0, 100.0])
    notice = kinds(noisy)["noisy"]
    assert notice.message == "end-to-end latency is noisy: IQR is 20% of the median"
    assert "--threads 1" in notice.hint
    # exactly 10% (sorted 100 100 100 110 110: IQR 10, median 100) is not noisy
    assert "noisy" not in kinds(with_samples(quiet, [100.0, 110.0, 100.0, 110.0, 100.0]))


def test_noisy_layers_notice_counts_only_layers_with_one_percent_of_the_time(quiet) -> None:
    e2e = [1000.0] * 5
    prof = with_samples(
        quiet,
        e2e,
        c1=[80.0, 100.0, 120.0, 140.0, 100.0],  # mean 108, IQR 20% of median: listed
        a1=[1.0, 2.0, 3.0, 4.0, 2.0],  # IQR 50% of its median, but mean 2.4 < 1% of 1000
        shared=[7.0, 8.0, 10.0, 12.0, 13.0],  # mean exactly 1% (10 µs), IQR 4 = 40%: listed
    )
    notice = kinds(prof)["noisy-layers"]
    assert notice.message == (
        "2 layer(s) with >= 1% of the time have IQR > 10% of their median (e.g. c1, shared)"
    )
    assert "time_us_median" in notice.hint
    quiet_layers = with_samples(quiet, e2e, c1=[100.0] * 5, shared=[10.0] * 5)
    assert "noisy-layers" not in kinds(quiet_layers)


def test_outliers_notice_end_to_end_and_layers(quiet) -> None:
    e2e = [1000.0] * 5
    prof = with_samples(
        quiet,
        e2e,
        # MAD 1, one sample 200 away: an outlier raising the mean 100 -> 140 (+40%)
        c1=[100.0, 100.0, 101.0, 99.0, 300.0],
        # an outlier too (20 > 14.8 MADs), but it moves the mean by 4% only
        shared=[100.0, 100.0, 101.0, 99.0, 120.0],
    )
    notice = kinds(prof)["outliers"]
    assert notice.message == (
        "outlier samples (|x - median| / MAD > 14.8): 0 in end-to-end; 1 layer(s) whose mean "
        "they move by > 5% (e.g. c1); kept in the means"
    )
    e2e_only = with_samples(quiet, [1000.0, 1000.0, 1001.0, 999.0, 1100.0])
    notice = kinds(e2e_only)["outliers"]
    assert notice.message.startswith("outlier samples (|x - median| / MAD > 14.8): 1 in end-to")
    assert "0 layer(s) whose mean" in notice.message
    assert "outliers" not in kinds(with_samples(quiet, e2e, shared=prof.layers[2].samples_us))


def test_macs_not_counted_notice_names_the_classes(quiet) -> None:
    notice = kinds(quiet)["macs-not-counted"]
    assert notice.message == "MACs are not counted for Act, Conv (no counter known); shown empty"
    assert "register_counter" in notice.hint
    counted = profile(
        nn.Sequential(nn.Linear(2, 3), nn.ReLU()),
        (torch.zeros(1, 2),),
        config=ProfileConfig(warmup=1, trials=5),
    )
    assert "macs-not-counted" not in {n.kind for n in counted.notices}


def test_negative_unattributed_fires_on_any_negative_value_and_says_if_within_iqr(quiet) -> None:
    """docs/methodology.md: any negative value warns; the message says when it is noise-sized."""
    leaf_sum = quiet.summary.leaf_sum_us
    beyond = kinds(with_samples(quiet, [leaf_sum - 1.0] * 5))["negative-unattributed"]
    assert "exceeds end-to-end latency by 1.00 µs;" in beyond.message  # IQR 0: not within
    assert "within" not in beyond.message
    spread = [leaf_sum - 1.0 + d for d in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    within = kinds(with_samples(quiet, spread))["negative-unattributed"]
    assert "by 1.00 µs, within the end-to-end IQR of" in within.message
    assert "negative-unattributed" not in kinds(with_samples(quiet, [leaf_sum + 0.5] * 5))


def test_uncalled_leaves_notice() -> None:
    clock = FakeClock()
    model = Net(clock)
    model.unused = Act(clock, 1000)
    model.unused_too = nn.ReLU()
    prof = run(model, clock, trials=5)
    [notice] = [n for n in prof.notices if n.kind == "uncalled"]
    assert notice.message == (
        "2 leaf module(s) were never called in the forward pass (unused, unused_too); not listed"
    )
    assert [layer.name for layer in prof.layers] == ["c1", "a1", "shared"]


class FailsOnCall(nn.Module):
    """Fails on its k-th forward call (a user model that misbehaves late)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.k, self.n = k, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n += 1
        if self.n == self.k:
            raise RuntimeError(f"fail at call {self.n}")
        return self.fc(x)


def test_a_model_failing_in_any_pass_is_a_model_run_error() -> None:
    """Also in the passes after the timed ones (page faults, MAC counting)."""
    config = ProfileConfig(warmup=1, trials=3, threads=1)
    calls = FailsOnCall(0)
    profile(calls, (torch.ones(2, 4),), config=config)
    seen = calls.n
    for k in range(1, seen + 1):
        model = FailsOnCall(k)
        with pytest.raises(ModelRunError, match=f"fail at call {k}"):
            profile(model, (torch.ones(2, 4),), config=config)
        assert model.training and "forward" not in vars(model.fc)


def test_one_bare_tensor_is_one_input_and_lazy_modules_are_refused() -> None:
    config = ProfileConfig(warmup=1, trials=2, threads=1)
    bare = profile(nn.Bilinear(4, 4, 2), (torch.ones(2, 4), torch.ones(2, 4)), config=config)
    assert bare.input_shapes == ["2x4", "2x4"]
    assert profile(nn.Linear(4, 4), torch.ones(2, 4), config=config).input_shapes == ["2x4"]
    lazy = nn.Sequential(nn.Linear(4, 4), nn.LazyLinear(2))
    with pytest.raises(UsageError, match=r"lazy modules not initialised yet \(1\)"):
        profile(lazy, (torch.ones(2, 4),), config=config)
    assert type(lazy[1]).__name__ == "LazyLinear"  # not materialised


def test_a_model_that_cannot_be_copied_is_a_clear_error() -> None:
    import threading

    class NoCopy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.lock = threading.Lock()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    from latprof.errors import LatprofError

    config = ProfileConfig(warmup=1, trials=2, threads=1)
    with pytest.raises(LatprofError, match="make its attributes copyable"):
        profile(NoCopy(), (torch.ones(2, 4),), config=config)
    converting = ProfileConfig(warmup=1, trials=2, threads=1, dtype="bfloat16")
    with pytest.raises(UsageError, match=r"cannot copy the model to move it to cpu/bfloat16"):
        profile(NoCopy(), (torch.ones(2, 4),), config=converting)
