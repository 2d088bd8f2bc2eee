"""The CUDA path proven on CPU with a fake torch.cuda: events on the requested device's
stream, one synchronisation per pass, warm-up passes not samples, elapsed times read only
after the pass's synchronisation, the launch-bound share, and the CUDA conditions."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latprof.cli import app
from latprof.config import MeasureSettings, ProfileConfig
from latprof.errors import UsageError
from latprof.lut import in_network
from latprof.lut.jobs import Job
from latprof.measure.clocks import CudaClock, FakeClock
from latprof.measure.device import cuda_flags, cuda_flags_now, device_context
from latprof.measure.runner import run_trials
from latprof.profile_notices import launch_bound_notice
from tests.fake_cuda import FakeCuda
from tests.helpers import Work


def cuda_clock(device: str = "cuda:1", current: int = 0, host: str = "clock"):
    clock = FakeClock()
    fake = FakeCuda(clock, current=current)
    host_ns = (lambda: clock.now_ns) if host == "clock" else (lambda: 0)
    return clock, fake, CudaClock(device, cuda=fake, host_ns=host_ns)


def net(clock: FakeClock) -> nn.Sequential:
    return nn.Sequential(Work(clock, 3000), Work(clock, 5000))


def test_events_go_to_the_stream_of_the_requested_device_not_the_current_one() -> None:
    clock, fake, cuda = cuda_clock("cuda:1", current=0)
    model = net(clock)
    x = torch.zeros(1)
    with torch.inference_mode():
        run_trials(lambda: model(x), list(model), cuda, warmup=2, trials=3)
    assert fake.devices() == {1}


def test_one_synchronisation_per_pass_and_warmup_is_not_sampled() -> None:
    clock, fake, cuda = cuda_clock()
    model = net(clock)
    x = torch.zeros(1)
    with torch.inference_mode():
        result = run_trials(lambda: model(x), list(model), cuda, warmup=2, trials=3)
    # warm-up and trials each run one pass with timers and one without: 10 passes, each
    # synchronised once; the untimed pass before each pass with timers is settled once, and
    # so is the untimed plain pass before each plain pass of a trial that follows one with
    # timers (trials 0 and 2: AB BA AB)
    assert cuda.passes == 2 * (2 + 3)
    assert fake.syncs == cuda.passes + (2 + 3) + 2
    assert result.leaf_time_us.shape == (3, 2)  # only the trials are samples
    # elapsed times were read after their pass's synchronisation (the fake raises otherwise)
    assert result.leaf_time_us[:, 0].tolist() == [3.0, 3.0, 3.0]
    assert result.leaf_time_us[:, 1].tolist() == [5.0, 5.0, 5.0]
    assert result.e2e_us.tolist() == [8.0, 8.0, 8.0]


def test_reading_before_the_synchronisation_is_caught() -> None:
    clock, _, cuda = cuda_clock()
    cuda.start_pass()
    start = cuda.mark()
    clock.advance(1000)
    end = cuda.mark()
    with pytest.raises(RuntimeError, match="before the events were synchronised"):
        cuda.elapsed_us(start, end)
    cuda.finish()
    assert cuda.elapsed_us(start, end) == pytest.approx(1.0)


def test_network_passes_synchronise_once_each_in_tables() -> None:
    clock, fake, cuda = cuda_clock()

    def job(key: str, ns: int) -> Job:
        return Job(key, {"op": "w"}, lambda: (Work(clock, ns), (torch.zeros(1),)))

    slots = [[job("a", 1000)], [job("b", 2000)], [job("c", 4000)]]
    settings = MeasureSettings(device="cpu", warmup=1, trials=4)
    rows = in_network.measure([j for s in slots for j in s], slots, settings, cuda)
    assert {r["key"]: r["time_us_median"] for r in rows} == {"a": 1.0, "b": 2.0, "c": 4.0}
    network_passes = in_network.NETWORK_WARMUP + 4  # one network: warm-up and trial passes
    assert fake.syncs == cuda.passes
    assert cuda.passes <= network_passes  # never one per block
    assert fake.devices() == {1}


def test_launch_bound_share() -> None:
    clock, _, bound = cuda_clock(host="clock")  # the GPU ends when the host has launched
    model = net(clock)
    with torch.inference_mode():
        run_trials(lambda: model(torch.zeros(1)), list(model), bound, warmup=1, trials=2)
    assert bound.launch_bound_share == 1.0
    clock, _, busy = cuda_clock(host="zero")  # the host launched everything at once
    model = net(clock)
    with torch.inference_mode():
        run_trials(lambda: model(torch.zeros(1)), list(model), busy, warmup=1, trials=2)
    assert busy.launch_bound_share == 0.0
    notice = launch_bound_notice(0.75)
    assert notice.kind == "launch-bound" and "75 %" in notice.message
    assert "larger --batch-size" in notice.hint


def test_cuda_conditions_are_set_only_when_asked_and_restored() -> None:
    before = cuda_flags_now()
    with cuda_flags(tf32=not before["tf32_matmul"], cudnn_benchmark=True):
        now = cuda_flags_now()
        assert now["tf32_matmul"] == now["tf32_cudnn"] == (not before["tf32_matmul"])
        assert now["cudnn_benchmark"] is True
    assert cuda_flags_now() == before
    with cuda_flags():
        assert cuda_flags_now() == before
    with device_context("cpu"):
        pass  # no CUDA needed for the CPU path


def test_cuda_conditions_on_cpu_are_one_line_errors() -> None:
    with pytest.raises(UsageError, match="--tf32 sets a CUDA condition"):
        ProfileConfig(tf32=True)
    for cmd in (["profile", "zoo:cnn"], ["build-lut", "--space", "tests/spaces/tiny.toml"]):
        result = CliRunner().invoke(app, [*cmd, "--tf32", "on"])
        assert result.exit_code == 2, result.output
        assert "--tf32 sets a CUDA condition; it has no meaning with --device cpu" in result.stderr
    result = CliRunner().invoke(app, ["profile", "zoo:cnn", "--cudnn-benchmark", "maybe"])
    assert result.exit_code == 2 and "--cudnn-benchmark 'maybe': use on or off" in result.stderr


def test_a_model_split_over_devices_is_refused_naming_the_parameter() -> None:
    from latprof.profiler import profile

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, device="meta"))
    expected = r"several devices \('0.weight' on cpu; '1.weight' on meta"
    with pytest.raises(UsageError, match=expected):
        profile(model, (torch.zeros(1, 2),), config=ProfileConfig(warmup=1, trials=1))


def test_calibration_passes_do_not_count_towards_the_launch_bound_notice() -> None:
    """The bias and nesting calibrations time nn.Identity (no GPU work): every one of their
    69 passes looks launch-bound. Only the model's trial passes decide the notice."""
    from latprof.config import ProfileConfig
    from latprof.profiler import profile

    clock, _, busy = cuda_clock(host="zero")  # the model's passes keep the GPU busy
    model = nn.Sequential(nn.Sequential(Work(clock, 3000)), Work(clock, 5000))
    prof = profile(model, (torch.zeros(1),), config=ProfileConfig(warmup=2, trials=4), clock=busy)
    assert busy.passes > 69 and busy.launch_bound >= 69  # the calibrations were counted
    assert "launch-bound" not in {n.kind for n in prof.notices}


def test_entries_timed_in_their_model_read_events_after_each_pass_synchronises() -> None:
    from latprof.lut import in_model
    from latprof.lut.model_layers import entry_calls
    from tests.test_in_model import Net

    clock, fake, cuda = cuda_clock("cuda:1", current=0)
    model, x = Net(clock), torch.zeros(1, 2)
    jobs = {
        c.key(1, "float32"): c.job(1, "float32") for c in entry_calls(model, (x,), {}, ["Block"])
    }
    settings = MeasureSettings(device="cpu", warmup=1, trials=3)
    rows = in_model.measure_model(model, (x,), {}, ["Block"], jobs, settings, cuda)
    # the fake raises if an event is read before its pass synchronised; then exact times
    assert {r["op"]: r["samples_us"] for r in rows.values() if r["op"] == "Block"} == {
        "Block": [2.5, 2.5, 2.5]
    }
    assert sorted(r["samples_us"][0] for r in rows.values() if r["op"] == "Wait") == [1.0, 3.0]
    assert fake.devices() == {1} and fake.syncs >= cuda.passes
