"""The measurement engine on a fake clock: exact, hand-computed numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from latprof.config import ProfileConfig
from latprof.errors import ModelRunError, UsageError
from latprof.measure.clocks import FakeClock
from latprof.profiler import notices_for, profile
from tests.helpers import Work, assert_untouched, snapshot

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
    assert s.unattributed_us == pytest.approx(0.6)
    assert cats["(unattributed)"]["time_us"] == pytest.approx(0.6)
    assert sum(r["share"] for r in prof.category_rows()) == pytest.approx(1.0)
    # hooked pass: 4 calls x 2 reads extra = 0.8 µs, 0.2 µs per call
    assert s.overhead_us == pytest.approx(0.8)
    assert s.overhead_per_call_us == pytest.approx(0.2)
    assert s.e2e.n == 4 and len(prof.layers[0].samples_us) == 4


def test_warmup_passes_are_not_samples() -> None:
    clock = FakeClock()
    model = Net(clock)
    run(model, clock, trials=3, calibrate_bias=False)
    # probe 1 + warm-up 2x(hooked+plain) + trials 3x(hooked+plain) + page-fault pass 1
    # = 12 forward passes; each forward advances 8.5 µs of work
    assert clock.now_ns == 12 * 8500


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
    assert all(layer.stats.n == 3 and layer.stats.min >= 0 for layer in prof.layers)
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
    assert any(
        n.kind == "scripted" and "'2'" not in n.message and "2" in n.message for n in prof.notices
    )


def test_torchscript_root_is_refused() -> None:
    with pytest.raises(UsageError, match="TorchScript"):
        profile(torch.jit.script(nn.Linear(2, 2)), (torch.zeros(1, 2),))


def test_negative_unattributed_from_one_spike_has_a_notice_with_a_hint() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(Net(clock), clock, trials=20)
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
