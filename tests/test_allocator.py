"""The host allocator as an explicit condition: system (untouched) by default, steady on
request, the other condition measured in a child process, and a notice when they differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latprof import conditions
from latprof.cli import app
from latprof.config import ProfileConfig
from latprof.errors import ModelRunError, UsageError
from latprof.measure import allocator
from latprof.measure.hooks import FaultProbe

REPO = Path(__file__).parent.parent
GLIBC = allocator.glibc_version() is not None


def run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


PROFILE = (
    "import torch; from latprof.profiler import profile; from latprof.config import "
    "ProfileConfig; from latprof.measure import allocator; "
    "p = profile(torch.nn.ReLU(), (torch.zeros(2),), config=ProfileConfig(warmup=1, "
    "trials=2, allocator='{a}')); print(p.environment.allocator); print(allocator.setting())"
)


def test_profile_leaves_the_allocator_untouched_by_default() -> None:
    recorded, after = run(PROFILE.format(a="system")).splitlines()
    assert recorded == after == "default"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_steady_is_applied_only_on_request_and_recorded() -> None:
    recorded, after = run(PROFILE.format(a="steady")).splitlines()
    assert recorded == after == "glibc mmap_threshold=33554432 trim_threshold=1073741824 mmap_max=0"


def test_opt_out_with_the_environment_variable() -> None:
    code = "from latprof.measure import allocator; print(allocator.steady())"
    assert run(code, LATPROF_ALLOCATOR="default") == "default (LATPROF_ALLOCATOR=default)"


def test_unknown_condition_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown; use system or steady"):
        ProfileConfig(allocator="jemalloc")
    result = CliRunner().invoke(app, ["profile", "zoo:cnn", "--allocator", "jemalloc"])
    assert result.exit_code == 2
    assert "--allocator 'jemalloc' is unknown" in result.stderr


def test_steady_without_glibc_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "glibc_version", lambda: None)
    with pytest.raises(UsageError, match="needs glibc"):
        allocator.check_condition("steady")
    assert allocator.check_condition("system") == "system"
    result = CliRunner().invoke(app, ["profile", "zoo:cnn", "--allocator", "steady"])
    assert result.exit_code == 2
    assert "not glibc (macOS, musl): use --allocator system" in result.stderr


def test_child_environment_sets_or_clears_glibc_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in allocator.GLIBC_ENV:
        monkeypatch.setenv(name, "1")
    assert not set(allocator.GLIBC_ENV) & set(allocator.child_env("system"))
    steady = allocator.child_env("steady")
    assert steady["MALLOC_MMAP_THRESHOLD_"] == str(allocator.MMAP_THRESHOLD)
    assert steady["MALLOC_MMAP_MAX_"] == "0"  # tensors above any threshold stay on the heap
    assert steady["MALLOC_TRIM_THRESHOLD_"] == str(allocator.TRIM_THRESHOLD)


def run_of(condition: str, samples: list[float], faults: float) -> conditions.ConditionRun:
    return conditions.ConditionRun(condition, "x", samples, faults)


def test_notice_says_how_much_faster_steady_is_and_how_to_deploy_it() -> None:
    system = run_of("system", [100.0, 101.0, 99.0, 100.0], 250.0)
    steady = run_of("steady", [80.0, 81.0, 79.0, 80.0], 2.0)
    check = conditions.check_dict(system, steady, "system")
    assert check["ratio_steady_to_system"] == pytest.approx(0.8)
    notice = conditions.notice_of(check)
    assert notice is not None and notice.kind == "allocator"
    assert "runs 20 % faster" in notice.message
    assert "steady 2, system 250" in notice.message
    assert allocator.DEPLOY_HINT in notice.hint and "MALLOC_MMAP_MAX_=0" in notice.hint
    profiled_steady = conditions.notice_of(conditions.check_dict(system, steady, "steady"))
    assert profiled_steady is not None
    assert "this profile used a steady allocator" in profiled_steady.message
    assert "the model is 25 % slower" in profiled_steady.message  # 100 / 80 - 1


def test_notice_when_steady_is_slower_and_none_within_noise() -> None:
    system = run_of("system", [100.0] * 4, 400.0)
    slower_check = conditions.check_dict(system, run_of("steady", [120.0] * 4, 0), "system")
    slower = conditions.notice_of(slower_check)
    assert slower is not None and "runs 20 % slower" in slower.message
    same = conditions.check_dict(system, run_of("steady", [98.0, 99.0, 101.0, 100.0], 0), "system")
    assert conditions.notice_of(same) is None  # 1 % apart: below the 3 % floor
    wide = run_of("system", [80.0, 100.0, 120.0, 100.0], 400.0)  # IQR 15 % of the median
    spread = conditions.check_dict(wide, run_of("steady", [90.0] * 4, 0), "system")
    assert conditions.notice_of(spread) is None  # 10 % apart, within the spread


def test_no_allocator_notice_without_a_page_fault_difference_or_within_process_noise() -> None:
    """Seen on this VM: fresh processes 1,695 and 2,344 µs apart with 0-3 faults each; a
    steady process at 2,298 µs is not the allocator's doing."""
    system = run_of("system", [1695.0] * 4, 3.0)
    steady = run_of("steady", [2297.5] * 4, 0.0)
    assert conditions.notice_of(conditions.check_dict(system, steady, "system")) is None
    # with faults apart the gap is the allocator's, unless two fresh system processes of the
    # same history ran as far apart
    faulting = run_of("system", [1200.0] * 4, 700.0)
    fast_steady = run_of("steady", [1000.0] * 4, 0.0)
    alone = conditions.check_dict(faulting, fast_steady, "system")
    assert conditions.notice_of(alone) is not None  # 17 % faster
    twin = run_of("system", [1450.0] * 4, 710.0)  # same history, 21 % apart
    noisy = conditions.check_dict(faulting, fast_steady, "system", [twin])
    assert conditions.notice_of(noisy) is None
    other_history = run_of("system", [1450.0] * 4, 2093.0)  # a history, not noise
    told = conditions.check_dict(faulting, fast_steady, "system", [other_history])
    assert conditions.notice_of(told) is not None


