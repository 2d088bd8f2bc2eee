"""Recalibration: one factor, the median measured / predicted over reference archs measured
now, scales every prediction (predict, validate, expected latency) and never the raw sum."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latprof import expected_latency, latency_model, predict
from latprof.errors import UsageError
from latprof.lut import recalibrate as recal
from latprof.lut.correction import FIT_SEED
from latprof.lut.table import LatencyTable
from latprof.lut.validate import recalibrate
from latprof.stats import summarize
from tests.test_cli_lut import invoke
from tests.test_reuse import K3_16, arch, fake_table, tiny_space


def test_factor_is_the_median_ratio_of_the_predictable_references() -> None:
    rows = [
        {"measured_us": 110.0, "predicted_us": 100.0},
        {"measured_us": 300.0, "predicted_us": 200.0},
        {"measured_us": 95.0, "predicted_us": 100.0},
        {"measured_us": 50.0, "predicted_us": None},  # a miss: not a reference
    ]
    r = recal.from_rows(rows)
    assert r["factor"] == pytest.approx(1.1)
    assert r["k"] == 3 and r["seed"] == recal.REFERENCE_SEED == FIT_SEED
    assert sorted(r["ratios"]) == pytest.approx([0.95, 1.1, 1.5])
    with pytest.raises(UsageError, match="no reference"):
        recal.from_rows([{"measured_us": 1.0, "predicted_us": None}])


def test_a_recalibrated_table_scales_the_prediction_not_the_raw_sum() -> None:
    plain = predict(fake_table(), arch(K3_16), space=tiny_space())
    table = fake_table()
    table.meta["correction"] = {"coef": [0.5, 10.0, 3.0]}
    table.meta["recalibration"] = {"factor": 1.25}
    pred = predict(table, arch(K3_16), space=tiny_space())
    unscaled = 0.5 * plain.sum_us + 10.0 * len(pred.blocks) + 3.0
    assert pred.sum_us == plain.sum_us
    assert pred.unscaled_us == pytest.approx(unscaled)
    assert pred.total_us == pytest.approx(1.25 * unscaled)
    assert pred.scale == 1.25 and plain.scale == 1.0


def test_expected_latency_is_scaled_and_its_gradient_too() -> None:
    base = latency_model(fake_table(), tiny_space())
    alpha0, alpha1 = base.init_alpha(), base.init_alpha()
    e0 = expected_latency(fake_table(), alpha0, space=tiny_space())
    table = fake_table()
    table.meta["recalibration"] = {"factor": 0.8}
    e1 = expected_latency(table, alpha1, space=tiny_space())
    assert e1.item() == pytest.approx(0.8 * e0.item())
    e0.backward()
    e1.backward()
    assert torch.allclose(alpha1["body.0"].grad, 0.8 * alpha0["body.0"].grad)
    raw = latency_model(table, tiny_space()).expected(base.init_alpha(), of="sum")
    assert raw.item() == pytest.approx(e0.item())  # the raw sum is never scaled


def fake_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Network i of each measurement (targets first, then references) takes (i + 1) × 100 µs;
    returns how many networks each measurement ran."""
    import latprof.lut.validate as val

    seen: list[int] = []

    def fake_measure_many(networks, settings, progress=None):
        seen.append(len(networks))
        return [(summarize([100.0 * (i + 1)] * 5), 1.0) for i in range(len(networks))]

    monkeypatch.setattr(val, "measure_many", fake_measure_many)
    return seen


