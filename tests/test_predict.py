"""LUT prediction (latprof.lut.predict): layer tables, misses, failed entries and the refusals,
the cases mutation testing found untested. Expected sums are worked out by hand; the basic
cases on the tiny space are in test_reuse.py."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from latprof import predict
from latprof.errors import LookupMissError, SpaceError
from latprof.lut.model_layers import entry_calls
from latprof.lut.predict import predict_arch, predict_model
from latprof.lut.table import LatencyTable
from latprof.space.arch import Choice
from latprof.space.builtin import get_space
from tests.test_reuse import K3_16, arch, fake_table, tiny_space

POOL = "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32"
M18 = Choice("body.0", "mbinvres", kernel=3, mid=18)  # between m16 (20 µs) and m20 (30 µs)


# ------------------------------------------------------------------ layer tables


def net() -> tuple[nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))
    return model, (torch.randn(1, 3, 8, 8),)


# per leaf, in call order: (time µs, MACs) given to its row
LAYER_ROWS = [(40.0, 1728.0), (2.0, 0.0), (1.0, 0.0), (7.0, 512.0)]


def layer_table(drop_last: bool = False) -> tuple[LatencyTable, list[str]]:
    meta = {
        "kind": "lut",
        "source": "models",
        "batch": 1,
        "dtype": "float32",
        "device": "cpu",
        "threads": 1,
        "warmup": 1,
        "trials": 3,
    }
    table = LatencyTable(meta)
    model, args = net()
    keys = [call.job(1, "float32").key for call in entry_calls(model, args, {})]
    for key, (t, macs) in list(zip(keys, LAYER_ROWS, strict=True))[: 3 if drop_last else 4]:
        table.add({"key": key, "time_us_median": t, "macs": macs, "status": "ok"})
    return table, keys


def test_predict_model_is_the_sum_of_its_leaf_entries() -> None:
    table, keys = layer_table()
    model, args = net()
    pred = predict_model(table, "net", model, args, {})
    assert [(b.slot, b.key, b.time_us, b.source, b.macs) for b in pred.blocks] == [
        ("0", keys[0], 40.0, "measured", 1728.0),
        ("1", keys[1], 2.0, "measured", 0.0),
        ("2", keys[2], 1.0, "measured", 0.0),
        ("3", keys[3], 7.0, "measured", 512.0),
    ]
    assert pred.name == "net" and pred.misses == []
    assert pred.total_us == 40 + 2 + 1 + 7
    assert pred.macs == 1728 + 512


def test_predict_model_misses_raise_by_default_or_are_reported() -> None:
    table, keys = layer_table(drop_last=True)
    model, args = net()
    message = (
        f"1 entries of net are not in the table (first: {keys[3]}); build them "
        "(latprof build-lut ... --resume) or measure them on the spot"
    )
    with pytest.raises(LookupMissError, match="^" + re.escape(message) + "$"):
        predict_model(table, "net", model, args, {})
    pred = predict_model(table, "net", model, args, {}, on_miss="report")
    assert pred.misses == [keys[3]]
    last = pred.blocks[3]
    assert (last.slot, last.key, last.time_us, last.source, last.macs) == (
        "3",
        keys[3],
        None,
        "missing",
        None,
    )
    assert pred.total_us == 40 + 2 + 1  # the sum of what was found


def test_predict_model_measures_a_missing_layer_and_adds_it() -> None:
    table, keys = layer_table(drop_last=True)
    model, args = net()
    pred = predict_model(table, "net", model, args, {}, on_miss="measure")
    row = table.rows[keys[3]]
    assert row["status"] == "ok" and row["n"] == 3  # trials 3 from the table's settings
    last = pred.blocks[3]
    assert (last.source, last.time_us, last.macs) == ("measured-now", row["time_us_median"], 512)
    assert pred.misses == []
    assert pred.total_us == pytest.approx(43 + row["time_us_median"])


def test_layer_and_space_tables_are_not_mixed_up() -> None:
    model, args = net()
    with pytest.raises(
        SpaceError,
        match=r"^this lookup table holds search-space blocks; predict an architecture with it "
        r"\(zoo:tfnas-a, arch\.json\) or build a layer table with build-lut --models$",
    ):
        predict_model(fake_table(), "net", model, args, {})
    layers, _ = layer_table()
    with pytest.raises(
        SpaceError,
        match=r"^this lookup table was built from models \(--models\), not a search space; "
        r"predict a model with it instead of an architecture$",
    ):
        predict(layers, arch(K3_16), space=tiny_space())


def test_table_of_another_space_names_both_hashes() -> None:
    tiny, tfnas = tiny_space().hash(), get_space("tfnas").hash()
    message = (
        f"the lookup table is for space 'tiny' (hash {tiny}), but arch 'tfnas-a' is for "
        f"'tfnas' (hash {tfnas}); build a table for that space"
    )
    with pytest.raises(SpaceError, match="^" + re.escape(message) + "$"):
        predict(fake_table(), "zoo:tfnas-a")


# ------------------------------------------------------------------ space tables


def test_predict_arch_raises_on_a_miss_by_default() -> None:
    with pytest.raises(LookupMissError, match="1 entries of a are not in the table"):
        predict_arch(fake_table(drop=(POOL,)), arch(K3_16), tiny_space())


def test_measure_on_miss_still_interpolates_unless_exact() -> None:
    # m18 is not a miss: it lies between measured widths, 20 + (18 - 16) / 4 · (30 - 20) = 25
    table = fake_table()
    table.meta.update(warmup=1, trials=3)
    for pred in (
        predict(table, arch(M18), space=tiny_space(), on_miss="measure"),
        predict_arch(table, arch(M18), tiny_space(), on_miss="measure"),
    ):
        assert (pred.blocks[1].source, pred.blocks[1].time_us) == ("interpolated", 25.0)
    assert len(table.rows) == 8  # nothing measured


@pytest.mark.parametrize("on_miss", ["raise", "report"])
def test_exact_without_measuring_interpolates(on_miss: str) -> None:
    pred = predict(fake_table(), arch(M18), space=tiny_space(), on_miss=on_miss, exact=True)
    assert (pred.blocks[1].source, pred.blocks[1].time_us) == ("interpolated", 25.0)
    assert pred.misses == [] and pred.total_us == 10 + 25 + 80


def test_an_entry_that_failed_in_the_build_is_not_measured_again() -> None:
    table = fake_table()
    table.meta.update(warmup=1, trials=3)
    table.rows[POOL].update(status="failed", error="boom", time_us_median=None)
    message = f"entry {POOL} failed when the table was built: boom"
    with pytest.raises(LookupMissError, match="^" + re.escape(message) + "$"):
        predict(table, arch(K3_16), space=tiny_space(), on_miss="measure")


def test_an_entry_that_fails_when_measured_now_stops_the_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.lut import measurement

    def failing(jobs, settings, clock):  # type: ignore[no-untyped-def]
        return [{"key": j.key, "status": "failed", "error": "boom"} for j in jobs]

    monkeypatch.setattr(measurement, "measure_jobs", failing)
    table = fake_table(drop=(POOL,))
    table.meta.update(warmup=1, trials=3)
    message = f"entry {POOL} failed to run: boom"
    with pytest.raises(LookupMissError, match="^" + re.escape(message) + "$"):
        predict(table, arch(K3_16), space=tiny_space(), on_miss="measure")


def test_a_layer_that_fails_when_measured_now_stops_the_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.lut import measurement

    def failing(jobs, settings, clock):  # type: ignore[no-untyped-def]
        return [{"key": j.key, "status": "failed", "error": "boom"} for j in jobs]

    monkeypatch.setattr(measurement, "measure_jobs", failing)
    table, keys = layer_table(drop_last=True)
    model, args = net()
    message = f"entry {keys[3]} failed to run: boom"
    with pytest.raises(LookupMissError, match="^" + re.escape(message) + "$"):
        predict_model(table, "net", model, args, {}, on_miss="measure")
