"""arch / predict / validate through the CLI, on a tiny space built for real (fast settings)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latprof.cli import app

HERE = Path(__file__).parent
TINY = HERE / "spaces" / "tiny.toml"
FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture()
def tiny_arch(tmp_path: Path) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(
        json.dumps(
            {
                "name": "mine",
                "space": str(TINY),
                "blocks": [
                    {"slot": "stem", "op": "conv", "kernel": 3},
                    {"slot": "body.0", "op": "mbinvres", "kernel": 3, "mid": 18},
                    {"slot": "pool_fc", "op": "pool_fc"},
                ],
            }
        )
    )
    return path


def test_arch_prints_json_and_toml_and_writes_files(tmp_path: Path) -> None:
    result = invoke("arch", "zoo:tfnas-b", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "tfnas-b" and data["space"] == "tfnas" and len(data["blocks"]) == 22
    toml = invoke("arch", "zoo:tfnas-b", "--format", "toml").stdout
    assert toml.count("[[blocks]]") == 22
    out = tmp_path / "b.toml"
    written = invoke("arch", "zoo:tfnas-b", "-o", str(out), "--format", "toml")
    assert written.exit_code == 0 and written.stdout == ""  # the file, nothing on stdout
    assert invoke("arch", str(out), "--format", "json").stdout == result.stdout
    both = invoke("arch", "zoo:tfnas-b", "-o", str(tmp_path / "c.toml"), "--format", "csv")
    assert both.exit_code == 2 and "drop -f" in both.output and both.stdout.count("\n") <= 1
    assert not (tmp_path / "c.toml").exists()
    table = invoke("arch", "zoo:tfnas-mbv2-a", "--format", "csv").stdout
    df = pd.read_csv(io.StringIO(table))
    assert list(df["slot"][:3]) == ["stem", "stage2", "stage3.0"] and set(df["act"]) >= {"relu6"}


def test_predict_breakdown_sums_to_total(tiny_lut: Path, tiny_arch: Path) -> None:
    result = invoke("predict", str(tiny_arch), "--lut", str(tiny_lut), "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert list(df["block"]) == ["stem", "body.0", "pool_fc"]
    assert list(df["source"]) == ["measured", "interpolated", "measured"]
    assert f"sum of entries {df['time_us'].sum():,.1f} µs" in result.stderr
    assert "corrected by the table's fit" in result.stderr  # the fixture's table has one


def test_predict_refuses_other_space_and_mismatched_target(tiny_lut: Path) -> None:
    result = invoke("predict", "zoo:tfnas-a", "--lut", str(tiny_lut))
    assert result.exit_code == 2 and "is for space 'tiny'" in result.stderr
    result = invoke("predict", "zoo:tfnas-a", "--lut", str(tiny_lut), "--batch-size", "8")
    assert result.exit_code == 2 and "batch: table 1, target 8" in result.stderr
    assert "Traceback" not in result.output


def test_predict_lists_misses(tiny_lut: Path, tmp_path: Path) -> None:
    from latprof.lut.table import LatencyTable

    table = LatencyTable.load(tiny_lut)
    pool = next(k for k in table.rows if k.startswith("pool_fc"))
    del table.rows[pool]
    holey = tmp_path / "holey.parquet"
    table.save(holey)
    arch = tmp_path / "a.json"
    arch.write_text(invoke("arch", str(HERE / "spaces" / "tiny-arch.json"), "-f", "json").stdout)
    result = invoke("predict", str(arch), "--lut", str(holey), "-f", "csv")
    assert result.exit_code == 2
    assert f"1 entries are not in {holey} ({pool})" in result.stderr
    assert "missing" in result.stdout  # the breakdown still shows the block
    # validate measures only what the table can predict: here nothing, so no pass at all
    checked = invoke("validate", str(arch), "--lut", str(holey), "-f", "csv")
    assert checked.exit_code == 2 and "1 architectures have entries missing" in checked.stderr
    rows = pd.read_csv(io.StringIO(checked.stdout))
    assert rows["misses"].tolist() == [1] and rows["measured_us"].isna().all()
    fixed = invoke("predict", str(arch), "--lut", str(holey), "-f", "csv", "--measure-misses")
    assert fixed.exit_code == 0, fixed.output
    assert pool in LatencyTable.load(holey).rows


def test_validate_measures_and_compares(tiny_lut: Path, tiny_arch: Path) -> None:
    result = invoke(
        "validate", "--lut", str(tiny_lut), str(tiny_arch), "--samples", "2", "-f", "csv"
    )
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert list(df["arch"]) == ["mine", "sample-0-0", "sample-0-1"]
    assert (df["measured_us"] > 0).all() and (df["predicted_us"] > 0).all()
    err = 100 * (df["predicted_us"] - df["measured_us"]) / df["measured_us"]
    assert ((err - df["error_pct"]).abs() < 0.01).all()  # CSV keeps 4 decimals
    assert (df["macs"] > 0).all() and "median |error|" in result.stderr


def test_validate_parquet_types_its_empty_halves_as_microseconds(
    tiny_lut: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "v.parquet"
    args = ["--samples", "1", "--trials", "2", "--threads", "1", "-o", str(out)]
    result = invoke("validate", "--lut", str(tiny_lut), *args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column("half_a_us").null_count == len(table)  # two passes: no halves
    assert table.schema.field("half_a_us").type == pa.float64()
    assert table.schema.field("half_b_us").type == pa.float64()
    assert table.schema.field("arch").type == pa.string()


def test_parquet_rows_type_only_all_null_microsecond_and_percent_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latprof.io.export import write_rows

    out = tmp_path / "rows.parquet"
    write_rows([{"a_us": None, "b_pct": None, "note": None, "n": 1}], out, "parquet")
    types = {f.name: f.type for f in pq.read_table(out).schema}
    assert types == {
        "a_us": pa.float64(),
        "b_pct": pa.float64(),
        "note": pa.null(),
        "n": pa.int64(),
    }


def test_validate_without_zoo_archs_says_what_to_do(tiny_lut: Path) -> None:
    result = invoke("validate", "--lut", str(tiny_lut))
    assert result.exit_code == 2 and "the zoo has no architectures of space 'tiny'" in result.stderr


def test_validate_refuses_a_profile_file(tmp_path: Path) -> None:
    prof = tmp_path / "p.parquet"
    assert invoke("profile", "zoo:cnn", *FAST, "-o", str(prof)).exit_code == 0
    result = invoke("validate", "--lut", str(prof))
    assert result.exit_code == 2 and "not a lookup table" in result.stderr


def test_predict_a_model_with_a_layer_table(tmp_path: Path) -> None:
    out = tmp_path / "layers.parquet"
    good = str(HERE / "models" / "good.py")
    assert invoke("build-lut", "--models", good, *FAST, "-o", str(out)).exit_code == 0
    result = invoke("predict", good, "--lut", str(out), "-f", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert set(df["source"]) == {"measured"} and len(df) == 4
    assert "measured end to end" in result.stderr
    # which of the two depends on the machine: entries timed alone may read above the network
    assert "not in any leaf layer" in result.stderr or "more than the network took" in result.stderr


def test_predict_allow_mismatch_lets_a_mismatched_table_through(
    tiny_lut: Path, tiny_arch: Path
) -> None:
    args = ["predict", str(tiny_arch), "--lut", str(tiny_lut), "--batch-size", "8", "-f", "csv"]
    refused = invoke(*args)
    assert refused.exit_code == 2 and "batch: table 1, target 8" in refused.stderr
    allowed = invoke(*args, "--allow-mismatch")
    assert allowed.exit_code == 0, allowed.output
    df = pd.read_csv(io.StringIO(allowed.stdout))
    assert list(df["block"]) == ["stem", "body.0", "pool_fc"]
    # let through, but not silently
    assert "warning: environment differs: batch: table 1, target 8" in allowed.stderr


def test_validate_refuses_a_table_of_another_machine_unless_allowed(
    tiny_lut: Path, tiny_arch: Path, tmp_path: Path
) -> None:
    from latprof.lut.table import LatencyTable

    table = LatencyTable.load(tiny_lut)
    table.meta.update(device_name="Other CPU 9000", torch="1.0.0")
    other = tmp_path / "other.parquet"
    table.save(other)
    refused = invoke("validate", "--lut", str(other), str(tiny_arch), "-f", "csv")
    assert refused.exit_code == 2, refused.output
    assert f"{other} was measured elsewhere (device_name: table 'Other CPU 9000', here" in (
        refused.stderr
    )
    assert "torch: table '1.0.0', here" in refused.stderr
    assert "--allow-mismatch" in refused.stderr and refused.stdout == ""
    threads = invoke("validate", "--lut", str(tiny_lut), str(tiny_arch), "--threads", "4")
    assert threads.exit_code == 2 and "threads: table 1, target 4" in threads.stderr
    allowed = invoke(
        "validate", "--lut", str(other), str(tiny_arch), "-f", "csv", "--allow-mismatch"
    )
    assert allowed.exit_code == 0, allowed.output
    warnings = [line for line in allowed.stderr.splitlines() if "environment differs" in line]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "latprof: warning: environment differs: device_name: table 'Other CPU 9000', here"
    )
    assert list(pd.read_csv(io.StringIO(allowed.stdout))["arch"]) == ["mine"]


def test_predict_measure_misses_honours_threads_for_archs(tiny_lut: Path, tiny_arch: Path) -> None:
    """--threads applies to architectures too, not only to MODELs of layer tables."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        result = invoke("predict", str(tiny_arch), "--lut", str(tiny_lut), "--threads", "2",
                        "--allow-mismatch",
                        "--format", "csv")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_arch_table_drops_columns_instead_of_cutting_names() -> None:
    """At 80 columns, slot names stay whole (stage3.0 vs stage3.1) and a column is dropped."""
    narrow = CliRunner().invoke(app, ["arch", "zoo:tfnas-c", "-f", "table"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert "…" not in narrow.stdout and max(len(line) for line in lines) <= 80
    assert "stage3.0" in narrow.stdout and "stage3.1" in narrow.stdout
    assert "columns dropped for width: stride; widen the terminal" in narrow.stdout
    wide = CliRunner().invoke(app, ["arch", "zoo:tfnas-c", "-f", "table"], env={"COLUMNS": "200"})
    assert "stride" in wide.stdout and "dropped" not in wide.stdout
    # text columns wrap instead of being dropped
    zoo = CliRunner().invoke(app, ["zoo", "-f", "table"], env={"COLUMNS": "80"})
    assert "input_shape" in zoo.stdout and "description" in zoo.stdout
    assert "dropped" not in zoo.stdout


def test_fitting_counts_a_text_column_at_its_squeezed_width() -> None:
    from latprof.render.terminal import Column, fit_columns, table_width

    name = Column("name", ["a" * 10])
    text = Column("description", ["word " * 20], wraps=True, squeeze=30)
    number = Column("n", ["12345"], drop=0)
    assert (text.full, text.fit, number.fit) == (100, 30, 5)
    assert table_width([name, text, number]) == 10 + 30 + 5 + 3 * 3 + 1
    kept, dropped = fit_columns([name, text, number], 55)
    assert (kept, dropped) == ([name, text, number], [])  # 55 fits once the text wraps
    kept, dropped = fit_columns([name, text, number], 54)
    assert (kept, dropped) == ([name, text], [number])


def test_predicts_end_to_end_check_takes_at_least_the_build_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table built with 3 trials: predict's one-off measurement of the model still takes
    20 passes (a 5-trial table's figure swung 1,063-2,187 µs for a new user)."""
    from latprof.lut import validate as val

    models = Path(__file__).parent / "models"
    out = tmp_path / "t.parquet"
    args = ["build-lut", "--models", str(models / "good.py"), "--trials", "3", "--warmup", "1"]
    assert invoke(*args, "--threads", "1", "-o", str(out)).exit_code == 0
    seen = []
    real = val.measure_end_to_end

    def spy(module, a, k, settings):  # type: ignore[no-untyped-def]
        seen.append(settings.trials)
        return real(module, a, k, settings)

    monkeypatch.setattr(val, "measure_end_to_end", spy)
    result = invoke("predict", str(models / "good.py"), "--lut", str(out), "-f", "csv")
    assert result.exit_code == 0, result.output
    assert seen == [20]