def test_history_notice_when_this_process_faults_unlike_a_fresh_one() -> None:
    system = run_of("system", [1000.0, 1010.0, 990.0, 1000.0], 800.0)
    check = conditions.check_dict(system, run_of("steady", [850.0] * 4, 0.0), "system")
    faster = conditions.history_notice(check, [880.0, 881.0, 879.0, 880.0], 0.0)
    assert faster is not None and faster.kind == "allocator-history"
    assert "ran the model 12 % faster than a fresh process" in faster.message
    assert "880.0 µs vs 1,000.0 µs median; page faults per pass 0 here, 800 there" in (
        faster.message
    )
    assert "--allocator steady" in faster.hint and allocator.DEPLOY_HINT in faster.hint
    slower = conditions.history_notice(check, [1200.0] * 4, 1300.0)
    assert slower is not None and "20 % slower" in slower.message
    # the same history (faults within 20 % of the larger count, either way round), a
    # difference within the noise, a steady profile (no history to depend on), no fault
    # count or no samples: no notice
    assert conditions.history_notice(check, [1200.0] * 4, 960.0) is None  # 800 vs 960
    assert conditions.history_notice(check, [1200.0] * 4, 660.0) is None  # 660 vs 800
    assert conditions.history_notice(check, [1200.0] * 4, 630.0) is not None  # 21 % apart
    assert conditions.history_notice(check, [1020.0] * 4, 0.0) is None
    steady_profile = conditions.check_dict(system, run_of("steady", [850.0] * 4, 0.0), "steady")
    assert conditions.history_notice(steady_profile, [880.0] * 4, 0.0) is None
    assert conditions.history_notice(check, [880.0] * 4, None) is None
    assert conditions.history_notice(check, [], 0.0) is None
    few_faults = run_of("system", [1000.0] * 4, 30.0)
    few = conditions.check_dict(few_faults, run_of("steady", [900.0] * 4, 0.0), "system")
    assert conditions.history_notice(few, [880.0] * 4, 0.0) is None  # 30 faults apart: below 50


