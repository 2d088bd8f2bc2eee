"""Issue 13: nothing overwritten, nothing executed, every error its own exit code."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from latprof.cli import app, expand_multi

MODELS = Path(__file__).parent / "models"
GOOD = str(MODELS / "good.py")
FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, expand_multi(list(args)))


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latprof: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """good.py's layer table in three shards."""
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for i in range(3):
        path = folder / f"s{i}.parquet"
        r = invoke("build-lut", "--models", GOOD, *FAST, "--shard", f"{i}/3", "-o", str(path))
        assert r.exit_code == 0, r.output
        paths.append(path)
    return paths


def copies(shards: list[Path], folder: Path) -> list[Path]:
    out = []
    for p in shards:
        q = folder / p.name
        q.write_bytes(p.read_bytes())
        out.append(q)
    return out


# ---------------------------------------------------------------- 1. merge -o EXISTING


def test_merge_refuses_existing_output_and_never_replaces_an_input(
    shards: list[Path], tmp_path: Path
) -> None:
    s = [str(p) for p in copies(shards, tmp_path)]
    before = Path(s[0]).read_bytes()
    line = one_line_error(invoke("merge", *s, "-o", s[0]))
    assert "is one of the inputs" in line and Path(s[0]).read_bytes() == before
    line = one_line_error(invoke("merge", *s, "-o", s[0], "--force"))
    assert "is one of the inputs" in line and Path(s[0]).read_bytes() == before
    # the same file by another name is still an input
    other_name = str(tmp_path / "." / Path(s[1]).name)
    one_line_error(invoke("merge", *s, "-o", other_name, "--force"))
    existing = tmp_path / "m.parquet"
    existing.write_bytes(b"keep me")
    line = one_line_error(invoke("merge", *s, "-o", str(existing)))
    assert "already exists" in line and "--force" in line
    assert existing.read_bytes() == b"keep me"
    forced = invoke("merge", *s, "-o", str(existing), "--force")
    assert forced.exit_code == 0, forced.output
    assert len(pq.read_table(existing)) == 4


# ---------------------------------------------------------------- 2. incomplete shards


def test_merge_checks_that_shards_cover_the_plan(shards: list[Path], tmp_path: Path) -> None:
    s = [str(p) for p in shards]
    out = str(tmp_path / "m.parquet")
    line = one_line_error(invoke("merge", s[0], s[2], "-o", out))
    assert "shard 1 of 3 is missing" in line
    line = one_line_error(invoke("merge", s[0], "-o", out))
    assert "shards 1, 2 of 3 are missing" in line
    line = one_line_error(invoke("merge", s[0], s[1], s[1], s[2], "-o", out))
    assert "shard 1 of 3 is given twice" in line
    assert not Path(out).exists()
    # another plan: shard 1 of 2 of the same models
    s12 = tmp_path / "s1of2.parquet"
    r = invoke("build-lut", "--models", GOOD, *FAST, "--shard", "1/2", "-o", str(s12))
    assert r.exit_code == 0, r.output
    line = one_line_error(invoke("merge", s[0], s[1], s[2], str(s12), "-o", out))
    assert "of 2" in line and "of 3" in line
    # a whole table with shards
    whole = tmp_path / "whole.parquet"
    assert invoke("build-lut", "--models", GOOD, *FAST, "-o", str(whole)).exit_code == 0
    line = one_line_error(invoke("merge", str(whole), s[0], "-o", out))
    assert "not a shard" in line
    ok = invoke("merge", *s, "-o", out)
    assert ok.exit_code == 0, ok.output
    meta = json.loads(pq.read_schema(out).metadata[b"latprof"])
    assert meta.get("shard") is None and len(pq.read_table(out)) == 4


def test_merge_of_plain_tables_still_works(tmp_path: Path) -> None:
    a = tmp_path / "a.parquet"
    assert invoke("build-lut", "--models", GOOD, *FAST, "-o", str(a)).exit_code == 0
    r = invoke("merge", str(a), "-o", str(tmp_path / "m.parquet"))
    assert r.exit_code == 0, r.output
    assert len(pq.read_table(tmp_path / "m.parquet")) == 4


# ---------------------------------------------------------------- 3. a table runs no code


EVIL = """\
from pathlib import Path
from torch import nn

Path(__file__).with_name("executed.txt").write_text("ran")
input_shape = (1, 4)


def build_model():
    return nn.Sequential(nn.Linear(4, 2))
"""


