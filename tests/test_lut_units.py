"""build-lut --models ... --unit CLASS: modules of a class timed as one entry each, their
children not descended into; predict walks models with the table's units."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latprof.cli import app, expand_multi
from latprof.config import MeasureSettings
from latprof.errors import UsageError
from latprof.lut import build
from latprof.lut.model_layers import entry_calls
from latprof.lut.predict import predict_model
from latprof.lut.table import LatencyTable
from latprof.lut.validate import measure_end_to_end
from latprof.measure.clocks import FakeClock

FAST = ["--warmup", "1", "--trials", "3", "--threads", "1", "--self-check", "0"]
runner = CliRunner()

BLOCKS = '''
import torch
from torch import nn


class Block(nn.Module):
    """conv-BN, then a functional ReLU and a residual add (neither is a module)."""

    def __init__(self, c: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, k, padding=k // 2)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1, self.b2, self.b3 = Block(8, 3), Block(8, 3), Block(8, 5)
        self.flat = nn.Flatten()

    def forward(self, x):
        return self.flat(self.b3(self.b2(self.b1(self.stem(x)))))


model = Net()
input_shape = (1, 3, 8, 8)
'''

ATTN = '''
from torch import nn


class Attn(nn.Module):
    """Two self-attentions whose repr() is the same (num_heads is not in it), residual
    adds, a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.a2 = nn.MultiheadAttention(8, 2, batch_first=True)
        self.a4 = nn.MultiheadAttention(8, 4, batch_first=True)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        x = x + self.a2(x, x, x, need_weights=False)[0]
        x = x + self.a4(x, x, x, need_weights=False)[0]
        return self.norm(x)


