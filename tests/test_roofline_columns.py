"""Roofline columns in profiles (intensity, achieved MAC/s, bound) and env --calibrate."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latprof.calibrate import Calibration
from latprof.cli import app
from latprof.roofline_columns import category_columns, elements, layer_columns

FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
runner = CliRunner()
CAL = Calibration("cpu", "float32", 1e10, 1e9, 64, 1024, 1, "test cpu")  # ridge: 10 MACs/B


def test_elements_of_shape_texts() -> None:
    assert elements("1x3x8x8") == 192
    assert elements("(1x3, 2x2)") == 7
    assert elements("scalar") == 1 and elements("") == 0


def test_layer_columns_by_hand() -> None:
    # Conv2d 3 -> 8, k3, bias, on 1x3x8x8 -> 1x8x8x8: 216 + 8 params, 8*8*8*27 = 13824 MACs
    row = {
        "macs": 13824.0,
        "time_us": 10.0,
        "calls": 1.0,
        "params": 224,
        "input_shape": "1x3x8x8",
        "output_shape": "1x8x8x8",
    }
    cols = layer_columns(row, 4, CAL)
    moved = (192 + 512 + 224) * 4  # 3712 bytes
    assert cols["intensity"] == pytest.approx(13824 / moved)  # 3.72 MACs/B < ridge 10
    assert cols["bound"] == "memory"
    assert cols["achieved_macs_per_s"] == pytest.approx(13824 / 10e-6)
    assert cols["roofline_fraction"] == pytest.approx((13824 / 10e-6) / (13824 / moved * 1e9))
    twice = layer_columns({**row, "calls": 2.0, "macs": 2 * 13824.0}, 4, CAL)
    assert twice["intensity"] == pytest.approx(cols["intensity"])  # per-call ratio unchanged
    big = layer_columns({**row, "macs": 13824.0 * 100}, 4, CAL)
    assert big["bound"] == "compute"
    assert big["roofline_fraction"] == pytest.approx(13824 * 100 / 10e-6 / 1e10)
    none = layer_columns({**row, "macs": None}, 4, CAL)
    assert set(none.values()) == {None}
    assert category_columns({"macs": 2e6, "time_us": 4.0}) == {"achieved_macs_per_s": 5e11}


def test_env_calibrate_save_and_profile_with_it(tmp_path: Path) -> None:
    cal = tmp_path / "cal.json"
    result = runner.invoke(app, ["env", "--calibrate", "--threads", "1", "--save", str(cal)])
    assert result.exit_code == 0, result.output
    data = json.loads(cal.read_text())
    assert data["peak_macs_per_s"] > 0 and data["bandwidth_bytes_per_s"] > 0
    assert "calibration.peak_macs_per_s" in result.stdout
    prof = runner.invoke(
        app, ["profile", "zoo:cnn", *FAST, "--by", "layer", "-f", "csv", "--calibration", str(cal)]
    )
    assert prof.exit_code == 0, prof.output
    df = pd.read_csv(io.StringIO(prof.stdout)).set_index("layer")
    conv = df[df["category"] == "Conv2d"]
    assert (conv["intensity"] > 0).all() and set(conv["bound"]) <= {"compute", "memory"}
    assert (conv["roofline_fraction"] > 0).all()
    assert df[df["category"] == "ReLU"]["achieved_macs_per_s"].isna().all()  # no MACs
    cats = runner.invoke(app, ["profile", "zoo:cnn", *FAST, "-f", "csv", "--calibration", str(cal)])
    assert "achieved_macs_per_s" in cats.stdout.splitlines()[0]


def test_calibration_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["env", "--save", str(tmp_path / "c.json")])
    assert result.exit_code == 2 and "add --calibrate" in result.stderr
    half = tmp_path / "half.json"
    Calibration("cpu", "bfloat16", 1e10, 1e9, 64, 1024, 1, "x").save(half)
    result = runner.invoke(app, ["profile", "zoo:cnn", *FAST, "--calibration", str(half)])
    assert result.exit_code == 2 and "is for cpu bfloat16, not cpu float32" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = runner.invoke(app, ["profile", "zoo:cnn", *FAST, "--calibration", str(bad)])
    assert result.exit_code == 2 and "not a latprof calibration" in result.stderr


def test_terminal_tables_show_the_roofline_columns(tmp_path: Path) -> None:
    cal = tmp_path / "cal.json"
    CAL.save(cal)
    for by, header in (("layer", "of roof"), ("category", "MAC/s")):
        args = ["profile", "zoo:cnn", *FAST, "-f", "table", "--by", by]
        result = runner.invoke(app, [*args, "--calibration", str(cal)], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        assert header in result.stdout
        assert header not in runner.invoke(app, args, env={"COLUMNS": "250"}).stdout