def test_validate_never_imports_model_files_named_by_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.py").write_text(EVIL)
    marker = tmp_path / "executed.txt"
    r = invoke("build-lut", "--models", "evil.py", *FAST, "-o", "t.parquet")
    assert r.exit_code == 0, r.output
    marker.unlink()
    line = one_line_error(invoke("validate", "--lut", "t.parquet"))
    assert not marker.exists()
    assert "evil.py" in line and "name" in line
    # named by the user: runs
    r = invoke("validate", "--lut", "t.parquet", "evil.py", "-f", "csv")
    assert r.exit_code == 0, r.output
    assert marker.exists()


def test_validate_uses_zoo_models_of_a_layer_table(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert invoke("build-lut", "--models", "zoo:cnn", *FAST, "-o", str(out)).exit_code == 0
    r = invoke("validate", "--lut", str(out), "-f", "csv", "--trials", "2", "--warmup", "1")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(io.StringIO(r.stdout))["arch"].tolist() == ["zoo:cnn"]


# ---------------------------------------------------------------- 4. file modes


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_new_files_honour_the_umask_and_replacements_keep_the_mode(
    shards: list[Path], tmp_path: Path, umask_022: None
) -> None:
    from latprof.io.atomic import write_text

    new = tmp_path / "new.txt"
    write_text(new, "x")
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    os.umask(0o077)
    write_text(tmp_path / "private.txt", "x")
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    os.umask(0o022)
    new.chmod(0o640)
    write_text(new, "y")
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 and new.read_text() == "y"
    merged = tmp_path / "m.parquet"
    assert invoke("merge", *map(str, shards), "-o", str(merged)).exit_code == 0
    assert stat.S_IMODE(merged.stat().st_mode) == 0o644
    merged.chmod(0o664)
    assert invoke("merge", *map(str, shards), "-o", str(merged), "--force").exit_code == 0
    assert stat.S_IMODE(merged.stat().st_mode) == 0o664


# ---------------------------------------------------------------- 5. exit codes


def test_merge_into_a_missing_folder_is_a_usage_error(shards: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "nodir" / "m.parquet"
    line = one_line_error(invoke("merge", *map(str, shards), "-o", str(out)))
    assert "folder" in line and "does not exist" in line and ".tmp" not in line


def no_measuring(*args: object, **kwargs: object) -> None:
    raise AssertionError("measured before checking -o")


@pytest.mark.parametrize(
    ("command", "forbidden"),
    [
        (["profile", GOOD, *FAST], "latprof.profiler.profile"),
        (["validate", "--lut", "LUT", "ARCH"], "latprof.lut.validate.measure_networks"),
        (["predict", "ARCH", "--lut", "LUT"], "latprof.lut.validate.prediction_for"),
        (
            ["compare", "--space", "TINY", "--samples", "2", "--warmup", "1", "--trials", "1"],
            "latprof.predictors.compare.compare",
        ),
        (["arch", "ARCH"], None),
    ],
)
def test_output_folders_are_checked_up_front(
    command: list[str],
    forbidden: str | None,
    tiny_lut: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if forbidden:
        monkeypatch.setattr(forbidden, no_measuring)
    arch = Path(__file__).parent / "spaces" / "tiny-arch.json"
    tiny = Path(__file__).parent / "spaces" / "tiny.toml"
    subst = {"LUT": str(tiny_lut), "ARCH": str(arch), "TINY": str(tiny)}
    args = [subst.get(a, a) for a in command]
    ext = "json" if command[0] == "arch" else "csv"
    line = one_line_error(invoke(*args, "-o", str(tmp_path / "nodir" / f"x.{ext}")))
    assert "does not exist" in line


@pytest.mark.parametrize("option", ["--details", "--plot"])
def test_compare_checks_its_other_outputs_up_front(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("latprof.predictors.compare.compare", no_measuring)
    tiny = Path(__file__).parent / "spaces" / "tiny.toml"
    name = "x.png" if option == "--plot" else "x.csv"
    args = ["compare", "--space", str(tiny), "--samples", "2", "--warmup", "1", "--trials", "1"]
    line = one_line_error(invoke(*args, option, str(tmp_path / "nodir" / name)))
    assert "does not exist" in line


OOM_MODEL = """\
import torch
from torch import nn

input_shape = (1, 4)


class Hungry(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        raise {error}


def build_model():
    return Hungry()
"""


@pytest.mark.parametrize(
    "error",
    [
        "MemoryError()",
        "torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')",
        "RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough "
        "memory: you tried to allocate 1000000000000 bytes.')",
    ],
)
def test_out_of_memory_is_a_run_error_with_a_hint(error: str, tmp_path: Path) -> None:
    model = tmp_path / "hungry.py"
    model.write_text(OOM_MODEL.format(error=error))
    line = one_line_error(invoke("profile", str(model), *FAST, "-f", "csv"), code=3)
    assert "out of memory" in line and "lower --batch-size" in line


def test_out_of_memory_making_the_inputs_is_a_run_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def no_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"
        )

    monkeypatch.setattr(torch, "randn", no_memory)
    result = invoke("profile", GOOD, *FAST, "--batch-size", "1000000", "-f", "csv")
    line = one_line_error(result, code=3)
    assert "lower --batch-size" in line


# ---------------------------------------------------------------- 6. early Ctrl-C


def test_interrupt_before_the_first_save_says_nothing_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latprof.lut import build as buildmod

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(buildmod, "build", interrupted)
    out = tmp_path / "t.parquet"
    result = invoke("build-lut", "--models", GOOD, *FAST, "-o", str(out))
    assert result.exit_code == 130
    assert "saved in" not in result.stderr and "nothing was saved yet" in result.stderr
    out.write_bytes(b"")  # a file exists (as after a first save)
    result = invoke("build-lut", "--models", GOOD, *FAST, "-o", str(out), "--resume")
    assert result.exit_code == 130
    assert f"saved in {out}" in result.stderr and "--resume" in result.stderr


# ---------------------------------------------------------------- 7. --debug


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["build-lut", "--shard", "3/2"], 2),
        (["profile", str(MODELS / "factory_raises.py"), *FAST], 2),
    ],
)
def test_debug_adds_a_traceback_but_keeps_the_exit_code(args: list[str], code: int) -> None:
    plain = invoke(*args)
    assert plain.exit_code == code, plain.output
    debug = invoke("--debug", *args)
    assert debug.exit_code == code, debug.output
    assert "Traceback" in debug.stderr and "latprof: error:" in debug.stderr