model = Attn()
input_shape = (1, 5, 8)
'''


def invoke(*args: str):
    return runner.invoke(app, expand_multi(list(args)))


@pytest.fixture()
def models(tmp_path: Path) -> tuple[str, str]:
    blocks, attn = tmp_path / "blocks.py", tmp_path / "attn.py"
    blocks.write_text(BLOCKS)
    attn.write_text(ATTN)
    return str(blocks), str(attn)


def meta_of(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"latprof"])


def test_entry_counts_with_and_without_units(tmp_path: Path, models: tuple[str, str]) -> None:
    blocks, attn = models
    plain, units = tmp_path / "plain.parquet", tmp_path / "units.parquet"
    result = invoke("build-lut", "--models", blocks, attn, *FAST, "-o", str(plain))
    assert result.exit_code == 0, result.output
    # blocks: stem conv, conv k3 (b1 = b2), BN (b1 = b2 = b3), conv k5, flatten; attn: only
    # the LayerNorm (MultiheadAttention runs its projections functionally)
    assert len(pq.read_table(plain)) == 5 + 1
    keys = meta_of(plain)["model_keys"]
    assert (len(keys[blocks]), len(keys[attn])) == (1 + 3 * 2 + 1, 1)
    result = invoke(
        "build-lut", "--models", blocks, attn, "--unit", "Block", "--unit", "MultiheadAttention",
        *FAST, "-o", str(units),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(units).to_pandas()
    # blocks: stem conv, Block k3 (b1 = b2), Block k5, flatten; attn: a2, a4, LayerNorm
    assert len(table) == 4 + 3 and (table["status"] == "ok").all()
    assert sorted(table["op"].value_counts().items()) == [
        ("Block", 2), ("Conv2d", 1), ("Flatten", 1), ("LayerNorm", 1), ("MultiheadAttention", 2)
    ]  # fmt: skip
    keys = meta_of(units)["model_keys"]
    assert (len(keys[blocks]), len(keys[attn])) == (1 + 3 + 1, 3)
    assert keys[blocks][1] == keys[blocks][2] != keys[blocks][3]  # b1 = b2, b3 has k5
    # the metadata round trip: stored sorted, read back by LatencyTable.load
    assert LatencyTable.load(units).meta["units"] == ["Block", "MultiheadAttention"]
    assert LatencyTable.load(plain).meta["units"] == []


def test_unit_key_tells_configurations_apart_and_replays_the_call(models: tuple[str, str]) -> None:
    from latprof.loading import load_model

    loaded = load_model(models[1])
    a2, a4 = loaded.module.a2, loaded.module.a4
    assert repr(a2) == repr(a4)  # what a repr-only key would confuse
    calls = entry_calls(loaded.module, loaded.args, loaded.kwargs, ["MultiheadAttention"])
    assert [c.module for c in calls] == [a2, a4, loaded.module.norm]
    jobs = [c.job(1, "float32") for c in calls]
    assert jobs[0].key != jobs[1].key
    assert "(T0, T0, T0, need_weights=False)|1x5x8,1x5x8,1x5x8|b1|float32" in jobs[0].key
    module, args, kwargs = jobs[0].make()
    assert module is not a2 and kwargs == {"need_weights": False}
    assert args[0] is args[1] is args[2] and args[0].shape == (1, 5, 8)  # self-attention
    assert module(*args, **kwargs)[1] is None  # need_weights=False was replayed
    # the same module called another way is another entry
    x, y = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    other = entry_calls(a2, (x, y, y), {"need_weights": True}, ["MultiheadAttention"])
    assert "(T0, T1, T1, need_weights=True)" in other[0].job(1, "float32").key


CLOCK = FakeClock()
LEAF_NS, FUNCTIONAL_NS = 10_000, 40_000


class Work(nn.Module):
    """A leaf that 'takes' LEAF_NS of fake time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CLOCK.advance(LEAF_NS)
        return x + 0


class Residual(nn.Module):
    """Two leaves, then FUNCTIONAL_NS of work that no leaf holds (like a residual add)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Work(), Work()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.b(self.a(x))
        CLOCK.advance(FUNCTIONAL_NS)
        return out + x


def outside_share(units: list[str], tmp_path: Path) -> float:
    """(measured - predicted) / measured for a Work + 3 Residual net, on the fake clock."""
    net = nn.Sequential(Work(), Residual(), Residual(), Residual())
    args = (torch.zeros(1, 4),)
    jobs = {}
    for call in entry_calls(net, args, {}, units):
        job = call.job(1, "float32")
        jobs.setdefault(job.key, job)
    settings = MeasureSettings(warmup=1, trials=3)
    meta = {"kind": "lut", "source": "models", "batch": 1, "dtype": "float32", "units": units}
    out = tmp_path / f"{'-'.join(units) or 'leaves'}.parquet"
    build.build(list(jobs.values()), settings, out, meta, clock=CLOCK)
    pred = predict_model(LatencyTable.load(out), "net", net, args, {})
    stats, _ = measure_end_to_end(net, args, {}, settings, CLOCK)
    return (stats.median - pred.total_us) / stats.median


def test_outside_share_drops_with_units(tmp_path: Path) -> None:
    whole = LEAF_NS + 3 * (2 * LEAF_NS + FUNCTIONAL_NS)  # 190 µs
    assert outside_share([], tmp_path) == pytest.approx(3 * FUNCTIONAL_NS / whole)  # 63 %
    assert outside_share(["Residual"], tmp_path) == pytest.approx(0.0)


def test_resume_with_other_units_is_refused(tmp_path: Path, models: tuple[str, str]) -> None:
    blocks = models[0]
    out = tmp_path / "t.parquet"
    built = invoke("build-lut", "--models", blocks, "--unit", "Block", *FAST, "-o", str(out))
    assert built.exit_code == 0, built.output
    same = invoke(
        "build-lut", "--models", blocks, "--unit", "Block", *FAST, "-o", str(out), "--resume"
    )
    assert same.exit_code == 0 and "(0 measured, 4 reused)" in same.stdout
    other = invoke("build-lut", "--models", blocks, *FAST, "-o", str(out), "--resume")
    assert other.exit_code == 2
    assert "(units: ['Block'] != []); use a new -o" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_unknown_unit_lists_the_classes(models: tuple[str, str]) -> None:
    result = invoke("build-lut", "--models", *models, "--unit", "Blok", *FAST, "--dry-run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"latprof: error: --unit Blok: no module of that class in {models[0]}, {models[1]}; "
        "classes with children: Net, Block, Attn, MultiheadAttention; "
        "leaf classes: Conv2d, BatchNorm2d, Flatten, NonDynamicallyQuantizableLinear, LayerNorm"
    )


def test_unit_needs_models() -> None:
    result = invoke("build-lut", "--unit", "Block", "--dry-run")
    assert result.exit_code == 2 and "--unit names a module class of the --models" in result.stderr


def test_dry_run_shows_the_units(tmp_path: Path, models: tuple[str, str]) -> None:
    result = invoke(
        "build-lut", "--models", models[0], "--unit", "Block", *FAST, "--dry-run",
        "-o", str(tmp_path / "t.parquet"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("4 entries, 4 to measure")
    assert lines[1] == "  of which units (each module timed whole): 2 Block"
    assert not (tmp_path / "t.parquet").exists()


def test_predict_walks_the_tables_units(
    tmp_path: Path, models: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    blocks = models[0]
    out = tmp_path / "t.parquet"
    built = invoke("build-lut", "--models", blocks, "--unit", "Block", *FAST, "-o", str(out))
    assert built.exit_code == 0, built.output
    total = sum(
        r["time_us_p10"] for r in LatencyTable.load(out).rows.values() if r["op"] == "Block"
    )
    said = {}
    for whole in (1e6, total / 2):  # the network took far longer; less than the units
        monkeypatch.setattr(
            "latprof.lut.validate.measure_end_to_end",
            lambda *a, whole=whole, **k: (SimpleNamespace(p10=whole), None),
        )
        result = invoke("predict", blocks, "--lut", str(out), "--format", "csv")
        assert result.exit_code == 0, result.output
        rows = result.stdout.strip().splitlines()[1:]
        assert [r.split(",")[0] for r in rows] == ["stem", "b1", "b2", "b3", "flat"]
        said[whole] = result.stderr
    assert "%) is not in any leaf layer or unit (Block): residual adds" in said[1e6]
    assert "so the entries sum to " in said[total / 2]
    assert "more than the network took" in said[total / 2]


def test_unreplayable_argument_is_a_usage_error() -> None:
    class Takes(nn.Module):
        def forward(self, x: torch.Tensor, how: object) -> torch.Tensor:
            return x

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Takes()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x, object())

    with pytest.raises(UsageError, match="--unit Takes: inner is called with a object argument"):
        entry_calls(Outer(), (torch.zeros(1),), {}, ["Takes"])


def test_expand_multi_unit() -> None:
    assert expand_multi(["build-lut", "--unit", "A", "B", "--trials", "3"]) == [
        "build-lut", "--unit", "A", "--unit", "B", "--trials", "3"
    ]  # fmt: skip


def test_units_compared_on_resume_and_merge_absent_means_none() -> None:
    older = LatencyTable({"kind": "lut", "source": "models"})  # a table from before --unit
    assert older.differences({"kind": "lut", "source": "models", "units": []}) == []
    assert older.differences({"kind": "lut", "source": "models", "units": ["Block"]}) == [
        "units: [] != ['Block']"
    ]


class Tagged(nn.Module):
    """Appends its tag to `log` on every forward pass."""

    def __init__(self, tag: str, log: list[str]) -> None:
        super().__init__()
        self.tag, self.log = tag, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.tag)
        return x + 0


def test_measure_many_schedule_rounds_back_to_back() -> None:
    """Warm-up of each network, then rounds of PER_ROUND timed passes; in each, every network
    runs one untimed pass and then its share of the trials back to back (30 trials: 15 rounds
    of 2; 5 trials: 2, 2, 1)."""
    from latprof.lut import validate as val

    log: list[str] = []
    nets = [(Tagged(t, log), (torch.ones(1),), {}) for t in "AB"]
    settings = MeasureSettings(warmup=2, trials=30)
    results = val.measure_many(nets, settings, FakeClock())
    assert log[:4] == ["A", "A", "B", "B"]  # warm-up
    assert log[4:] == ["A", "A", "A", "B", "B", "B"] * 15
    assert [s.n for s, _ in results] == [30, 30]
    log.clear()
    val.measure_many(nets, MeasureSettings(warmup=1, trials=5), FakeClock())
    assert log == ["A", "B"] + ["A", "A", "A", "B", "B", "B"] * 2 + ["A", "A", "B", "B"]
