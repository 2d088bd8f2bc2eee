"""Device calibration: the arithmetic on a fake clock, one tiny real run, the file format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from latprof import calibrate
from latprof.calibrate import Calibration
from latprof.errors import DeviceError, FileFormatError, UsageError
from latprof.measure.clocks import FakeClock


class ScriptedClock(FakeClock):
    """Each timed pass lasts the next of `durations_ns` (start marks cost nothing)."""

    def __init__(self, durations_ns: list[int]) -> None:
        super().__init__()
        self.durations = list(durations_ns)
        self.marks = 0

    def mark(self) -> int:
        self.marks += 1
        if self.marks % 2 == 0:
            self.now_ns += self.durations.pop(0)
        return self.now_ns


def test_rates_from_fake_clock() -> None:
    # every pass lasts one clock read: 1 ms
    clock = FakeClock(read_cost_ns=1_000_000)
    cal = calibrate.measure(clock=clock, matmul_n=8, copy_mb=1 / 1024, repeats=3, warmup=1)
    assert clock.passes == 6  # 3 matmul + 3 copy passes, warm-up untimed
    assert cal.peak_macs_per_s == pytest.approx(8**3 / 1e-3, rel=1e-12)  # 512 MACs per ms
    assert cal.copy_bytes == 1024  # 1 KiB of float32 = 256 elements
    assert cal.bandwidth_bytes_per_s == pytest.approx(2 * 1024 / 1e-3, rel=1e-12)  # read+write
    assert (cal.device, cal.dtype, cal.matmul_n) == ("cpu", "float32", 8)
    assert cal.threads == torch.get_num_threads()
    assert cal.ridge_point == pytest.approx(512 / 2048)


def test_median_of_repeats() -> None:
    # matmul passes 5, 1, 3 ms -> median 3 ms; copy passes 2, 8, 4 ms -> median 4 ms
    ms = 1_000_000
    clock = ScriptedClock([5 * ms, 1 * ms, 3 * ms, 2 * ms, 8 * ms, 4 * ms])
    cal = calibrate.measure(dtype="bfloat16", clock=clock, matmul_n=10, copy_mb=1 / 1024, repeats=3)
    assert cal.peak_macs_per_s == pytest.approx(1000 / 3e-3)
    assert cal.copy_bytes == 1024  # 512 bfloat16 elements
    assert cal.bandwidth_bytes_per_s == pytest.approx(2048 / 4e-3)
    assert clock.durations == []


def test_threads_set_and_restored() -> None:
    before = torch.get_num_threads()
    cal = calibrate.measure(clock=FakeClock(1000), matmul_n=4, copy_mb=0.001, threads=1)
    assert cal.threads == 1
    assert torch.get_num_threads() == before


def test_real_run_and_round_trip(tmp_path: Path) -> None:
    cal = calibrate.measure(matmul_n=64, copy_mb=1, repeats=3, warmup=1)
    for rate in (cal.peak_macs_per_s, cal.bandwidth_bytes_per_s):
        assert rate > 0 and math.isfinite(rate)
    assert cal.copy_bytes == 2**20 and cal.device_name
    path = tmp_path / "cal.json"
    cal.save(path)
    assert json.loads(path.read_text())["format"] == calibrate.FORMAT
    assert calibrate.load(path) == cal == Calibration.load(path)
    assert Calibration.from_dict({**cal.to_dict(), "future_field": 1}) == cal
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(FileFormatError, match="not a latprof calibration"):
        calibrate.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(FileFormatError, match="not a latprof calibration"):
        calibrate.load(bad)
    bad.write_text(json.dumps({"format": calibrate.FORMAT, "device": "cpu"}))
    with pytest.raises(FileFormatError, match="missing"):
        calibrate.load(bad)
    with pytest.raises(FileFormatError, match="cannot read"):
        calibrate.load(tmp_path / "absent.json")


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match="dtype"):
        calibrate.measure(dtype="int8")
    with pytest.raises(UsageError, match="repeats"):
        calibrate.measure(repeats=0)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            calibrate.measure(device="cuda")
    assert calibrate.default_sizes("cpu") == (1024, 64)
    assert calibrate.default_sizes("cuda:1") == (4096, 256)
