"""The CLI end to end on tiny models (CliRunner: stdout is not a terminal)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from latprof.cli import app

MODELS = Path(__file__).parent / "models"
GOOD = str(MODELS / "good.py")
FAST = ["--warmup", "1", "--trials", "3"]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_pipe_default_is_category_csv() -> None:
    result = invoke("profile", GOOD, *FAST)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    cols = ["category", "calls", "time_us", "share", "macs", "params", "layers", "allocator"]
    assert list(df.columns) == cols and set(df["allocator"]) == {"system"}
    # the model (a Sequential) is timed too: its self time is a category row
    leaves = {"Conv2d", "ReLU", "Flatten", "Linear"}
    assert set(df["category"]) == {*leaves, "Sequential", "(unattributed)"}
    assert df["share"].sum() == pytest.approx(1.0, abs=1e-3)
    conv = df.set_index("category").loc["Conv2d"]
    assert conv["macs"] == 8 * 8 * 4 * 27 and conv["calls"] == 1 and conv["params"] == 112


def test_layer_csv_columns_and_shapes() -> None:
    result = invoke("profile", GOOD, *FAST, "--by", "layer", "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    for col in [
        "layer",
        "category",
        "calls",
        "time_us",
        "time_us_median",
        "time_us_std",
        "macs",
        "params",
        "input_shape",
        "output_shape",
    ]:
        assert col in df.columns
    assert df["input_shape"].tolist()[0] == "1x3x8x8"
    assert df["output_shape"].tolist()[-1] == "1x2"


def test_shared_module_calls() -> None:
    result = invoke("profile", str(MODELS / "shared.py"), *FAST, "--by", "layer")
    df = pd.read_csv(io.StringIO(result.stdout)).set_index("layer")
    assert df.loc["fc", "calls"] == 2 and df.loc["act", "calls"] == 2
    assert df.loc["fc", "macs"] == 2 * 4 * 4


def test_parquet_round_trip_with_metadata(tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    result = invoke("profile", GOOD, *FAST, "--threads", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads(pq.read_schema(out).metadata[b"latprof"])
    env = meta["environment"]
    for key in ("torch", "thop", "latprof", "cpu", "device_name", "intra_op_threads", "timestamp"):
        assert key in env
    assert env["intra_op_threads"] == 1
    assert meta["config"]["trials"] == 3 and meta["config"]["warmup"] == 1
    rows = pq.read_table(out).to_pandas()
    assert rows["kind"].tolist() == ["leaf"] * 4 + ["parent"]  # 4 layers, the Sequential
    table = rows[rows["kind"] == "leaf"]
    assert len(table["samples_us"][0]) == 3
    again = invoke("report", str(out), "--by", "layer", "--format", "json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert [row["layer"] for row in data["layers"]] == table["layer"].tolist()
    assert data["layers"][0]["samples_us"] == pytest.approx(list(table["samples_us"][0]))
    csv_again = invoke("report", str(out))
    assert "(unattributed)" in csv_again.stdout


def test_json_file_and_report_markdown(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    assert invoke("profile", GOOD, *FAST, "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "profile" and data["summary"]["e2e_us"]["n"] == 3
    md = invoke("report", str(out), "--format", "markdown")
    assert md.exit_code == 0
    header, table = md.stdout.split("\n\n", 1)
    assert "allocator system" in header
    assert table.startswith("| category | calls | time_us | share |")


def test_table_format_renders_summary() -> None:
    result = invoke("profile", GOOD, *FAST, "--format", "table")
    assert result.exit_code == 0
    assert "Time per layer category" in result.stdout
    text = " ".join(result.stdout.split())  # the summary wraps wherever its numbers put it
    assert "unattributed" in text and "timer overhead" in text
    assert "allocator check" in text and "another system process" in text


def test_zoo_listing() -> None:
    result = invoke("zoo")
    assert result.exit_code == 0
    names = pd.read_csv(io.StringIO(result.stdout))["name"].tolist()
    assert "zoo:cnn" in names and "zoo:dscnn" in names


def test_zoo_cnn_has_all_seed_categories() -> None:
    result = invoke("profile", "zoo:cnn", *FAST, "--threads", "1")
    cats = set(pd.read_csv(io.StringIO(result.stdout))["category"])
    assert {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Linear", "Dropout", "AvgPool2d"} <= cats


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["profile", "missing.py"], 2, "model file missing.py does not exist"),
        (
            ["profile", str(MODELS / "two_instances.py"), "--input-shape", "1,4"],
            2,
            "ambiguous: found encoder (instance), decoder (instance)",
        ),
        (["profile", GOOD, "--input-shape", "1,3,x"], 2, "--input-shape '1,3,x' is not a shape"),
        (["profile", GOOD, "--input-shape", "1,0,8"], 2, "needs positive sizes"),
        (
            ["profile", GOOD, "--input-shape", "1,5,8,8"],
            3,
            "layer '0' (Conv2d) failed on input 1x5x8x8",
        ),
        (["profile", GOOD, "--trials", "0"], 2, "--trials must be at least 1"),
        (["profile", GOOD, "--warmup", "-2"], 2, "--warmup must be at least 1"),
        (["profile", GOOD, "--threads", "0"], 2, "--threads must be at least 1"),
        (["profile", GOOD, "--batch-size", "-1"], 2, "--batch-size must be at least 1"),
        (["profile", GOOD, "--device", "tpu"], 2, "unknown device 'tpu'"),
        (["profile", GOOD, "--format", "xml"], 2, "--format 'xml' is unknown"),
        (["profile", GOOD, "--format", "parquet"], 2, "parquet is a binary format"),
        (["profile", GOOD, "-o", "out.xlsx"], 2, "unknown extension '.xlsx'"),
        (
            ["profile", GOOD, "-f", "parquet", "-o", "p.csv"],
            2,
            "-o p.csv: the extension says csv, --format says parquet; name the file for its "
            "format (e.g. p.parquet)",
        ),
        (["profile", GOOD, "-o", "/nonexistent/dir/p.csv"], 2, "folder /nonexistent/dir does not"),
        (["profile", GOOD, "--by", "tree"], 2, "--by 'tree' is unknown"),
        (["profile", GOOD, "--by", "op"], 2, "--by op needs --module NAME"),
        (["profile", GOOD, "--module", "0"], 2, "--module NAME goes with --by op"),
        (["profile", GOOD, "--depth", "1"], 2, "--depth goes with --by module"),
        (["profile", GOOD, "--by", "op", "--module", "1x"], 2, "--module '1x' is not a module"),
        (["profile", str(MODELS / "compiled.py")], 2, "torch.compile'd module"),
        (
            ["profile", str(MODELS / "factory_raises.py")],
            2,
            "build_model() raised RuntimeError: weights file missing",
        ),
        (["profile", "zoo:nope"], 2, "unknown zoo model 'nope'; known: cnn, densenet, dscnn"),
        (["report", "missing.parquet"], 2, "missing.parquet does not exist"),
    ],
)
def test_bad_input(args: list[str], code: int, message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert result.stderr.startswith("latprof: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cuda_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    result = invoke("profile", GOOD, "--device", "cuda")
    assert result.exit_code == 2
    assert "CUDA is not available here" in result.stderr


def test_report_rejects_non_latprof_parquet(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    result = invoke("report", str(path))
    assert result.exit_code == 2 and "not a latprof one" in result.stderr
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    result = invoke("report", str(junk))
    assert result.exit_code == 2 and "not a readable Parquet file" in result.stderr
    other_json = tmp_path / "other.json"
    other_json.write_text('{"a": 1}')
    result = invoke("report", str(other_json))
    assert result.exit_code == 2 and "other.json is not a latprof file" in result.stderr


@pytest.mark.parametrize("case", ["parent-is-a-file", "path-is-a-folder", "no-permission"])
def test_unwritable_output_does_not_measure(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o is checked before the model is even loaded; also as root, where permissions
    don't apply (then the folder is reported unwritable by a patched os.access)."""
    import os

    import latprof.loading
    import latprof.profiler

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured although -o cannot be written")

    monkeypatch.setattr(latprof.loading, "load_model", must_not_run)
    monkeypatch.setattr(latprof.profiler, "profile", must_not_run)
    plain_file = tmp_path / "file.txt"
    plain_file.write_text("x")
    folder = tmp_path / "ro"
    folder.mkdir()
    (tmp_path / "dir.csv").mkdir()
    target, message = {
        "parent-is-a-file": (plain_file / "p.csv", f"folder {plain_file} does not exist"),
        "path-is-a-folder": (tmp_path / "dir.csv", "is a directory; give a file name"),
        "no-permission": (folder / "p.csv", "no permission to write there"),
    }[case]
    if case == "no-permission":
        folder.chmod(0o500)
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: Path(p) != folder and real_access(p, mode)
        )
    try:
        result = invoke("profile", GOOD, "-o", str(target))
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "measured although" not in result.output


