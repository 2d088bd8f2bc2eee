"""Every table knows how far to trust it: the build's self-check, its metadata, the warnings,
and validate's populations."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latprof.cli import app
from latprof.errors import LatprofWarning
from latprof.lut import correction, selfcheck
from latprof.lut import validate as val
from latprof.lut.table import LatencyTable, describe, trust_problem


def rows(pairs: list[tuple[float, float | None]], population: str = "random") -> list[dict]:
    out = []
    for i, (measured, predicted) in enumerate(pairs):
        err = None if predicted is None else 100 * (predicted - measured) / measured
        out.append(
            {
                "arch": f"sample-1-{i}",
                "measured_us": measured,
                "predicted_us": predicted,
                "error_pct": err,
                "population": population,
            }
        )
    return out


def test_summary_of_rows_is_exact() -> None:
    # errors: +1 %, -2 %, +4 %, miss; ranks of predicted and measured agree except one swap
    check = selfcheck.summarize_rows(
        rows([(100.0, 101.0), (200.0, 196.0), (150.0, 156.0), (120.0, None)]), "random", 9
    )
    assert check["k"] == 3 and check["missed"] == 1 and check["seed"] == 9
    assert check["median_abs_error_pct"] == pytest.approx(2.0)
    assert check["max_abs_error_pct"] == pytest.approx(4.0)
    assert check["kendall_tau"] == pytest.approx(1.0)  # 101 < 156 < 196 as 100 < 150 < 200
    swapped = selfcheck.summarize_rows(rows([(100.0, 110.0), (105.0, 100.0)]), "random", 1)
    assert swapped["kendall_tau"] == pytest.approx(-1.0)
    assert swapped["median_abs_error_pct"] == pytest.approx((10 + 100 * 5 / 105) / 2)


def test_a_corrected_table_keeps_the_raw_sums_errors_beside_its_own() -> None:
    # sums 95, 190, 165 against 100, 200, 150: -5 %, -5 %, +10 %; the miss has no sum
    sums = [95.0, 190.0, 165.0, None]
    checked = rows([(100.0, 101.0), (200.0, 196.0), (150.0, 156.0), (120.0, None)])
    for row, sum_us in zip(checked, sums, strict=True):
        row["sum_us"] = sum_us
        row["sum_error_pct"] = None if sum_us is None else 100 * (sum_us / row["measured_us"] - 1)
    check = selfcheck.summarize_rows(checked, "random", 9, corrected=True)
    assert check["raw_median_abs_error_pct"] == pytest.approx(5.0)
    assert check["raw_max_abs_error_pct"] == pytest.approx(10.0)
    assert [a["sum_us"] for a in check["archs"]] == sums
    assert "max 4.0 % (raw sum of entries: 5.0 %, 10.0 %), Kendall τ 1.00" in describe(check)
    plain = selfcheck.summarize_rows(checked, "random", 9)  # no correction: the raw sum is it
    assert plain["raw_median_abs_error_pct"] is None and plain["raw_max_abs_error_pct"] is None
    assert "raw sum" not in describe(plain)


def test_trust_thresholds_and_description() -> None:
    good = {"population": "random", "k": 10, "seed": 7, "median_abs_error_pct": 1.0,
            "max_abs_error_pct": 4.0, "kendall_tau": 0.97}  # fmt: skip
    assert trust_problem({"self_check": good}) is None
    assert describe(good) == (
        "self-check: median |error| 1.0 %, max 4.0 %, Kendall τ 0.97 over 10 random "
        "architectures, seed 7"
    )
    poor = good | {"max_abs_error_pct": 8.5}
    assert "max above 8 %; treat its sums with care" in (trust_problem({"self_check": poor}) or "")
    poor_median = good | {"median_abs_error_pct": 3.5}
    assert trust_problem({"self_check": poor_median}) is not None
    assert "no self-check" in (trust_problem({}) or "")
    # the flag it names exists (build-lut has --self-check K, 0 skips it; no --no-self-check)
    assert "built with --self-check 0" in (trust_problem({}) or "")


def test_load_warns_about_a_table_without_self_check(tiny_lut: Path, tmp_path: Path) -> None:
    table = LatencyTable.load(tiny_lut)
    assert table.meta["self_check"]["k"] == 10  # built by the conftest fixture
    del table.meta["self_check"]
    bare = tmp_path / "bare.parquet"
    table.save(bare)
    with pytest.warns(LatprofWarning, match="carries no self-check"):
        LatencyTable.load(bare)
    result = CliRunner().invoke(app, ["predict", "tests/spaces/tiny-arch.json", "--lut", str(bare)])
    assert result.exit_code == 0, result.output
    assert "latprof: warning: this table carries no self-check" in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatprofWarning)  # the CLI prints, never warns.warn
        CliRunner().invoke(app, ["report", str(bare), "--format", "csv"])


@pytest.mark.real_children
def test_build_stores_the_self_check_and_report_shows_it(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    args = ["build-lut", "--space", "tests/spaces/tiny.toml", "--width-step", "4", "--warmup",
            "1", "--trials", "3", "--threads", "1", "--self-check", "3", "--fit", "4"]  # fmt: skip
    args += ["-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = LatencyTable.load(out).meta
    fitted = meta["correction"]
    assert (fitted["k"], fitted["seed"]) == (4, 4409)
    assert fitted["features"] == ["sum_us", "blocks", "one"]
    assert len(fitted["coef"]) == 3 and "correction fitted on 4 random" in result.stdout
    check = meta["self_check"]
    assert (check["population"], check["k"], check["seed"]) == ("random", 3, 7301)
    assert [a["arch"] for a in check["archs"]] == [f"sample-7301-{i}" for i in range(3)]
    errors = sorted(abs(a["predicted_us"] / a["measured_us"] - 1) * 100 for a in check["archs"])
    assert check["median_abs_error_pct"] == pytest.approx(errors[1])
    assert check["max_abs_error_pct"] == pytest.approx(errors[-1])
    raw = sorted(abs(a["sum_us"] / a["measured_us"] - 1) * 100 for a in check["archs"])
    assert check["raw_median_abs_error_pct"] == pytest.approx(raw[1])  # a correction was fitted
    assert check["raw_max_abs_error_pct"] == pytest.approx(raw[-1])
    assert fitted["model"] in ("ratio", "ratio+intercept", "full")
    assert result.stdout.splitlines()[-1] == describe(check)
    report = CliRunner().invoke(app, ["report", str(out), "--format", "csv"])
    assert describe(check) in report.stderr
    assert correction.describe(fitted) in report.stderr  # the law predict applies
    as_json = tmp_path / "r.json"  # -o by extension, as --format json does
    saved = CliRunner().invoke(app, ["report", str(out), "-o", str(as_json)])
    assert saved.exit_code == 0 and json.loads(as_json.read_text())[0]["entries"] > 0


def test_self_check_can_be_skipped_and_is_refused_negative(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    base = ["build-lut", "--space", "tests/spaces/tiny.toml", "--width-step", "4", "--warmup",
            "1", "--trials", "2", "--threads", "1", "-o", str(out)]  # fmt: skip
    assert CliRunner().invoke(app, [*base, "--self-check", "-1"]).exit_code == 2
    one = CliRunner().invoke(app, [*base, "--fit", "1"])  # leave-one-out needs more
    assert one.exit_code == 2 and "--fit 1: a fit is judged leave-one-out" in one.stderr
    result = CliRunner().invoke(app, [*base, "--self-check", "0"])
    assert result.exit_code == 0
    assert "self_check" not in LatencyTable.load(out).meta


def test_validate_reports_each_population(tiny_lut: Path) -> None:
    args = ["validate", "--lut", str(tiny_lut), "tests/spaces/tiny-arch.json", "--samples", "2",
            "--seed", "5", "--trials", "3", "--format", "csv"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split(",")[-1] == "population"
    assert [line.split(",")[-1] for line in lines[1:]] == ["file", "random", "random"]
    assert "file: median |error|" in result.stderr and "random: median |error|" in result.stderr
    assert "over 2 architectures" in result.stderr


def test_populations_of_targets() -> None:
    assert val.population_of("zoo:tfnas-a") == "zoo"
    assert val.population_of("arch.toml") == "file"
    assert val.population_of("zoo:cnn") == "model"


def test_a_fresh_process_start_up_is_read_from_proc() -> None:
    from latprof.lut.fresh import startup_s

    first = startup_s()
    assert first is not None and 0.0 < first < 24 * 3600  # this test process has run a while
    assert startup_s() >= first  # it only grows