def test_debug_keeps_the_run_error_code(tmp_path: Path) -> None:
    model = tmp_path / "hungry.py"
    model.write_text(OOM_MODEL.format(error="ValueError('bad')"))
    assert invoke("profile", str(model), *FAST).exit_code == 3
    debug = invoke("--debug", "profile", str(model), *FAST)
    assert debug.exit_code == 3 and "Traceback" in debug.stderr


# ---------------------------------------------------------------- 9. smaller


def test_a_model_with_a_space_table_points_to_a_layer_table(tiny_lut: Path) -> None:
    model = invoke("predict", "zoo:dscnn", "--lut", str(tiny_lut))
    assert model.exit_code == 2 and "Traceback" not in model.output
    assert "zoo:dscnn is not an architecture of the" in model.stderr
    assert "latprof build-lut --models zoo:dscnn" in model.stderr
    gpu = invoke("predict", "zoo:tfnas-a", "--lut", str(tiny_lut), "--device", "gpu")
    assert gpu.exit_code == 2 and "unknown device 'gpu'" in gpu.stderr
    typo = invoke("predict", "zoo:tfnas-z", "--lut", str(tiny_lut))
    assert "unknown TF-NAS architecture 'tfnas-z'" in typo.stderr  # the known ones listed


def test_mismatch_error_names_the_flag(tiny_lut: Path) -> None:
    arch = Path(__file__).parent / "spaces" / "tiny-arch.json"
    line = one_line_error(invoke("predict", str(arch), "--lut", str(tiny_lut), "--batch-size", "7"))
    assert "--allow-mismatch" in line


def test_csv_macs_are_integers_or_empty() -> None:
    from latprof.render.text import to_csv, to_markdown

    rows = [{"name": "a", "macs": 38633472.0}, {"name": "b", "macs": 0.0},
            {"name": "c", "macs": None}, {"name": "d", "macs": 12.0}]  # fmt: skip
    assert to_csv(rows).splitlines()[1:] == ["a,38633472", "b,0", "c,", "d,12"]
    assert "| b | 0 |" in to_markdown(rows)