def test_validate_scales_its_targets_by_references_measured_in_the_same_rounds(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latprof.config import MeasureSettings
    from latprof.lut import validate as val

    seen = fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    targets = val.sampled_targets(table, 2, 1)
    refs = recal.references(table, 3)
    settings = MeasureSettings(warmup=0, trials=5)
    plain = val.validate(table, list(targets), settings)
    rows = val.validate(table, list(targets), settings, reference=3)
    assert seen == [2, 5]  # the references ran with the targets, not apart
    assert [r["arch"] for r in rows] == [t.name for t in targets]  # no reference row
    measured = [300.0, 400.0, 500.0]  # the references were networks 3-5
    factor = expected_factor(table, refs, measured)
    for r, p in zip(rows, plain, strict=True):
        assert r["scale"] == pytest.approx(factor) and p["scale"] == 1.0
        assert r["predicted_us"] == pytest.approx(factor * p["predicted_us"])
        assert r["sum_us"] == p["sum_us"]
        assert r["measured_us"] == p["measured_us"]
    assert "recalibration" not in table.meta  # validate does not change the table


def test_recalibrate_stores_the_factor_and_predictions_follow(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    refs = recal.references(table, 3)
    before = [predict(table, a).total_us for a in refs]
    r = recalibrate(table, 3)
    expected = expected_factor(table, refs, [100.0, 200.0, 300.0])
    assert r["factor"] == pytest.approx(expected)
    assert table.meta["recalibration"] is r
    assert predict(table, refs[0]).total_us == pytest.approx(expected * before[0])
    again = recalibrate(table, 3)  # measured against the unscaled predictions
    assert again["factor"] == pytest.approx(expected)
    assert all(a.name.startswith("reference-4409-") for a in refs)


def expected_factor(table: LatencyTable, refs: list, measured: list[float]) -> float:
    """The median of time now / time at build (the fit's), else / the prediction."""
    then = {
        a["arch"].replace("sample-", "reference-"): a["measured_us"]
        for a in table.meta["correction"]["archs"]
    }
    assert set(then) >= {a.name for a in refs}  # the tiny table's fit measured them all
    return sorted(m / then[a.name] for a, m in zip(refs, measured, strict=True))[1]


def test_references_refuse_layer_tables_and_zero() -> None:
    table = fake_table()
    with pytest.raises(UsageError, match="at least 1"):
        recal.references(table, 0)
    table.meta["source"] = "models"
    with pytest.raises(UsageError, match="search space"):
        recal.references(table, 3)


def test_cli_validate_refuses_the_reference_seed_and_negative_k(tiny_lut: Path) -> None:
    result = invoke(
        "validate", "--lut", str(tiny_lut), "--samples", "2", "--seed", "4409",
        "--recalibrate", "3",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--seed 4409 draws the recalibration's reference archs" in result.stderr
    result = invoke("validate", "--lut", str(tiny_lut), "--recalibrate", "-1")
    assert result.exit_code == 2 and "--recalibrate must be 0 or more" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_validate_and_predict_report_the_factor(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    fast = ["--threads", "1", "--format", "csv"]
    result = invoke(
        "validate", "--lut", str(tiny_lut), "--samples", "2", "--seed", "3",
        "--recalibrate", "3", *fast,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "recalibrated on 3 reference architectures (seed 4409) measured now" in result.stderr
    assert ",scale," in result.stdout.splitlines()[0] + ","
    spec = arch_file(tiny_lut)
    result = invoke("predict", spec, "--lut", str(tiny_lut), "--recalibrate", "3", *fast)
    assert result.exit_code == 0, result.stderr
    assert "recalibrated on 3 reference architectures" in result.stderr
    assert "recalibrated):" in result.stderr
    assert "recalibration" not in LatencyTable.load(tiny_lut).meta  # the file is untouched


def arch_file(tiny_lut: Path) -> str:
    """An arch file of the tiny space next to the table."""
    from latprof.lut.validate import sampled_targets

    a = sampled_targets(LatencyTable.load(tiny_lut), 1, 5)[0]
    path = tiny_lut.parent / "arch.json"
    path.write_text(a.to_json())
    return str(path)


def test_against_the_build_times_the_factor_is_the_drift_of_the_same_archs() -> None:
    rows = [
        {"arch": "reference-4409-0", "measured_us": 220.0, "predicted_us": 100.0},
        {"arch": "reference-4409-1", "measured_us": 330.0, "predicted_us": 400.0},
        {"arch": "reference-4409-2", "measured_us": 90.0, "predicted_us": 100.0},
    ]
    before = {"reference-4409-0": 200.0, "reference-4409-1": 300.0}
    r = recal.from_rows(rows, before)
    # ratios 1.1, 1.1 (vs build) and 0.9 (vs the prediction: no time before)
    assert r["factor"] == pytest.approx(1.1)
    assert r["against"] == "measured at build and predicted"
    assert recal.from_rows(rows[:2], before)["against"] == "measured at build"


def test_the_fit_keeps_its_archs_times_as_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    from latprof.lut import correction, fresh

    rows = [
        {"arch": f"sample-4409-{i}", "sum_us": s, "blocks": 3, "measured_us": m}
        for i, (s, m) in enumerate([(100.0, 110.0), (200.0, 215.0), (300.0, 320.0), (50.0, 60.0)])
    ]
    monkeypatch.setattr(fresh, "rows", lambda *a, **k: rows)
    table = fake_table()
    correction.fit_table(table, 4)
    assert recal.baseline(table.meta) == {
        "reference-4409-0": 110.0,
        "reference-4409-1": 215.0,
        "reference-4409-2": 320.0,
        "reference-4409-3": 60.0,
    }
    table.meta["correction"]["seed"] = 1  # another seed's archs are not the references
    assert recal.baseline(table.meta) == {}


def test_describe_says_against_what_and_when() -> None:
    r = {"factor": 1.113, "k": 10, "seed": 4409, "against": "measured at build", "at": "T0"}
    line = recal.describe(r)
    assert "measured now: predictions ×1.113 (they ran 11.3 % slower than at build)" in line
    assert "measured at T0:" in recal.describe(r, saved=True)
    fallback = recal.describe({"factor": 0.95, "k": 3, "seed": 4409, "against": "predicted"})
    assert "×0.950 (they ran 5.0 % faster than the table predicts)" in fallback


def test_report_shows_a_saved_recalibration(tiny_lut: Path, tmp_path: Path) -> None:
    table = LatencyTable.load(tiny_lut)
    table.meta["recalibration"] = {
        "factor": 1.2, "k": 4, "seed": 4409, "against": "measured at build", "at": "T1",
    }  # fmt: skip
    saved = tmp_path / "recalibrated.parquet"
    table.save(saved)
    result = invoke("report", str(saved), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert "recalibrated on 4 reference architectures (seed 4409) measured at T1" in result.stderr
    assert predict(LatencyTable.load(saved), recal.references(table, 1)[0]).scale == 1.2


def test_validate_hints_at_recalibrating_when_errors_share_a_sign() -> None:
    from latprof.cli.table_cmds import drift_hint

    table = fake_table()

    def rows(*errors: float | None) -> list[dict]:
        return [{"error_pct": e} for e in errors]

    hint = drift_hint(table, rows(-9.0, -4.0, -3.5, 1.0, None))
    assert hint is not None and "under-predicts by 3.5 % (median)" in hint
    assert "--recalibrate 10" in hint
    assert drift_hint(table, rows(-9.0, -3.0, 4.0)) is None  # median within 3 %
    assert drift_hint(table, rows(5.0, 6.0)) is None  # too few to say
    table.meta["source"] = "models"
    assert drift_hint(table, rows(5.0, 6.0, 7.0)) is None  # no references to measure
