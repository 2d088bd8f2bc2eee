"""Recalibration: one factor, the median of time now / time at build over the build's fit
archs measured again now (time now / prediction for tables without those times), scales every
prediction (predict, validate, expected latency) and never the raw sum."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latprof import expected_latency, latency_model, predict
from latprof.errors import UsageError
from latprof.lut import recalibrate as recal
from latprof.lut.correction import FIT_SEED
from latprof.lut.table import LatencyTable
from latprof.lut.validate import recalibrate, recalibration
from latprof.stats import summarize
from tests.test_cli_lut import invoke
from tests.test_reuse import K3_16, arch, fake_table, tiny_space


def test_without_build_times_the_factor_is_the_median_ratio_to_the_predictions() -> None:
    rows = [
        {"arch": "reference-4409-0", "measured_us": 110.0, "predicted_us": 100.0},
        {"arch": "reference-4409-1", "measured_us": 300.0, "predicted_us": 200.0},
        {"arch": "reference-4409-2", "measured_us": 95.0, "predicted_us": 100.0},
        {"arch": "reference-4409-3", "measured_us": 50.0, "predicted_us": None},  # a miss
    ]
    r = recal.from_rows(rows, {"threads": 1})
    assert r["factor"] == pytest.approx(1.1)
    assert r["k"] == 3 and r["seed"] == recal.DEFAULT_SEED == FIT_SEED
    assert r["against"] == recal.PREDICTED and r["threads"] == 1
    assert sorted(r["ratios"]) == pytest.approx([0.95, 1.1, 1.5])
    with pytest.raises(UsageError, match="no reference"):
        recal.from_rows([{"measured_us": 1.0, "predicted_us": None}], {})


def fit_meta(times: dict[int, float], seed: int = 4409) -> dict:
    archs = [{"arch": f"sample-{seed}-{i}", "measured_us": t} for i, t in times.items()]
    return {"correction": {"seed": seed, "archs": archs}}


def test_against_build_times_only_the_same_archs_count() -> None:
    rows = [
        {"arch": "reference-4409-0", "measured_us": 220.0, "predicted_us": 100.0},
        {"arch": "reference-4409-1", "measured_us": 330.0, "predicted_us": 400.0},
        {"arch": "reference-4409-2", "measured_us": 90.0, "predicted_us": 100.0},
    ]
    r = recal.from_rows(rows, fit_meta({0: 200.0, 1: 300.0, 2: 0.0}))
    # ratios 1.1 and 1.1; the third has no time at build and is not mixed in
    assert r["factor"] == pytest.approx(1.1) and r["k"] == 2
    assert r["against"] == recal.AT_BUILD


def test_references_are_the_fit_archs_of_the_tables_own_seed(tiny_lut: Path) -> None:
    table = LatencyTable.load(tiny_lut)
    table.meta.update(fit_meta({0: 1.0, 1: 1.0, 2: 1.0}, seed=77))
    refs = recal.references(table, 10)
    assert [a.name for a in refs] == ["reference-77-0", "reference-77-1", "reference-77-2"]
    # capped at the archs kept (3 of the 10 asked); without build times, the k asked
    del table.meta["correction"]["archs"]
    assert len(recal.references(table, 10)) == 10
    recal.check_seed(table.meta, 4409, 5)  # not this table's references
    with pytest.raises(UsageError, match="--seed 77 draws"):
        recal.check_seed(table.meta, 77, 5)


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


def test_expected_latency_is_scaled_its_gradient_too_and_follows_a_later_factor() -> None:
    space = tiny_space()  # one object: expected_latency caches its model per table and space
    base = latency_model(fake_table(), space)
    alpha0, alpha1 = base.init_alpha(), base.init_alpha()
    e0 = expected_latency(fake_table(), alpha0, space=space)
    table = fake_table()
    before = expected_latency(table, base.init_alpha(), space=space)  # caches the model
    cached = table.__dict__.get("_latency_model")
    table.meta["recalibration"] = {"factor": 0.8}
    e1 = expected_latency(table, alpha1, space=space)
    assert cached is not None and table.__dict__.get("_latency_model") is cached
    assert before.item() == pytest.approx(e0.item())
    assert e1.item() == pytest.approx(0.8 * e0.item())
    e0.backward()
    e1.backward()
    assert torch.allclose(alpha1["body.0"].grad, 0.8 * alpha0["body.0"].grad)
    raw = latency_model(table, space).expected(base.init_alpha(), of="sum")
    assert raw.item() == pytest.approx(e0.item())  # the raw sum is never scaled


def test_expected_latency_follows_a_later_refit_of_the_same_table() -> None:
    space = tiny_space()
    table = fake_table()
    alpha = latency_model(table, space).init_alpha()
    plain = expected_latency(table, alpha, space=space).item()  # caches the model
    table.meta["correction"] = {"coef": [2.0, 0.0, 5.0]}  # what a refit stores
    assert expected_latency(table, alpha, space=space).item() == pytest.approx(2.0 * plain + 5.0)


def fake_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Network i of each measurement (targets first, then references) takes (i + 1) × 100 µs;
    returns how many networks each measurement ran."""
    import latprof.lut.validate as val

    seen: list[int] = []

    def fake_measure_networks(networks, settings, progress=None):
        seen.append(len(networks))
        return [(summarize([100.0 * (i + 1)] * 5), 1.0, None) for i in range(len(networks))]

    monkeypatch.setattr(val, "measure_networks", fake_measure_networks)
    return seen