def test_subprocess_exit_code_and_debug_traceback() -> None:
    cmd = [sys.executable, "-m", "latprof", "profile", "missing.py"]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        "latprof: error: model file missing.py does not exist; give a path to a .py file, "
        "zoo:NAME (see `latprof zoo`) or torchvision:NAME"
    ]
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True)
    # --debug adds the traceback; the exit code and the message stay
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from latprof.cli import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['--help']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_notices_go_to_stderr_as_plain_text_on_a_pipe(tmp_path: Path) -> None:
    # CliRunner: neither stdout nor stderr is a terminal; --trials 3 gives a few-trials notice
    for extra in ([], ["-o", str(tmp_path / "p.csv")]):
        result = invoke("profile", GOOD, *FAST, *extra)
        assert result.exit_code == 0, result.output
        assert "Warning: only 3 trial(s)" in result.stderr
        assert "  hint: use --trials 10 or more" in result.stderr
        assert "\x1b[" not in result.stderr
        assert "Warning" not in result.stdout


def test_report_help_mentions_lookup_tables() -> None:
    result = invoke("report", "--help")
    assert result.exit_code == 0
    assert "profile or lookup table" in " ".join(result.stdout.split())


def test_console_entry_point_exit_codes(tmp_path: Path) -> None:
    """main() ends with os._exit after flushing: output complete, exit codes kept."""
    script = "import sys; from latprof.cli import main; sys.argv[0] = 'latprof'; main()"
    ok = subprocess.run(
        [sys.executable, "-c", script, "profile", GOOD, *FAST, "--by", "layer"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(pd.read_csv(io.StringIO(ok.stdout))) == 4 and "Warning:" in ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", script, "profile", "missing.py"], text=True, capture_output=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("latprof: error: ")
    usage = subprocess.run([sys.executable, "-c", script, "nope"], capture_output=True, text=True)
    assert usage.returncode == 2 and "No such command" in usage.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "zoo:cnn", "--bogus"], "No such option: --bogus (see latprof profile --help)"),
        (["profile", "zoo:cnn", "--trials", "abc"], "Invalid value for '--trials'"),
        (["profile"], "Missing argument 'model'. (see latprof profile --help)"),
        (["bogus"], "No such command 'bogus'. (see latprof --help)"),
        (["profile", "zoo:cnn", "--trails", "3"], "Possible options: --threads, --trials"),
        (["profile", "zoo:cnn", "--debug"], "--debug goes before the command: latprof --debug"),
    ],
)
def test_usage_errors_are_one_line_from_the_console_script(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from latprof.cli import run_cli

    with pytest.raises(SystemExit) as exited:
        run_cli(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("latprof: error: ") and message in err
    assert err.count("\n") == 1


def test_console_script_exit_codes_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    from latprof.cli import run_cli

    for argv, code in [(["--version"], 0), (["zoo", "-f", "csv"], 0), (["zoo", "-f", "x"], 2)]:
        with pytest.raises(SystemExit) as exited:
            run_cli(argv)
        assert exited.value.code == code, argv
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run_cli([])  # no arguments: the help, exit 2, no error line
    out = capsys.readouterr()
    assert exited.value.code == 2 and "Usage: latprof" in out.out and "error" not in out.err
