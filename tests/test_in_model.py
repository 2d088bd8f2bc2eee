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
            return self.last(x) if self.passes > 3 else self.last(self.blocks[0](x))

    rows = in_model.measure_model(model, (x,), {}, [], jobs, SETTINGS, clock)  # type: ignore[arg-type]
    assert all(r["status"] == "ok" for r in rows.values())
    assert_untouched(model, keys, flags)
    skips = Skips(clock)
    rows = in_model.measure_model(skips, (x,), {}, [], jobs_of(skips, x, []), SETTINGS, clock)  # type: ignore[arg-type]
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert all("entry calls in a pass" in r["error"] for r in rows.values())
    assert_untouched(skips, *snapshot(skips))


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
    fast = ["--warmup", "1", "--trials", "3", "--threads", "1", "--self-check", "0"]
    first = runner.invoke(app, [*args, *fast])
    assert first.exit_code == 0, first.output
    table = LatencyTable.load(out)
    assert table.meta["context"] == "models"
    assert all(r["status"] == "ok" and r["n"] == 3 for r in table.rows.values())
    again = runner.invoke(app, [*args, *fast, "--resume"])
    assert again.exit_code == 0 and "0 measured" in again.output
    alone = tmp_path / "alone.parquet"
    assert runner.invoke(app, [*args[:-3], "alone", "-o", str(alone), *fast]).exit_code == 0
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


def test_predict_measures_a_miss_inside_a_copy_of_the_model(tmp_path: Path) -> None:
    from latprof.loading import load_model
    from latprof.lut.predict import predict_model

    out = tmp_path / "t.parquet"
    args = ["build-lut", "--models", "zoo:cnn", "--context", "models", "-o", str(out)]
    fast = ["--warmup", "1", "--trials", "3", "--threads", "1", "--self-check", "0"]
    assert runner.invoke(app, [*args, *fast]).exit_code == 0
    table = LatencyTable.load(out)
    gone = sorted(table.rows)[0]
    del table.rows[gone]
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