def test_history_notice_when_two_fresh_processes_drew_different_histories() -> None:
    steady = run_of("steady", [850.0] * 4, 0.0)
    first = run_of("system", [1000.0, 1010.0, 990.0, 1000.0], 0.0)
    second = run_of("system", [1240.0, 1250.0, 1260.0, 1250.0], 2093.0)
    check = conditions.check_dict(first, steady, "system", [second])
    assert [r["faults_per_pass"] for r in check["system_more"]] == [2093.0]
    # this process agrees with the first fresh one; the two fresh ones are 25 % apart
    notice = conditions.history_notice(check, [1005.0] * 4, 0.0)
    assert notice is not None and notice.kind == "allocator-history"
    assert "two fresh processes under the system allocator ran the model 25 % apart" in (
        notice.message
    )
    assert "1,000.0 µs vs 1,250.0 µs median; page faults per pass 0 and 2,093" in notice.message
    assert "--allocator steady" in notice.hint
    # the same whichever process came first, and also for a profile under steady
    swapped = conditions.check_dict(second, steady, "steady", [first])
    again = conditions.history_notice(swapped, [850.0] * 4, 0.0)
    assert again is not None and notice.message == again.message
    assert "--allocator steady" not in again.hint  # already profiled that way
    assert again.hint.startswith("this profile's steady figure holds in every process")
    # the pair furthest apart is named: this process against the slower fresh one
    own = conditions.history_notice(check, [800.0] * 4, 0.0)
    assert own is not None
    assert "this process ran the model 36 % faster than a fresh process" in own.message
    assert "800.0 µs vs 1,250.0 µs median; page faults per pass 0 here, 2,093 there" in (
        own.message
    )
    # apart in latency but not in page faults, or in faults but within the noise: quiet
    same_history = run_of("system", [1250.0] * 4, 30.0)
    quiet = conditions.check_dict(first, steady, "system", [same_history])
    assert conditions.history_notice(quiet, [1005.0] * 4, 0.0) is None
    near = run_of("system", [1020.0] * 4, 2093.0)
    assert (
        conditions.history_notice(
            conditions.check_dict(first, steady, "system", [near]), [1005.0] * 4, 0.0
        )
        is None
    )


def test_history_notice_reads_a_check_saved_before_the_second_process() -> None:
    system = run_of("system", [1000.0] * 4, 800.0)
    check = conditions.check_dict(system, run_of("steady", [850.0] * 4, 0.0), "system")
    del check["system_more"]  # profiles saved with one fresh system process
    assert conditions.history_notice(check, [1005.0] * 4, 800.0) is None
    notice = conditions.history_notice(check, [880.0] * 4, 0.0)
    assert notice is not None and "than a fresh process" in notice.message


def test_history_notice_stays_quiet_within_either_sides_noise() -> None:
    steady = run_of("steady", [850.0] * 4, 0.0)
    noisy_child = run_of("system", [700.0, 1000.0, 1300.0, 1000.0], 800.0)  # IQR 15 %
    check = conditions.check_dict(noisy_child, steady, "system")
    assert conditions.history_notice(check, [880.0] * 4, 0.0) is None  # 12 % apart
    quiet_child = conditions.check_dict(run_of("system", [1000.0] * 4, 800.0), steady, "system")
    noisy_here = [600.0, 880.0, 1160.0, 880.0]  # IQR 16 % of its median
    assert conditions.history_notice(quiet_child, noisy_here, 0.0) is None
    assert conditions.history_notice(quiet_child, [880.0] * 4, 0.0) is not None


