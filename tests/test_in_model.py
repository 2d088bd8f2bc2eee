"""Layer-table entries measured inside their models (--context models): exact fake-clock
times, per-pass means of repeated calls, failures, the build's saves and resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latprof.cli import app
from latprof.config import MeasureSettings
from latprof.errors import UsageError
from latprof.lut import build, in_model
from latprof.lut.model_layers import entry_calls
from latprof.lut.plan import check_options
from latprof.lut.table import LatencyTable
from latprof.measure.clocks import FakeClock
from tests.helpers import Work, assert_untouched, snapshot

SETTINGS = MeasureSettings(warmup=2, trials=4)
runner = CliRunner()


FAST = ["--warmup", "1", "--trials", "3", "--threads", "1", "--self-check", "0"]


def cnn_table_missing_one(tmp_path: Path, *options: str) -> tuple[LatencyTable, str]:
    """A zoo:cnn layer table built with `options`, loaded, with its first entry removed."""
    out = tmp_path / "t.parquet"
    built = runner.invoke(
        app, ["build-lut", "--models", "zoo:cnn", *options, "-o", str(out), *FAST]
    )
    assert built.exit_code == 0, built.output
    table = LatencyTable.load(out)
    gone = sorted(table.rows)[0]
    del table.rows[gone]
    return table, gone


class Wait(Work):
    """A leaf of `ns` fake nanoseconds whose key names them."""

    def extra_repr(self) -> str:
        return f"ns={self.ns}"


class Block(nn.Module):
    """A unit: 0.5 µs of its own, then its leaf's."""

    def __init__(self, clock: FakeClock, ns: int) -> None:
        super().__init__()
        self.clock = clock
        self.inner = Wait(clock, ns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(500)
        return self.inner(x)


class Net(nn.Module):
    """first (1 µs), two Blocks of one key (2.5 µs each; the second 1 µs slower from the
    third pass on), last (3 µs), and 0.7 µs outside every module."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.first = Wait(clock, 1000)
        self.blocks = nn.ModuleList([Block(clock, 2000), Block(clock, 2000)])
        self.last = Wait(clock, 3000)
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        x = self.first(x)
        self.clock.advance(700)
        x = self.blocks[0](x)
        if self.passes > 2:
            self.clock.advance(1000)
        x = self.blocks[1](x)
        return self.last(x)


class Breaks(Net):
    """Net whose forward raises from its pass `after` + 1 on."""

    def __init__(self, clock: FakeClock, after: int) -> None:
        super().__init__(clock)
        self.after = after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.passes >= self.after:
            raise ValueError("out of range")
        return super().forward(x)


def jobs_of(model: nn.Module, x: torch.Tensor, units: list[str]) -> dict[str, object]:
    calls = entry_calls(model, (x,), {}, units)
    return {c.job(1, "float32").key: c.job(1, "float32") for c in calls}


def test_each_entry_gets_its_calls_time_less_the_timers_cost_exactly() -> None:
    clock = FakeClock(read_cost_ns=100)  # each timed call is read 0.1 µs long: the bias
    model, x = Net(clock), torch.zeros(1, 2)
    jobs = jobs_of(model, x, ["Block"])
    assert len(jobs) == 3  # first, last and one Block key for both blocks
    rows = in_model.measure_model(model, (x,), {}, ["Block"], jobs, SETTINGS, clock)  # type: ignore[arg-type]
    samples = {r["signature"]: r["samples_us"] for r in rows.values()}
    assert samples["ns=1000"] == pytest.approx([1.0] * SETTINGS.trials)
    assert samples["ns=3000"] == pytest.approx([3.0] * SETTINGS.trials)
    # the Blocks' calls took 2.5 µs each in every pass (the slow-down is between them)
    block = next(r for r in rows.values() if r["op"] == "Block")
    assert block["samples_us"] == pytest.approx([2.5] * SETTINGS.trials)
    assert block["n"] == SETTINGS.trials and block["time_us_p10"] == pytest.approx(2.5)
    assert block["status"] == "ok"


def test_an_entry_called_twice_in_a_pass_gets_the_mean_of_its_calls() -> None:
    clock = FakeClock()

    class Slower(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.first(x)
            x = self.blocks[0](x)
            self.blocks[1].inner.ns = 4000  # the second block's leaf: 4 µs
            x = self.blocks[1](x)
            self.blocks[1].inner.ns = 2000
            return self.last(x)

    model, x = Slower(clock), torch.zeros(1, 2)
    jobs = jobs_of(model, x, ["Block"])
    rows = in_model.measure_model(model, (x,), {}, ["Block"], jobs, SETTINGS, clock)  # type: ignore[arg-type]
    block = next(r for r in rows.values() if r["op"] == "Block")
    assert block["samples_us"] == pytest.approx([(2.5 + 4.5) / 2] * SETTINGS.trials)


def test_the_model_is_left_as_found_and_its_calls_must_not_change() -> None:
    clock = FakeClock()
    model, x = Net(clock), torch.zeros(1, 2)
    model.train()
    keys, flags = snapshot(model)
    jobs = jobs_of(model, x, [])

    class Skips(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.passes += 1
            x = self.first(x)
            return self.last(x) if self.passes > 6 else self.last(self.blocks[0](x))

    rows = in_model.measure_model(model, (x,), {}, [], jobs, SETTINGS, clock)  # type: ignore[arg-type]
    assert all(r["status"] == "ok" for r in rows.values())
    assert_untouched(model, keys, flags)
    skips = Skips(clock).train()
    before = snapshot(skips)
    rows = in_model.measure_model(skips, (x,), {}, [], jobs_of(skips, x, []), SETTINGS, clock)  # type: ignore[arg-type]
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert all(
        "in its model: CallsChanged: the model made 2 entry calls in a pass, not the same 3 as "
        "in its first; use --context alone" in r["error"]
        for r in rows.values()
    )
    assert_untouched(skips, *before)


def test_measure_takes_each_key_from_the_first_model_and_saves_per_model() -> None:
    clock = FakeClock()
    a, b = Net(clock), Net(clock)
    b.last.ns = 5000
    x = torch.zeros(1, 2)
    ja, jb = jobs_of(a, x, ["Block"]), jobs_of(b, x, ["Block"])
    model_keys = {"a": list(ja), "b": list(jb)}
    todo = list({**ja, **jb}.values())
    loaded = {"a": a, "b": b}
    groups: list[list[str]] = []

    def load(spec: str) -> SimpleNamespace:
        if spec == "broken":
            raise RuntimeError("no such model")
        return SimpleNamespace(module=loaded[spec], args=(x,), kwargs={})

    rows = in_model.measure(
        todo, model_keys, ["Block"], SETTINGS, clock,
        on_group=lambda done: groups.append([r["key"] for r in done]), load=load,
    )  # fmt: skip
    # "a" measures all three of its keys; "b" only its own last layer (b's first layer and
    # blocks have a's keys)
    assert [len(g) for g in groups] == [3, 1]
    assert len(rows) == len(todo)
    assert sorted(r["signature"] for r in rows if r["op"] == "Wait") == [
        "ns=1000", "ns=3000", "ns=5000"
    ]  # fmt: skip
    assert all(r["samples_us"][0] == pytest.approx(int(r["signature"][3:]) / 1000)
               for r in rows if r["op"] == "Wait")  # fmt: skip
    broken = in_model.measure(todo[:1], {"broken": [todo[0].key]}, [], SETTINGS, clock, load=load)
    assert broken[0]["status"] == "failed" and "broken did not load or run" in broken[0]["error"]


def test_build_in_models_resumes_and_the_cli_refuses_wrong_contexts(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    args = ["build-lut", "--models", "zoo:cnn", "--context", "models", "-o", str(out)]
    first = runner.invoke(app, [*args, *FAST])
    assert first.exit_code == 0, first.output
    table = LatencyTable.load(out)
    assert table.meta["context"] == "models"
    assert all(r["status"] == "ok" and r["n"] == 3 for r in table.rows.values())
    again = runner.invoke(app, [*args, *FAST, "--resume"])
    assert again.exit_code == 0 and "0 measured" in again.output
    alone = tmp_path / "alone.parquet"
    assert runner.invoke(app, [*args[:-3], "alone", "-o", str(alone), *FAST]).exit_code == 0
    counted = {k: (r["macs"], r["params"]) for k, r in LatencyTable.load(alone).rows.items()}
    assert {k: (r["macs"], r["params"]) for k, r in table.rows.items()} == counted
    with pytest.raises(UsageError, match="--context models"):
        check_options(
            space="mbv2", archs=None, models=None, width_step=None, context="models",
            statistic="p10", resume=False, remeasure_noisy=False, shard=None,
        )  # fmt: skip
    with pytest.raises(UsageError, match="measured in their models"):
        check_options(
            space=None, archs=None, models=["zoo:cnn"], width_step=None, context="networks",
            statistic="p10", resume=False, remeasure_noisy=False, shard=None,
        )  # fmt: skip


def test_build_dispatches_to_the_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], dict]] = []

    def fake(todo, model_keys, units, settings, clock, on_group=None):  # type: ignore[no-untyped-def]
        seen.append(([j.key for j in todo], model_keys))
        return []

    monkeypatch.setattr(in_model, "measure", fake)
    clock = FakeClock()
    model, x = Net(clock), torch.zeros(1, 2)
    jobs = list(jobs_of(model, x, []).values())
    meta = {"kind": "lut", "source": "models", "context": "models", "units": [],
            "model_keys": {"m": [j.key for j in jobs]}}  # fmt: skip
    build.build(jobs, SETTINGS, tmp_path / "t.parquet", meta, clock=clock)
    assert seen == [([j.key for j in jobs], {"m": [j.key for j in jobs]})]


def test_predict_measures_a_miss_inside_the_model_untouched(tmp_path: Path) -> None:
    from latprof.loading import load_model
    from latprof.lut.predict import predict_model

    table, gone = cnn_table_missing_one(tmp_path, "--context", "models")
    got = load_model("zoo:cnn", batch_size=1)
    model = got.module.train()
    keys, flags = snapshot(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred = predict_model(table, "zoo:cnn", model, got.args, got.kwargs, on_miss="measure")
    assert [b.source for b in pred.blocks if b.key == gone] == ["measured-now"]
    assert {b.source for b in pred.blocks if b.key != gone} == {"measured"}
    assert table.rows[gone]["n"] == 3 and table.rows[gone]["status"] == "ok"
    assert_untouched(model, keys, flags)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats: eval, or a copy


class Direct(nn.Module):
    """Calls its first layer through .forward() too: hooks miss that call, timers see it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.first, self.last = Wait(clock, 1000), Wait(clock, 3000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.first.forward(self.first(x)))


def test_a_layer_called_through_forward_fails_its_model_naming_it() -> None:
    clock = FakeClock()
    model, x = Direct(clock), torch.zeros(1, 2)
    rows = in_model.measure_model(model, (x,), {}, [], jobs_of(model, x, []), SETTINGS, clock)  # type: ignore[arg-type]
    errors = {r["error"] for r in rows.values()}
    assert errors == {
        "in its model: CallsChanged: the timers saw 3 entry calls where the model's module calls "
        "were 2: a layer called through .forward() directly, or a forward that changes from pass "
        "to pass; use --context alone"
    }


def test_timers_inside_a_unit_are_subtracted_from_it() -> None:
    class Unit(nn.Module):
        def __init__(self, clock: FakeClock, act: nn.Module) -> None:
            super().__init__()
            self.clock, self.act = clock, act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.clock.advance(2000)
            return self.act(x)  # the shared leaf, timed here as well

    class Model(nn.Module):
        def __init__(self, clock: FakeClock) -> None:
            super().__init__()
            self.act = Wait(clock, 500)
            self.unit = Unit(clock, self.act)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.unit(self.act(x))

    clock = FakeClock(read_cost_ns=100)
    model, x = Model(clock), torch.zeros(1, 2)
    rows = in_model.measure_model(
        model, (x,), {}, ["Unit"], jobs_of(model, x, ["Unit"]), SETTINGS, clock
    )  # type: ignore[arg-type]
    by_op = {r["op"]: r["samples_us"] for r in rows.values()}
    # the unit's 2 µs and its leaf's 0.5 µs, without the inner timer's two 0.1 µs reads
    assert by_op["Unit"] == pytest.approx([2.5] * SETTINGS.trials)
    assert by_op["Wait"] == pytest.approx([0.5] * SETTINGS.trials)


def test_an_entry_failing_in_one_model_is_tried_in_the_next() -> None:
    clock = FakeClock()
    a, b = Net(clock), Net(clock)
    x = torch.zeros(1, 2)
    jobs = jobs_of(a, x, ["Block"])
    saved: list[list[str]] = []

    def load(spec: str) -> SimpleNamespace:
        if spec == "broken":
            raise RuntimeError("no such model")
        return SimpleNamespace(module=b, args=(x,), kwargs={})

    keys = list(jobs)
    rows = in_model.measure(
        list(jobs.values()), {"broken": keys, "b": keys}, ["Block"], SETTINGS, clock,
        on_group=lambda done: saved.append([r["status"] for r in done]), load=load,
    )  # fmt: skip
    assert saved == [["ok"] * 3]  # nothing saved for "broken": "b" measured them all
    assert {r["status"] for r in rows} == {"ok"}
    alone = in_model.measure(
        list(jobs.values())[:1], {"broken": keys[:1]}, ["Block"], SETTINGS, clock, load=load
    )
    assert alone[0]["status"] == "failed"
    assert alone[0]["error"] == "broken did not load or run: RuntimeError: no such model"


def test_estimate_measures_each_model_once_with_the_rows_it_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    a, b = Net(clock), Net(clock)
    b.last.ns = 5000
    x = torch.zeros(1, 2)
    ja, jb = jobs_of(a, x, []), jobs_of(b, x, [])
    loaded = {"a": a, "b": b}
    todo = list({**ja, **jb}.values())
    monkeypatch.setattr(
        "latprof.loading.load_model",
        lambda spec, batch_size=None: SimpleNamespace(module=loaded[spec], args=(x,), kwargs={}),
    )
    count, seconds, spent, rows = in_model.estimate(
        todo, {"a": list(ja), "b": list(jb), "c": list(ja)}, [], SETTINGS, clock
    )
    assert count == 2 and seconds >= 0 and spent > 0  # "c" adds nothing left to measure
    assert sorted(r["key"] for r in rows) == sorted(j.key for j in todo)
    assert all(r["status"] == "ok" and r["n"] == 6 for r in rows)


LOCKED = """
import threading

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x)) + x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(16, 4)
        self.lock = threading.Lock()  # cannot be deep-copied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.head(self.blocks(x))


model = Net()
input_shape = (1, 16)
"""


def test_units_in_bfloat16_and_misses_measured_in_the_model_or_a_copy(tmp_path: Path) -> None:
    from latprof.errors import LookupMissError
    from latprof.loading import load_model
    from latprof.lut.predict import predict_model

    spec = tmp_path / "locked.py"
    spec.write_text(LOCKED)
    tables = {}
    for dtype in ("float32", "bfloat16"):
        tables[dtype] = out = tmp_path / f"{dtype}.parquet"
        args = ["build-lut", "--models", str(spec), "--unit", "Block", "--context", "models"]
        done = runner.invoke(app, [*args, "--dtype", dtype, "-o", str(out), *FAST])
        assert done.exit_code == 0, done.output
        rows = LatencyTable.load(out).rows
        # the unit's key holds its parameters' dtypes: taken before the model is cast
        assert sorted(r["op"] for r in rows.values()) == ["Block", "Linear"]
        assert {(r["status"], r["n"]) for r in rows.values()} == {("ok", 3)}
    got = load_model(str(spec), batch_size=1)
    keys, flags = snapshot(got.module)
    for dtype, path in tables.items():
        table = LatencyTable.load(path)
        unit = next(k for k, r in table.rows.items() if r["op"] == "Block")
        del table.rows[unit]
        if dtype == "bfloat16":  # needs a copy in bfloat16, and a lock cannot be copied
            with pytest.raises(LookupMissError) as caught:
                predict_model(table, "locked", got.module, got.args, got.kwargs, on_miss="measure")
            assert str(caught.value) == (
                "locked cannot be copied to measure its 1 missing entries on the table's device "
                "and dtype (cpu, bfloat16): TypeError: cannot pickle '_thread.lock' object; pass "
                "the model on them, or add the entries with latprof build-lut --models ... --resume"
            )
            continue
        pred = predict_model(table, "locked", got.module, got.args, got.kwargs, on_miss="measure")
        assert [b.source for b in pred.blocks] == ["measured-now", "measured-now", "measured"]
        assert table.rows[unit]["n"] == 3
    assert_untouched(got.module, keys, flags)
    assert next(got.module.parameters()).dtype == torch.float32


def test_predict_measures_in_a_bfloat16_copy_and_the_dry_run_names_failures(
    tmp_path: Path,
) -> None:
    from latprof.loading import load_model
    from latprof.lut.predict import predict_model

    table, gone = cnn_table_missing_one(tmp_path, "--context", "models", "--dtype", "bfloat16")
    got = load_model("zoo:cnn", batch_size=1)
    pred = predict_model(table, "zoo:cnn", got.module, got.args, got.kwargs, on_miss="measure")
    assert [b.source for b in pred.blocks if b.key == gone] == ["measured-now"]
    assert next(got.module.parameters()).dtype == torch.float32  # a copy was cast, not it
    assert table.rows[gone]["key"] == gone and table.rows[gone]["dtype"] == "bfloat16"
    spec = tmp_path / "plain.py"
    spec.write_text(
        "import torch\nfrom torch import nn\n\n\nclass Scale(nn.Module):\n"
        "    def forward(self, x, k):\n        return x * k\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 8)\n        self.s = Scale()\n\n"
        "    def forward(self, x):\n        return self.s(self.fc(x), 3)\n\n\n"
        "model = Net()\ninput_shape = (1, 8)\n"
    )
    dry = runner.invoke(
        app, ["build-lut", "--models", str(spec), "--context", "models", "--dry-run", *FAST,
              "-o", str(tmp_path / "d.parquet")],
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "1 of 2 entries failed in these measurements (e.g. Scale|" in dry.output


def test_keys_not_called_and_models_failing_mid_pass_fail_with_the_reason() -> None:
    clock = FakeClock()
    model, x = Net(clock), torch.zeros(1, 2)
    other = Net(clock)
    other.last.ns = 7000
    stranger = next(j for j in jobs_of(other, x, []).values() if "7000" in j.key)
    jobs = {**jobs_of(model, x, []), stranger.key: stranger}
    rows = in_model.measure_model(model, (x,), {}, [], jobs, SETTINGS, clock)  # type: ignore[arg-type]
    assert rows[stranger.key]["status"] == "failed"
    assert rows[stranger.key]["error"] == "not called by its model in this build"
    assert rows[stranger.key]["key"] == stranger.key and rows[stranger.key]["batch"] == 1
    assert {r["status"] for k, r in rows.items() if k != stranger.key} == {"ok"}

    breaks = Breaks(clock, after=5)
    rows = in_model.measure_model(breaks, (x,), {}, [], jobs_of(breaks, x, []), SETTINGS, clock)  # type: ignore[arg-type]
    assert {r["error"] for r in rows.values()} == {"in its model: ValueError: out of range"}
    # an entry no model of the table calls
    saved: list[list[dict]] = []
    loaded = SimpleNamespace(module=model, args=(x,), kwargs={})
    got = in_model.measure(
        [stranger], {"m": list(jobs_of(model, x, []))}, [], SETTINGS, clock,
        on_group=saved.append, load=lambda spec: loaded,
    )  # fmt: skip
    assert [r["error"] for r in got] == ["called by none of the table's models"]
    assert saved == [got] and got[0]["key"] == stranger.key and got[0]["batch"] == 1
    own = list(jobs_of(model, x, []).values())
    got = in_model.measure(
        [*own, stranger], {"m": [j.key for j in own]}, [], SETTINGS, clock, load=lambda s: loaded
    )
    assert [r["status"] for r in got] == ["ok"] * len(own) + ["failed"]


def test_no_trials_give_no_ok_row() -> None:
    clock = FakeClock()
    model, x = Net(clock), torch.zeros(1, 2)
    none = MeasureSettings(warmup=0, trials=0)
    rows = in_model.measure_model(model, (x,), {}, [], jobs_of(model, x, []), none, clock)  # type: ignore[arg-type]
    assert {r["error"] for r in rows.values()} == {"no call of it was timed in its model"}
    assert all(r["batch"] == 1 and r["key"] in rows for r in rows.values())


class Keyed(nn.Module):
    """Takes its second tensor as a keyword-only argument."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, *, shift: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(x) + self.fc(shift))


def test_keyword_inputs_are_passed_and_cast_with_the_model() -> None:
    from latprof.measure.clocks import CpuClock

    model, x, shift = Keyed(), torch.randn(1, 4), torch.randn(1, 4)
    settings = MeasureSettings(warmup=1, trials=2, dtype="bfloat16")
    calls = entry_calls(model, (x,), {"shift": shift}, [])
    jobs = {c.key(1, "bfloat16"): c.job(1, "bfloat16") for c in calls}
    rows = in_model.measure_model(model, (x,), {"shift": shift}, [], jobs, settings, CpuClock())
    assert {(r["status"], r["n"]) for r in rows.values()} == {("ok", 2)}, rows
    # the build's own model is moved in place (predict passes a copy)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_the_default_loader_builds_the_models_at_the_settings_batch() -> None:
    from latprof.lut.plan import plan_build
    from latprof.measure.clocks import CpuClock

    plan = plan_build(models=["zoo:cnn"], batch=2, context="models", warmup=1, trials=2)
    rows = in_model.measure(plan.jobs, plan.meta["model_keys"], [], plan.settings, CpuClock())
    assert {(r["status"], r["batch"]) for r in rows} == {("ok", 2)}
    assert all(r["input_shape"].startswith("2x") for r in rows)


def test_estimate_scales_the_difference_of_one_and_six_trials_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    runs: list[tuple[str, int, int]] = []

    def fake_measure(todo, model_keys, units, settings, clock):  # type: ignore[no-untyped-def]
        (spec,) = model_keys
        cold = 50.0 if not runs else 0.0  # the first measurement runs cold
        runs.append((spec, settings.warmup, settings.trials))
        now[0] += cold + 0.6 + 0.5 * settings.trials + 7.0 * settings.warmup
        return [{"key": j.key, "status": "ok"} for j in todo]

    monkeypatch.setattr(in_model, "measure", fake_measure)
    monkeypatch.setattr(in_model.time, "perf_counter", lambda: now[0])
    jobs = {k: SimpleNamespace(key=k) for k in ("a", "b", "c")}
    keys = {"done": ["x"], "m1": ["a", "b"], "m2": ["b", "c"]}  # "done" holds nothing to do
    count, seconds, spent, rows = in_model.estimate(
        list(jobs.values()),
        keys,
        [],
        MeasureSettings(warmup=10, trials=20),
        FakeClock(),  # type: ignore[arg-type]
    )
    assert runs == [
        ("m1", 0, 1),
        ("m1", 0, 1),
        ("m1", 0, 6),
        ("m2", 0, 1),
        ("m2", 0, 1),
        ("m2", 0, 6),
    ]
    # per model: 0.6 s fixed + 0.5 s a pass, scaled to 10 + 20 passes
    assert count == 2 and seconds == pytest.approx(2 * (0.6 + 0.5 * 30))
    assert spent == pytest.approx(50.0 + 2 * (3 * 0.6 + 0.5 * (1 + 1 + 6)))
    assert [r["key"] for r in rows] == ["a", "b", "c"]


def test_a_miss_that_fails_in_its_model_raises_and_the_table_scale_applies() -> None:
    from latprof.errors import LookupMissError
    from latprof.lut.predict import predict_model

    meta = {
        "kind": "lut", "source": "models", "context": "models", "units": [], "batch": 1,
        "dtype": "float32", "device": "cpu", "warmup": 1, "trials": 3, "statistic": "p10",
    }  # fmt: skip
    clock = FakeClock()

    model, x = Breaks(clock, after=4), torch.zeros(1, 2)
    with pytest.raises(LookupMissError, match=r"failed to run in its model: in its model: ValueE"):
        predict_model(LatencyTable(dict(meta)), "breaks", model, (x,), {}, on_miss="measure")
    table = LatencyTable({**meta, "recalibration": {"factor": 1.25}})
    pred = predict_model(table, "net", Net(clock), (x,), {}, on_miss="measure")
    assert pred.scale == 1.25 and {b.source for b in pred.blocks} == {"measured-now"}


def test_misses_of_a_table_measured_alone_are_keyed_as_the_table(tmp_path: Path) -> None:
    from latprof.loading import load_model
    from latprof.lut.predict import predict_model

    table, gone = cnn_table_missing_one(tmp_path, "--batch-size", "2")
    got = load_model("zoo:cnn", batch_size=2)
    pred = predict_model(table, "zoo:cnn", got.module, got.args, got.kwargs, on_miss="measure")
    assert [b.source for b in pred.blocks if b.key == gone] == ["measured-now"]
    assert table.rows[gone]["key"] == gone and table.rows[gone]["batch"] == 2


def test_already_on_checks_every_tensor_device_and_the_floating_ones_dtype() -> None:
    from latprof.measure.device import already_on

    model = nn.BatchNorm1d(4)  # an integer buffer (num_batches_tracked) beside float ones
    assert already_on(model, "cpu", torch.float32)
    assert not already_on(model, "cpu", torch.bfloat16)
    assert not already_on(model.to("meta"), "cpu", torch.float32)