def test_small_floats_keep_four_significant_digits() -> None:
    from latprof.render.text import cell

    # compare's FLOPs scale (µs per FLOP) is ~5e-05: four decimals would print 0.0
    assert [cell(v) for v in (4.7312e-05, -2.3e-07, 0.0042, 12.34567)] == [
        "4.731e-05",
        "-2.3e-07",
        "0.0042",
        "12.3457",
    ]
    assert cell(1.2e-16) == "0.0"  # float noise of a zero spread stays 0


def test_profile_csv_macs_column_is_integer(tmp_path: Path) -> None:
    result = invoke("profile", GOOD, *FAST, "-f", "csv", "--by", "layer")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.strip().splitlines()
    col = header.split(",").index("macs")
    for values in (line.split(",")[col] for line in lines):
        assert values == "" or values.isdigit(), values


def test_dry_run_help_does_not_say_it_measures_nothing() -> None:
    result = runner.invoke(app, ["build-lut", "--help"], env={"COLUMNS": "200"})
    assert "measure nothing" not in result.stdout
    assert "--dry-run" in result.stdout


def test_methodology_says_the_negative_unattributed_notice_fires_on_any_negative_value() -> None:
    """The code warns on any negative (unattributed) and says when it is within the IQR
    (tests/test_engine.py: -0.4 µs within an IQR of 2 µs gets the notice); so do the docs."""
    docs = Path(__file__).parent.parent / "docs" / "methodology.md"
    text = " ".join(docs.read_text(encoding="utf-8").split())
    assert "warns when it exceeds the end-to-end IQR" not in text
    assert "| negative unattributed | leaf sum > end-to-end by more than" not in text
    assert "latprof warns whenever it is negative" in text
    assert "| negative unattributed | leaf + self sum > end-to-end, by any amount" in text


def failing_mbinvres(real):
    """`measurement.prepare` under which every inverted-residual block fails to build."""
    from latprof.lut import measurement

    def prepare(job, settings):
        if job.key.startswith("mbinvres|"):
            return measurement.failed_row(job, settings, "ValueError: cannot build it")
        return real(job, settings)

    return prepare


def test_dry_run_says_which_sample_entries_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry that cannot be built is estimated at 0 s: the dry run says so."""
    # imported first: in_network binds measurement.prepare when imported, which must not
    # be this test's replacement
    from latprof.lut import in_network, measurement

    assert in_network.prepare is measurement.prepare
    real = measurement.prepare
    monkeypatch.setattr(measurement, "prepare", failing_mbinvres(real))
    tiny = Path(__file__).parent / "spaces" / "tiny.toml"
    args = ["--space", str(tiny), "--width-step", "4", "--context", "alone", *FAST]
    result = invoke("build-lut", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    match = re.search(r"(\d) of 5 sample entries failed \(e\.g\. mbinvres\|[^ ]*: ValueError", text)
    assert match and int(match.group(1)) >= 1, result.stdout
    assert "not in the estimate" in text and "count as 0 s" in text
    monkeypatch.setattr(measurement, "prepare", real)
    plain = invoke("build-lut", *args, "--dry-run")
    assert "failed" not in plain.stdout


def test_networks_dry_run_says_which_entries_of_its_sample_networks_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.lut import in_network, measurement

    real = measurement.prepare
    monkeypatch.setattr(in_network, "prepare", failing_mbinvres(real))
    tiny = Path(__file__).parent / "spaces" / "tiny.toml"
    args = ["--space", str(tiny), "--width-step", "4", *FAST]  # context: networks
    result = invoke("build-lut", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "context networks" in text
    match = re.search(r"(\d+) entries of the sampled networks failed \(e\.g\. mbinvres\|", text)
    assert match and int(match.group(1)) >= 1, result.stdout
    assert "ValueError: cannot build it" in text
    monkeypatch.setattr(in_network, "prepare", real)
    assert "failed" not in invoke("build-lut", *args, "--dry-run").stdout


def test_a_save_removes_temporary_files_of_killed_writers_only(tmp_path: Path) -> None:
    import os

    from latprof.io.atomic import write_text

    out = tmp_path / "t.csv"
    dead = tmp_path / ".t.csv.999999999.abc.tmp"  # above any pid_max: no such process
    live = tmp_path / f".t.csv.{os.getpid()}.def.tmp"  # a write in progress in this process
    other = tmp_path / ".u.csv.999999999.abc.tmp"  # another file's
    for p in (dead, live, other):
        p.write_text("partial")
    write_text(out, "a,b\n")
    assert out.read_text() == "a,b\n"
    assert not dead.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, other.name])