def factor_vs_build(table: LatencyTable, refs: list, measured: list[float]) -> float:
    """The median of time now / time at build (the fit's) over the references."""
    then = recal.baseline(table.meta)
    assert set(then) >= {a.name for a in refs}  # the tiny table's fit measured them all
    ratios = sorted(m / then[a.name] for a, m in zip(refs, measured, strict=True))
    return ratios[len(ratios) // 2]


def test_validate_scales_its_targets_by_references_measured_in_the_same_rounds(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latprof.config import MeasureSettings
    from latprof.lut import validate as val

    seen = fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    table.meta["recalibration"] = {"factor": 2.0}  # a saved factor is replaced, not compounded
    targets = val.sampled_targets(table, 2, 1)
    refs = recal.references(table, 3)
    settings = MeasureSettings(warmup=0, trials=5)
    plain = val.validate(table, list(targets), settings)
    rows, info = val.measure(table, list(targets), settings, reference=3)
    assert seen == [2, 5]  # the references ran with the targets, not apart
    assert [r["arch"] for r in rows] == [t.name for t in targets]  # no reference row
    factor = factor_vs_build(table, refs, [300.0, 400.0, 500.0])  # networks 3-5
    assert info is not None and info["factor"] == pytest.approx(factor) and info["k"] == 3
    for r, p in zip(rows, plain, strict=True):
        assert p["scale"] == 2.0 and r["scale"] == pytest.approx(factor)
        assert r["predicted_us"] == pytest.approx(factor / 2.0 * p["predicted_us"])
        assert r["sum_us"] == p["sum_us"]
        assert r["measured_us"] == p["measured_us"]
    assert table.meta["recalibration"] == {"factor": 2.0}  # validate does not change the table


def test_recalibrate_stores_the_factor_and_predictions_follow(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    refs = recal.references(table, 3)
    before = [predict(table, a).total_us for a in refs]
    r = recalibrate(table, 3)
    expected = factor_vs_build(table, refs, [100.0, 200.0, 300.0])
    assert r["factor"] == pytest.approx(expected) and r["against"] == recal.AT_BUILD
    assert table.meta["recalibration"] is r
    assert predict(table, refs[0]).total_us == pytest.approx(expected * before[0])
    assert all(a.name.startswith("reference-4409-") for a in refs)


def test_without_build_times_a_saved_factor_does_not_enter_the_next_one(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    del table.meta["correction"]["archs"]  # a table built before latprof kept them
    refs = recal.references(table, 3)
    unscaled = [predict(table, a).total_us for a in refs]
    table.meta["recalibration"] = {"factor": 2.0}
    r = recalibrate(table, 3)
    ratios = sorted(100.0 * (i + 1) / p for i, p in enumerate(unscaled))
    assert r["factor"] == pytest.approx(ratios[1]) and r["against"] == recal.PREDICTED
    assert recalibrate(table, 3)["factor"] == pytest.approx(ratios[1])


def test_recalibration_refuses_another_thread_count(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    with pytest.raises(UsageError, match=r"measured with 1 threads.*set_num_threads\(1\)"):
        recalibration(table, 3)
    assert recalibration(table, 3, allow_mismatch=True)["k"] == 3


def test_a_refit_drops_a_saved_recalibration_and_keeps_the_fit_archs_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.lut import correction, fresh

    rows = [
        {"arch": f"sample-4409-{i}", "sum_us": s, "blocks": 3, "measured_us": m}
        for i, (s, m) in enumerate([(100.0, 110.0), (200.0, 215.0), (300.0, 320.0), (50.0, 60.0)])
    ]
    rows.append({"arch": "sample-4409-4", "sum_us": None, "blocks": 3, "measured_us": 70.0})
    monkeypatch.setattr(fresh, "rows", lambda *a, **k: rows)
    table = fake_table()
    table.meta["recalibration"] = {"factor": 1.3}
    correction.fit_table(table, 5)
    assert "recalibration" not in table.meta
    assert recal.baseline(table.meta) == {
        "reference-4409-0": 110.0,
        "reference-4409-1": 215.0,
        "reference-4409-2": 320.0,
        "reference-4409-3": 60.0,
        "reference-4409-4": 70.0,  # a time at build, though the table missed an entry
    }


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
    assert "scale" in result.stdout.splitlines()[0].split(",")
    result = invoke(
        "predict", arch_file(tiny_lut), "--lut", str(tiny_lut), "--recalibrate", "3", *fast
    )
    assert result.exit_code == 0, result.stderr
    assert "recalibrated on 3 reference architectures" in result.stderr
    factor = result.stderr.split("predictions ×")[1].split(" ")[0]
    assert f"×{factor} recalibrated):" in result.stderr


def test_references_that_cannot_be_compared_are_refused_before_measuring(
    tiny_lut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latprof.config import MeasureSettings
    from latprof.lut import validate as val

    seen = fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    del table.meta["correction"]["archs"]  # no build times: the predictions must do
    for key in list(table.rows):  # and no reference can be predicted
        del table.rows[key]
    with pytest.raises(UsageError, match="no reference architecture can be predicted"):
        val.measure(table, [], MeasureSettings(warmup=0, trials=5), reference=3)
    assert seen == []


def test_references_skip_fit_archs_without_a_time_at_build(tiny_lut: Path) -> None:
    table = LatencyTable.load(tiny_lut)
    table.meta.update(fit_meta({0: 10.0, 2: 30.0, 3: 40.0}))  # arch 1 had no time
    assert [a.name for a in recal.references(table, 2)] == ["reference-4409-0", "reference-4409-2"]


def test_cli_predict_measuring_misses_keeps_the_files_own_recalibration(
    tiny_lut: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    spec = arch_file(tiny_lut)
    table = LatencyTable.load(tiny_lut)
    key = next(b.key for b in predict(table, spec).blocks if b.source == "measured")
    del table.rows[key]
    saved = {"factor": 1.5, "k": 4, "seed": 4409, "against": recal.AT_BUILD, "at": "T0"}
    table.meta["recalibration"] = saved
    path = tmp_path / "missing.parquet"
    table.save(path)
    args = ["predict", spec, "--lut", str(path), "--measure-misses", "--recalibrate", "3"]
    result = invoke(*args, "--threads", "1", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert "added the entries measured now" in result.stderr
    again = LatencyTable.load(path)
    assert key in again.rows and again.meta["recalibration"] == saved


def arch_file(tiny_lut: Path) -> str:
    """An arch file of the tiny space next to the table."""
    from latprof.lut.validate import sampled_targets

    a = sampled_targets(LatencyTable.load(tiny_lut), 1, 5)[0]
    path = tiny_lut.parent / "arch.json"
    path.write_text(a.to_json())
    return str(path)


def test_describe_says_against_what_and_when() -> None:
    r = {"factor": 1.113, "k": 10, "seed": 4409, "against": recal.AT_BUILD, "at": "T0"}
    line = recal.describe(r)
    assert "measured now: predictions ×1.113 (they ran 11.3 % slower than at build)" in line
    assert "measured at T0:" in recal.describe(r, saved=True)
    fallback = recal.describe({"factor": 0.95, "k": 3, "against": recal.PREDICTED})
    assert "×0.950 (they ran 5.0 % faster than the table predicts)" in fallback
    assert "recalibrated on ? reference architectures" in recal.describe({"factor": 1.0})


def test_report_and_validate_show_a_saved_recalibration(
    tiny_lut: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_passes(monkeypatch)
    table = LatencyTable.load(tiny_lut)
    table.meta["recalibration"] = {
        "factor": 1.2, "k": 4, "seed": 4409, "against": recal.AT_BUILD, "at": "T1",
    }  # fmt: skip
    saved = tmp_path / "recalibrated.parquet"
    table.save(saved)
    result = invoke("report", str(saved), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert "recalibrated on 4 reference architectures (seed 4409) measured at T1" in result.stderr
    assert predict(LatencyTable.load(saved), recal.references(table, 1)[0]).scale == 1.2
    result = invoke("validate", "--lut", str(saved), "--samples", "2", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert "the table carries a recalibration, applied: recalibrated on 4" in result.stderr


def test_validate_hints_at_recalibrating_when_errors_share_a_sign() -> None:
    from latprof.cli.table_cmds import drift_hint

    table = fake_table()

    def rows(*errors: float | None) -> list[dict]:
        return [{"error_pct": e} for e in errors]

    hint = drift_hint(table, rows(-9.0, -4.0, -3.5, 1.0, None))
    assert hint is not None and "under-predicts by 3.8 % (median)" in hint
    assert "--recalibrate 10" in hint
    assert drift_hint(table, rows(-10.0, -10.0, 1.0, 1.0)) is not None  # median −4.5 %
    assert drift_hint(table, rows(-9.0, -3.0, 4.0)) is None  # median within 3 %
    assert drift_hint(table, rows(5.0, 6.0)) is None  # too few to say
    table.meta["source"] = "models"
    assert drift_hint(table, rows(5.0, 6.0, 7.0)) is None  # no references to measure


def test_a_resumed_build_that_refits_drops_the_saved_factor(tiny_lut: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "resumed.parquet"
    shutil.copy(tiny_lut, out)
    table = LatencyTable.load(out)
    table.meta["recalibration"] = {"factor": 1.7, "k": 3, "seed": 4409}
    table.save(out)
    space = Path(__file__).parent / "spaces" / "tiny.toml"
    args = ["build-lut", "--space", str(space), "--width-step", "4", "--warmup", "1"]
    args += ["--trials", "3", "--threads", "1", "-o", str(out), "--resume"]
    kept = invoke(*args, "--fit", "0", "--self-check", "0")
    assert kept.exit_code == 0, kept.stderr
    assert LatencyTable.load(out).meta["recalibration"]["factor"] == 1.7  # no refit: kept
    refit = invoke(*args, "--fit", "3", "--self-check", "0")
    assert refit.exit_code == 0, refit.stderr
    assert "recalibration" not in LatencyTable.load(out).meta  # against the old fit: dropped


def test_measuring_leaves_the_callers_random_state_alone(tiny_lut: Path) -> None:
    """Inputs of measured networks come from a generator of their own (python-api promise)."""
    import torch

    table = LatencyTable.load(tiny_lut)
    before = torch.random.get_rng_state().clone()
    recalibrate(table, 2)
    assert torch.equal(before, torch.random.get_rng_state())