def test_fault_probe_counts_faults_inside_each_leaf() -> None:
    ticks = iter(range(0, 1000, 1))
    counts = {"n": 0}

    def counter() -> int:
        return counts["n"]

    class Costly(nn.Module):
        def __init__(self, faults: int) -> None:
            super().__init__()
            self.faults = faults

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            counts["n"] += self.faults
            return x

    leaves = [Costly(3), Costly(5)]
    probe = FaultProbe(leaves, counter)
    with probe.attached():
        for leaf in [leaves[0], leaves[1], leaves[0]]:
            leaf(torch.zeros(1))
    assert probe.faults == [6, 5]
    assert next(ticks) == 0


@pytest.mark.real_children
def test_profile_records_both_conditions_and_layer_faults(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = ["profile", "zoo:cnn", "--threads", "1", "--warmup", "1", "--trials", "4"]
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["config"]["allocator"] == "system"
    check = data["allocator_check"]
    assert check["profiled"] == "system"
    assert (check["system"]["condition"], check["steady"]["condition"]) == ("system", "steady")
    assert check["system"]["setting"] == "default"
    assert check["steady"]["setting"] == "glibc env " + " ".join(
        f"{k}={v}" for k, v in allocator.GLIBC_ENV.items()
    )
    assert len(check["system"]["samples_us"]) == len(check["steady"]["samples_us"]) >= 12
    # a second fresh system process, as many passes, its own page-fault count
    (more,) = check["system_more"]
    assert more["condition"] == "system" and more["setting"] == "default"
    assert len(more["samples_us"]) == len(check["system"]["samples_us"])
    assert more["faults_per_pass"] >= 0 and more["median_us"] > 0
    assert all(isinstance(r["page_faults"], int) for r in data["layers"])
    csv = CliRunner().invoke(app, ["report", str(out), "--format", "csv"]).stdout
    assert csv.splitlines()[0].endswith(",allocator") and csv.splitlines()[1].endswith(",system")
    md = CliRunner().invoke(app, ["report", str(out), "--format", "markdown"]).stdout
    assert md.splitlines()[0].startswith("**zoo:cnn**") and "allocator system" in md


def test_no_allocator_check_and_cuda_default_skip_the_child() -> None:
    args = ["profile", "zoo:cnn", "--threads", "1", "--warmup", "1", "--trials", "2"]
    result = CliRunner().invoke(app, [*args, "--no-allocator-check", "--format", "json"])
    assert json.loads(result.stdout)["allocator_check"] is None


MALLINFO2 = GLIBC and tuple(map(int, str(allocator.glibc_version()).split(".")[:2])) >= (2, 33)


@pytest.mark.skipif(not MALLINFO2, reason="glibc >= 2.33 (mallinfo2)")
def test_steady_keeps_tensors_above_32_mib_off_mmap() -> None:
    """A 40 MiB tensor, above glibc's largest mmap threshold: with the thresholds alone it is
    one more mmapped block (fresh pages, unmapped when freed); with steady's mmap off it
    comes from the heap (mallinfo2's count of mmapped blocks does not move)."""
    code = (
        "import ctypes, torch; from latprof.measure import allocator; "
        "fields = ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', "
        "'uordblks', 'fordblks', 'keepcost'); "
        "MI = type('MI', (ctypes.Structure,), {{'_fields_': [(n, ctypes.c_size_t) for n in "
        "fields]}}); libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = MI; {setup}; "
        "before = libc.mallinfo2().hblks; t = torch.ones(10 * 2**20); "
        "print(libc.mallinfo2().hblks - before)"
    )
    thresholds_only = "libc.mallopt(-3, 32 * 2**20); libc.mallopt(-1, 2**30)"
    assert int(run(code.format(setup=thresholds_only))) == 1
    assert int(run(code.format(setup="allocator.steady()"))) == 0


def test_a_partial_environment_is_not_reported_as_steady(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in allocator.GLIBC_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(allocator._state, "setting", "")
    assert allocator.setting().startswith("glibc env ") and allocator.condition() == "steady"
    monkeypatch.delenv("MALLOC_MMAP_MAX_")  # the old two-variable hint: mmap still on
    assert allocator.setting().startswith("partial env ") and allocator.condition() == "system"
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert allocator.setting().startswith("partial env ")


def test_tables_record_their_allocator_and_older_ones_do_not_mix_with_new() -> None:
    from latprof.lut.plan import plan_build
    from latprof.lut.table import OLDER_DEFAULTS, LatencyTable

    plan = plan_build(space="mbv2", width_step=8, warmup=1, trials=2)
    assert plan.meta["allocator"] == allocator.planned()
    older = LatencyTable({"kind": "lut"})  # built before tables recorded it: mmap still on
    diffs = older.differences({"kind": "lut", "allocator": allocator.STEADY_SETTING})
    assert [d.split(":")[0] for d in diffs] == ["allocator"]
    assert older.differences({"kind": "lut", "allocator": OLDER_DEFAULTS["allocator"]}) == []


def test_summary_line_shows_every_fresh_system_process() -> None:
    from latprof.render.terminal import allocator_line

    first = run_of("system", [1000.0] * 4, 0.0)
    second = run_of("system", [1250.0] * 4, 2093.0)
    steady = run_of("steady", [850.0] * 4, 0.0)
    prof = SimpleNamespace(allocator_check=conditions.check_dict(first, steady, "system", [second]))
    line = allocator_line(prof)  # type: ignore[arg-type]
    assert "system 1,000.0 µs (0 faults/pass), another system process 1,250.0 µs (2,093 " in line
    assert "vs steady 850.0 µs (0 faults/pass), steady/system 0.850" in line
    del prof.allocator_check["system_more"]  # a profile saved before the second process
    assert "another" not in allocator_line(prof)  # type: ignore[arg-type]
    assert allocator_line(SimpleNamespace(allocator_check=None)) == ""  # type: ignore[arg-type]


@pytest.mark.real_children
def test_a_failing_check_reaps_every_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that cannot load the model: one clear error, and no child left running."""
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording(*args: object, **kwargs: object) -> subprocess.Popen:
        child = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(child)
        return child

    monkeypatch.setattr(conditions.subprocess, "Popen", recording)
    request = {"model": "missing.py", "device": "cpu", "dtype": "float32", "threads": 1}
    with pytest.raises(ModelRunError, match=r"child process failed: .*missing\.py does not exist"):
        conditions.compare(request, passes=12, warmup=1, system_processes=2)
    assert len(started) == 3 and all(child.returncode is not None for child in started)


def test_a_rejected_profile_leaves_the_allocator_untouched() -> None:
    code = (
        "import torch; from latprof.profiler import profile; from latprof.config import "
        "ProfileConfig; from latprof.measure import allocator\n"
        "try:\n    profile(torch.jit.script(torch.nn.ReLU()), (torch.zeros(2),), "
        "config=ProfileConfig(warmup=1, trials=2, allocator='steady'))\n"
        "except Exception as exc:\n    print(type(exc).__name__)\n"
        "print(allocator.setting())"
    )
    assert run(code).splitlines() == ["UsageError", "default"]


def test_profile_leaves_environment_and_warnings_filters_as_found() -> None:
    """torch's lazy imports on the first dispatch mode set TORCHINDUCTOR_CACHE_DIR and add a
    warnings filter; a fresh process shows whether profile() undoes them."""
    code = (
        "import os, warnings, torch; from latprof import profile, ProfileConfig\n"
        "env, filters = dict(os.environ), list(warnings.filters)\n"
        "profile(torch.nn.Linear(4, 4), torch.ones(1, 4), "
        "config=ProfileConfig(warmup=1, trials=2, threads=1))\n"
        "print(sorted(set(os.environ) - set(env)), len(warnings.filters) - len(filters))"
    )
    assert run(code) == "[] 0"
