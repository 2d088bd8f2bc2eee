"""latprof compare: seeded sampling, every predictor ranked against measured, plot, errors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latprof.cli import app
from latprof.predictors.compare import Comparison
from latprof.space.arch import sample_archs
from latprof.space.builtin import get_space

TINY = Path(__file__).parent / "spaces" / "tiny.toml"
FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_sampling_is_reproducible() -> None:
    space = get_space("mbv2")
    a, b, c = (sample_archs(space, 6, s) for s in (3, 3, 4))
    assert [x.choices for x in a] == [x.choices for x in b]
    assert [x.choices for x in a] != [x.choices for x in c]


def test_metric_rows_on_known_rankings() -> None:
    result = Comparison(
        archs=[{"measured_us": m, "good": 2 * m, "bad": -m} for m in (1.0, 2.0, 3.0, 4.0, 5.0)],
        predictors=["good", "bad"],
    )
    good, bad = result.metric_rows()
    assert (good["kendall_tau"], good["spearman"], good["top10_overlap"]) == (1.0, 1.0, 1.0)
    assert good["mape"] == pytest.approx(0.0) and good["scale"] == pytest.approx(0.5)
    assert (bad["kendall_tau"], bad["spearman"], bad["top10_overlap"]) == (-1.0, -1.0, 0.0)


def test_compare_end_to_end(tiny_lut: Path, tmp_path: Path) -> None:
    details = tmp_path / "archs.csv"
    args = ["compare", "--space", str(TINY), "--samples", "5", "--seed", "1", *FAST]
    result = invoke(*args, "--lut", str(tiny_lut), "--details", str(details), "-f", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert list(df.columns[:5]) == ["predictor", "kendall_tau", "spearman", "mape", "top10_overlap"]
    assert list(df["predictor"]) == ["flops", "roofline", "systolic", "lut"]
    assert df["kendall_tau"].between(-1, 1).all() and (df["mape"] >= 0).all()
    archs = pd.read_csv(details)
    assert list(archs["arch"]) == [f"sample-1-{i}" for i in range(5)]
    assert (archs["flops"] == archs["macs"]).all() and (archs["lut"] > 0).all()
    again = pd.read_csv(io.StringIO(invoke(*args, "--details", str(details)).stdout))
    assert list(pd.read_csv(details)["choices"]) == list(archs["choices"])  # same seed, same archs
    assert "lut" not in set(again["predictor"])  # no --lut: no lut predictor
    assert "no --lut" in invoke(*args).stderr


def test_compare_bad_input(tiny_lut: Path, tmp_path: Path) -> None:
    one = invoke("compare", "--space", str(TINY), "--samples", "1")
    assert one.exit_code == 2 and "at least 2" in one.stderr
    other = invoke("compare", "--space", "uboost", "--samples", "3", "--lut", str(tiny_lut))
    assert other.exit_code == 2 and "is a table of space 'tiny', not 'uboost'" in other.stderr
    bad = invoke("compare", "--space", str(TINY), "--plot", str(tmp_path / "p.jpg"))
    assert bad.exit_code == 2 and "write a .png file" in bad.stderr
    details = invoke("compare", "--space", str(TINY), "--details", str(tmp_path / "d.xyz"))
    assert details.exit_code == 2 and "--details" in details.stderr
    assert "unknown extension '.xyz'; use .csv" in details.stderr
    assert "--format" not in details.stderr  # --format names the main output's format only


def test_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "scatter.png"
    result = invoke("compare", "--space", str(TINY), "--samples", "3", *FAST, "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_plot_without_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "scatter.png"
    result = invoke("compare", "--space", str(TINY), "--samples", "3", *FAST, "--plot", str(png))
    assert result.exit_code == 2 and "pip install 'latprof[plot]'" in result.stderr
    assert not png.exists()


def test_measured_is_the_tables_statistic(tiny_lut: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare's measured_us is the statistic the lut predicts (p10 for this table), not the
    median or mean; fake passes: arch i takes 100 i + (10 12 11 13 60) µs."""
    import latprof.lut.validate
    from latprof.config import MeasureSettings
    from latprof.lut.table import LatencyTable
    from latprof.predictors.compare import compare
    from latprof.stats import summarize

    def fake_measure_networks(networks, settings, progress=None):
        base = [10.0, 12.0, 11.0, 13.0, 60.0]
        out = []
        for i in range(len(networks)):
            times = [100 * i + b for b in base]
            halves = (summarize(times[0::2]), summarize(times[1::2]))
            out.append((summarize(times), 1.0, halves))
        return out

    monkeypatch.setattr(latprof.lut.validate, "measure_networks", fake_measure_networks)
    space = get_space(str(TINY))
    archs = sample_archs(space, 3, 0)
    settings = MeasureSettings(warmup=1, trials=5)
    table = LatencyTable.load(tiny_lut)
    assert table.statistic == "p10"
    result = compare(space, archs, settings, 1, table=table)
    # sorted 10 11 12 13 60: p10 at position 0.4 = 10.4; median 12; IQR 13 - 11 = 2
    assert [a["measured_us"] for a in result.archs] == pytest.approx([10.4, 110.4, 210.4])
    assert [a["measured_median_us"] for a in result.archs] == pytest.approx([12, 112, 212])
    assert [a["measured_iqr_us"] for a in result.archs] == pytest.approx([2.0] * 3)
    table.meta["statistic"] = "mean"  # a table of means is compared with means
    result = compare(space, archs, settings, 1, table=table)
    assert [a["measured_us"] for a in result.archs] == pytest.approx([21.2, 121.2, 221.2])
    without = compare(space, archs, settings, 1)  # no table: p10
    assert [a["measured_us"] for a in without.archs] == pytest.approx([10.4, 110.4, 210.4])
    # halves 10 11 60 and 12 13: p10 10.2 and 12.1, then +100 per arch
    assert [a["half_a_us"] for a in without.archs] == pytest.approx([10.2, 110.2, 210.2])
    assert [a["half_b_us"] for a in without.archs] == pytest.approx([12.1, 112.1, 212.1])
    own = without.ceiling()
    assert own["split_half_tau"] == 1.0 and own["tau_ceiling"] == pytest.approx(1.0)
    assert own["split_half_diff_pct"] == pytest.approx(200 * 1.9 / 222.3)  # the middle arch
