"""Golden tests: pin latprof's current outputs so that a pure refactor provably changes nothing.

Each test renders something (a profile on a fake clock in every output format, CLI listings,
help texts, error messages and exit codes, file schemas and metadata key trees), normalises
what varies by machine or run (environment values, paths, real-clock numbers, ANSI codes,
trailing blanks) and compares it with a text file in tests/golden/, named after the test
(and its parameter id).

Regenerate the golden files after an *intended* change of output, then review the diff:

    LATPROF_REGEN_GOLDEN=1 pytest tests/test_golden.py

With LATPROF_REGEN_GOLDEN=1 the tests write their golden files instead of comparing.

Numbers from the fake clock (latprof.measure.clocks.FakeClock) are exact and pinned; numbers
from the real clock (CLI profile / build-lut runs) are replaced by "<t>" before comparing.
All latprof imports are in the block below, so a move of modules is re-pointed in one place.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

# ---- every latprof import of this file (re-point here after moving modules) ----
from latprof.calibrate import Calibration
from latprof.cli import app
from latprof.config import ProfileConfig
from latprof.io.profile_file import dumps_json, load, save_json, save_parquet
from latprof.measure.clocks import FakeClock
from latprof.profiler import profile
from latprof.records import Profile
from latprof.render.terminal import profile_view
from latprof.render.text import notice_plain, to_csv, to_markdown

# ---------------------------------------------------------------------------------------
from tests.helpers import Work

HERE = Path(__file__).parent
REPO = HERE.parent
GOLDEN = HERE / "golden"
MODELS = HERE / "models"
GOOD = str(MODELS / "good.py")
TINY = HERE / "spaces" / "tiny.toml"
TINY_ARCH = HERE / "spaces" / "tiny-arch.json"
FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
REGEN = os.environ.get("LATPROF_REGEN_GOLDEN") == "1"
WIDTH = 120
MASK = "<t>"  # a number that came from a real clock

# Environment fields that vary by machine, software version or run.
VOLATILE_ENV = (
    "latprof",
    "torch",
    "thop",
    "python",
    "platform",
    "hostname",
    "cpu",
    "device_name",
    "inter_op_threads",
    "omp_num_threads",
    "mkl_num_threads",
    "flush_denormal",
    "timestamp",
    "allocator",
    "allocator_condition",  # steady once an earlier test in this process asked for it
    "glibc",
    "cpu_capability",
)
# Environment variables that change how rich/typer render (colour, width, terminal).
CLI_ENV = {
    "COLUMNS": str(WIDTH),
    "LINES": "50",
    "TERMINAL_WIDTH": None,
    "FORCE_COLOR": None,
    "PY_COLORS": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "NO_COLOR": "1",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# ---------------------------------------------------------------------- golden plumbing


def check_golden(name: str, actual: str) -> None:
    """Compare `actual` with tests/golden/NAME.txt (or write it with LATPROF_REGEN_GOLDEN=1)."""
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with LATPROF_REGEN_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"golden/{name}.txt",
                "actual",
            )
        )
        pytest.fail(f"output differs from golden/{name}.txt:\n{diff}", pytrace=False)


def golden_name(request: pytest.FixtureRequest) -> str:
    """test_x[param-id] -> test_x.param-id (a file name without brackets)."""
    name = request.node.name
    return re.sub(r"\[(.*)\]$", r".\1", name).replace("/", "_")


class Normaliser:
    """Masks what varies by machine or run in text and in JSON-like values."""

    def __init__(self, *paths: tuple[Path, str]) -> None:
        self.paths = [(str(p), label) for p, label in paths]

    def text(self, s: str) -> str:
        s = ANSI.sub("", s)
        for p, label in self.paths:
            s = s.replace(p, label)
        s = s.replace(f"torch {torch.__version__}", "torch <torch>")
        return "".join(line.rstrip() + "\n" for line in s.splitlines())

    def env(self, env: dict[str, Any]) -> dict[str, Any]:
        return {k: (f"<{k}>" if k in VOLATILE_ENV else v) for k, v in env.items()}


def key_tree(value: Any, indent: str = "") -> list[str]:
    """Key names of nested dicts (lists: the union of their elements' keys), not values."""
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            kind = "{}" if isinstance(v, dict) else "[]" if isinstance(v, list) else ""
            lines.append(f"{indent}{k}{kind}")
            lines += key_tree(v, indent + "  ")
    elif isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                for k, v in item.items():
                    merged.setdefault(k, v)
        lines += key_tree(merged, indent)
    return lines


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        inner = sorted({json_type(v) for v in value})
        return f"list[{'|'.join(inner)}]"
    return type(value).__name__


def parquet_schema(path: Path) -> str:
    """Column names and Arrow types, then the recursive key tree of the 'latprof' metadata."""
    schema = pq.read_schema(path)
    lines = ["columns:"] + [f"  {f.name}: {f.type}" for f in schema]
    metadata = schema.metadata or {}
    lines.append(f"schema metadata keys: {sorted(k.decode() for k in metadata)}")
    lines.append("latprof metadata keys:")
    lines += key_tree(json.loads(metadata[b"latprof"]), "  ")
    return "\n".join(lines) + "\n"


def mask_csv(text: str, columns: set[str], sort: bool = False) -> str:
    """CSV with the values of `columns` replaced by <t> (real-clock numbers).

    sort=True sorts the rows too, for tables ordered by a measured time.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    header = rows[0]
    body = [[MASK if h in columns else v for h, v in zip(header, r, strict=True)] for r in rows[1:]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(sorted(body) if sort else body)
    return out.getvalue()


def render_rich(renderable: Any, width: int = WIDTH) -> str:
    c = Console(
        width=width,
        record=True,
        file=io.StringIO(),
        color_system=None,
        force_terminal=False,
        highlight=False,
        legacy_windows=False,
    )
    c.print(renderable)
    return "".join(line.rstrip() + "\n" for line in c.export_text().splitlines())


runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=CLI_ENV)


def cli_record(result: Any, norm: Normaliser) -> str:
    """Exit code, stdout and stderr of a CliRunner result as one normalised text."""
    return norm.text(
        f"exit code: {result.exit_code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


@pytest.fixture(autouse=True)
def _fixed_typer_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """typer reads TERMINAL_WIDTH / FORCE_COLOR / GITHUB_ACTIONS at import: undo them."""
    import typer.rich_utils as ru

    monkeypatch.setattr(ru, "MAX_WIDTH", None, raising=False)
    monkeypatch.setattr(ru, "FORCE_TERMINAL", None, raising=False)


@pytest.fixture
def norm(tmp_path: Path) -> Normaliser:
    return Normaliser((tmp_path, "<tmp>"), (REPO, "<repo>"))


# ------------------------------------------------------------- a profile on a fake clock


class Timed:
    """Mixin for real layers: each call advances the fake clock by the next duration in a
    fixed cycle (so samples vary from trial to trial, deterministically)."""

    def timed(self, clock: FakeClock, cycle_ns: list[int]) -> None:
        self.clock = clock
        self.cycle = list(cycle_ns)
        self.calls = 0

    def tick(self) -> None:
        self.clock.advance(self.cycle[self.calls % len(self.cycle)])
        self.calls += 1


class TimedConv2d(Timed, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return super().forward(x)


class TimedBatchNorm2d(Timed, nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return super().forward(x)


class TimedReLU(Timed, nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return super().forward(x)


class TimedLinear(Timed, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick()
        return super().forward(x)


class GoldenNet(nn.Module):
    """conv -> bn -> act -> pool -> (functional work) -> act again -> flatten -> fc -> custom.

    act is shared (2 calls); pool and flatten take no fake time; custom has no MAC counter.
    """

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.conv = TimedConv2d(3, 4, 3, padding=1)
        self.conv.timed(clock, [3000, 3200, 2800, 3100, 2900])
        self.bn = TimedBatchNorm2d(4)
        self.bn.timed(clock, [800])
        self.act = TimedReLU()
        self.act.timed(clock, [400, 500, 450])
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = TimedLinear(64, 5)
        self.fc.timed(clock, [1500, 1700, 1600, 9000, 1550, 1650, 1600, 1580])
        self.custom = Work(clock, 700)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.bn(self.conv(x))))
        self.clock.advance(500)  # like a residual add: time in no leaf
        x = self.act(x)
        return self.custom(self.fc(self.flat(x)))


def fixed_environment(prof: Profile) -> Profile:
    """The profile with machine-dependent environment values replaced by placeholders."""
    env = prof.environment
    masked = {k: f"<{k}>" for k in VOLATILE_ENV if hasattr(env, k)}
    masked.update(inter_op_threads=0, flush_denormal=False, omp_num_threads=None)
    masked.update(mkl_num_threads=None)
    return replace(prof, environment=replace(env, **masked))


CALIBRATION = Calibration(
    device="cpu",
    dtype="float32",
    peak_macs_per_s=2.0e9,
    bandwidth_bytes_per_s=8.0e9,
    matmul_n=1024,
    copy_bytes=64 * 2**20,
    threads=1,
    device_name="golden-cpu",
)


def fake_profile() -> Profile:
    torch.manual_seed(0)
    clock = FakeClock(read_cost_ns=100)
    config = ProfileConfig(warmup=2, trials=6, threads=1)
    prof = profile(
        GoldenNet(clock),
        (torch.zeros(1, 3, 8, 8),),
        config=config,
        name="golden",
        clock=clock,
        fault_counter=lambda: 0,  # page faults vary by process
    )
    return fixed_environment(prof)


@pytest.fixture(scope="module")
def fake() -> Profile:
    return fake_profile()


def with_calibration(prof: Profile) -> Profile:
    return replace(prof, calibration=CALIBRATION)


def test_fake_profile_is_deterministic(fake: Profile) -> None:
    assert dumps_json(fake_profile()) == dumps_json(fake)


@pytest.mark.parametrize("by", ["category", "layer"])
@pytest.mark.parametrize("roof", [False, True], ids=["plain", "calibrated"])
def test_fake_csv(fake: Profile, by: str, roof: bool, request: pytest.FixtureRequest) -> None:
    p = with_calibration(fake) if roof else fake
    rows = p.layer_rows() if by == "layer" else p.category_rows()
    check_golden(golden_name(request), to_csv(rows))


@pytest.mark.parametrize("by", ["category", "layer"])
def test_fake_markdown(fake: Profile, by: str, request: pytest.FixtureRequest) -> None:
    rows = fake.layer_rows() if by == "layer" else fake.category_rows()
    check_golden(golden_name(request), to_markdown(rows))


def test_fake_json(fake: Profile) -> None:
    check_golden("test_fake_json", dumps_json(fake))


def test_fake_notices(fake: Profile) -> None:
    check_golden("test_fake_notices", "".join(notice_plain(n) for n in fake.notices))


@pytest.mark.parametrize(
    ("by", "top", "roof"),
    [("category", 10, False), ("category", 3, False), ("layer", 10, False), ("layer", 0, True)],
    ids=["category-top10", "category-top3", "layer", "layer-calibrated"],
)
def test_fake_terminal_table(
    fake: Profile, by: str, top: int, roof: bool, request: pytest.FixtureRequest
) -> None:
    p = with_calibration(fake) if roof else fake
    width = 160 if roof else WIDTH  # the roofline columns need room
    check_golden(golden_name(request), render_rich(profile_view(p, by=by, top=top), width))


def test_fake_parquet(fake: Profile, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    save_parquet(fake, path)
    meta = json.loads(pq.read_schema(path).metadata[b"latprof"])
    rows = pq.read_table(path).to_pylist()
    text = (
        parquet_schema(path)
        + "metadata:\n"
        + json.dumps(meta, indent=2, ensure_ascii=False)
        + "\nrows:\n"
        + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    check_golden("test_fake_parquet", text)


def test_fake_round_trips(fake: Profile, tmp_path: Path) -> None:
    """Saved and loaded again (parquet and json), a profile renders the same JSON."""
    for name, save in (("p.parquet", save_parquet), ("p.json", save_json)):
        save(fake, tmp_path / name)
        assert dumps_json(load(tmp_path / name)) == dumps_json(fake), name


@pytest.fixture
def fake_json_file(fake: Profile, tmp_path: Path) -> Path:
    path = tmp_path / "golden.json"
    save_json(fake, path)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "csv"],
        ["--format", "csv", "--by", "layer"],
        ["--format", "json"],
        ["--format", "markdown"],
        ["--format", "markdown", "--by", "layer"],
        ["--format", "table"],
        ["--format", "table", "--by", "layer"],
        ["--format", "table", "--top", "2"],
    ],
    ids=["csv", "csv-layer", "json", "markdown", "markdown-layer", "table", "table-layer", "top2"],
)
def test_cli_report_fake(
    fake_json_file: Path, args: list[str], norm: Normaliser, request: pytest.FixtureRequest
) -> None:
    result = invoke("report", str(fake_json_file), *args)
    check_golden(golden_name(request), cli_record(result, norm))


@pytest.mark.parametrize("suffix", [".csv", ".json", ".md", ".txt", ".parquet"])
def test_cli_report_fake_to_file(
    fake_json_file: Path, suffix: str, tmp_path: Path, norm: Normaliser
) -> None:
    """`report -o FILE` by extension: the file's text (parquet: schema and metadata keys)."""
    out = tmp_path / f"out{suffix}"
    result = invoke("report", str(fake_json_file), "--by", "layer", "-o", str(out))
    body = parquet_schema(out) if suffix == ".parquet" else out.read_text(encoding="utf-8")
    name = f"test_cli_report_fake_to_file.{suffix[1:]}"
    check_golden(name, cli_record(result, norm) + "--- file\n" + norm.text(body))


# ------------------------------------------------------------ CLI: timing-free outputs

COMMANDS = [
    "profile",
    "report",
    "zoo",
    "env",
    "build-lut",
    "merge",
    "spaces",
    "arch",
    "predict",
    "validate",
    "compare",
]


@pytest.mark.parametrize("command", ["(main)", *COMMANDS])
def test_cli_help(command: str, norm: Normaliser, request: pytest.FixtureRequest) -> None:
    args = ["--help"] if command == "(main)" else [command, "--help"]
    check_golden(golden_name(request), cli_record(invoke(*args), norm))


def _words(text: str) -> list[str]:
    """A --help text's words, without the box lines: the same at any terminal width."""
    return text.translate(str.maketrans("", "", "│╭╮╰╯─")).split()


@pytest.mark.parametrize("command", COMMANDS)
def test_docs_help_captures_match_the_cli(command: str) -> None:
    """docs/cli.md's "Options of every command" shows each command's current --help."""
    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    found = re.search(rf"### `latprof {command}`\n\n```\n(.*?)\n```", docs, re.S)
    assert found, f"docs/cli.md has no --help capture of {command}"
    assert _words(found.group(1)) == _words(invoke(command, "--help").stdout)


def test_cli_no_args_and_version(norm: Normaliser) -> None:
    text = cli_record(invoke(), norm) + cli_record(invoke("--version"), norm).replace(
        "latprof 0.1.0", "latprof <version>"
    )
    check_golden("test_cli_no_args_and_version", text)


@pytest.mark.parametrize("fmt", [None, "csv", "json", "markdown", "table", "parquet"])
@pytest.mark.parametrize("command", ["zoo", "spaces"])
def test_cli_listing(
    command: str, fmt: str | None, norm: Normaliser, request: pytest.FixtureRequest
) -> None:
    args = [command] if fmt is None else [command, "--format", fmt]
    check_golden(golden_name(request).replace("None", "default"), cli_record(invoke(*args), norm))


ZOO_ARCHS = [
    "tfnas-a",
    "tfnas-b",
    "tfnas-c",
    "tfnas-d",
    "tfnas-a-wose",
    "tfnas-b-wose",
    "tfnas-c-wose",
    "tfnas-d-wose",
    "tfnas-cpu-a",
    "tfnas-cpu-b",
    "tfnas-mbv2-a",
    "tfnas-mbv2-b",
]


@pytest.mark.parametrize("arch", ZOO_ARCHS)
def test_cli_arch(arch: str, norm: Normaliser, request: pytest.FixtureRequest) -> None:
    """Every zoo arch as JSON (the default on a pipe), TOML and the CSV breakdown."""
    parts = [
        cli_record(invoke("arch", f"zoo:{arch}", *fmt), norm)
        for fmt in ([], ["--format", "toml"], ["--format", "csv"])
    ]
    check_golden(golden_name(request), "".join(parts))


@pytest.mark.parametrize("fmt", ["markdown", "table"])
def test_cli_arch_formats(fmt: str, norm: Normaliser, request: pytest.FixtureRequest) -> None:
    check_golden(golden_name(request), cli_record(invoke("arch", "zoo:tfnas-a", "-f", fmt), norm))


def test_cli_arch_files(tmp_path: Path, norm: Normaliser) -> None:
    """arch -o FILE.toml / .json, and an arch file read back (tiny-arch.json, tiny space)."""
    parts = []
    for name in ("a.toml", "a.json"):
        out = tmp_path / name
        parts.append(cli_record(invoke("arch", "zoo:tfnas-mbv2-b", "-o", str(out)), norm))
        parts.append("--- file\n" + norm.text(out.read_text(encoding="utf-8")))
    parts.append(cli_record(invoke("arch", str(TINY_ARCH), "-f", "csv"), norm))
    check_golden("test_cli_arch_files", "".join(parts))


# (id, args); "{tmp}" in args is the test's tmp folder (with other.parquet and p.xlsx in it)
ERRORS: list[tuple[str, list[str]]] = [
    ("profile-missing-file", ["profile", "missing.py"]),
    ("profile-ambiguous", ["profile", str(MODELS / "two_instances.py"), "--input-shape", "1,4"]),
    ("profile-bad-shape", ["profile", GOOD, "--input-shape", "1,3,x"]),
    ("profile-zero-shape", ["profile", GOOD, "--input-shape", "1,0,8"]),
    ("profile-wrong-shape-runs", ["profile", GOOD, "--input-shape", "1,5,8,8", *FAST]),
    ("profile-trials-0", ["profile", GOOD, "--trials", "0"]),
    ("profile-warmup-negative", ["profile", GOOD, "--warmup", "-2"]),
    ("profile-threads-0", ["profile", GOOD, "--threads", "0"]),
    ("profile-batch-negative", ["profile", GOOD, "--batch-size", "-1"]),
    ("profile-device-tpu", ["profile", GOOD, "--device", "tpu"]),
    ("profile-dtype-int8", ["profile", GOOD, "--dtype", "int8"]),
    ("profile-format-xml", ["profile", GOOD, "--format", "xml"]),
    ("profile-parquet-stdout", ["profile", GOOD, "--format", "parquet"]),
    ("profile-bad-extension", ["profile", GOOD, "-o", "out.xlsx"]),
    ("profile-missing-folder", ["profile", GOOD, "-o", "/nonexistent/dir/p.csv"]),
    ("profile-by-tree", ["profile", GOOD, "--by", "tree"]),
    ("profile-by-op-without-module", ["profile", GOOD, "--by", "op"]),
    ("profile-top-negative", ["profile", GOOD, "--top", "-1"]),
    ("profile-compiled", ["profile", str(MODELS / "compiled.py")]),
    ("profile-factory-raises", ["profile", str(MODELS / "factory_raises.py")]),
    ("profile-zoo-unknown", ["profile", "zoo:nope"]),
    ("profile-no-model", ["profile"]),
    ("report-missing", ["report", "missing.parquet"]),
    ("report-not-latprof-parquet", ["report", "{tmp}/other.parquet"]),
    ("report-bad-extension", ["report", "{tmp}/p.xlsx"]),
    ("build-lut-shard-3of2", ["build-lut", "--shard", "3/2"]),
    ("build-lut-shard-0of0", ["build-lut", "--shard", "0/0"]),
    ("build-lut-shard-junk", ["build-lut", "--shard", "x"]),
    ("build-lut-space-and-models", ["build-lut", "--space", "x", "--models", "zoo:cnn"]),
    ("build-lut-remeasure-without-resume", ["build-lut", "--remeasure-noisy"]),
    ("build-lut-width-step-0", ["build-lut", "--width-step", "0"]),
    ("build-lut-trials-0", ["build-lut", "--trials", "0"]),
    ("build-lut-batch-0", ["build-lut", "--space", "uboost", "--batch-size", "0", "--dry-run"]),
    ("validate-warmup-0", ["validate", "--lut", "missing.parquet", "--warmup", "0"]),
    ("build-lut-device-cuda-x", ["build-lut", "--device", "cuda:x"]),
    ("build-lut-unknown-space", ["build-lut", "--space", "nope", "--dry-run"]),
    ("build-lut-context", ["build-lut", "--context", "nearby", "--dry-run"]),
    ("build-lut-statistic", ["build-lut", "--statistic", "p50", "--dry-run"]),
    ("build-lut-models-networks", ["build-lut", "--models", "zoo:cnn", "--context", "networks"]),
    ("build-lut-not-parquet", ["build-lut", "--space", str(TINY), "-o", "{tmp}/t.csv", *FAST]),
    ("merge-not-parquet", ["merge", "a.parquet", "b.parquet", "-o", "{tmp}/m.csv"]),
    ("merge-missing", ["merge", "{tmp}/a.parquet", "-o", "{tmp}/m.parquet"]),
    ("arch-unknown-zoo", ["arch", "zoo:nope"]),
    ("arch-missing-file", ["arch", "{tmp}/nope.json"]),
    ("arch-bad-output", ["arch", "zoo:tfnas-a", "-o", "{tmp}/a.yaml"]),
    ("predict-missing-lut", ["predict", "zoo:tfnas-a", "--lut", "{tmp}/nope.parquet"]),
    ("validate-missing-lut", ["validate", "--lut", "{tmp}/nope.parquet"]),
    ("validate-trials-0", ["validate", "--lut", "{tmp}/nope.parquet", "--trials", "0"]),
    ("compare-one-sample", ["compare", "--space", str(TINY), "--samples", "1"]),
    ("compare-plot-jpg", ["compare", "--space", str(TINY), "--plot", "{tmp}/p.jpg"]),
    ("env-save-without-calibrate", ["env", "--save", "{tmp}/c.json"]),
    ("env-dtype-int8", ["env", "--dtype", "int8"]),
    ("unknown-command", ["nope"]),
    ("unknown-option", ["zoo", "--nope"]),
]
if not torch.cuda.is_available():
    ERRORS += [
        ("profile-cuda-unavailable", ["profile", GOOD, "--device", "cuda"]),
        ("env-cuda-unavailable", ["env", "--device", "cuda"]),
    ]


@pytest.mark.parametrize(("case", "args"), ERRORS, ids=[e[0] for e in ERRORS])
def test_cli_error(
    case: str, args: list[str], tmp_path: Path, norm: Normaliser, request: pytest.FixtureRequest
) -> None:
    import pandas as pd

    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "other.parquet")
    (tmp_path / "p.xlsx").write_bytes(b"")
    result = invoke(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    check_golden(f"test_cli_error.{case}", cli_record(result, norm))


# ------------------------------------------------- CLI runs on a real clock (masked)

PROFILE_TIMES = {
    "time_us",
    "time_us_median",
    "time_us_std",
    "time_us_min",
    "time_us_iqr",
    "outliers",
    "share",
}


def test_cli_profile_layer_csv_masked(norm: Normaliser) -> None:
    """A real-clock profile through the CLI: columns, calls, MACs, params, shapes."""
    result = invoke("profile", GOOD, *FAST, "--by", "layer", "--format", "csv")
    assert result.exit_code == 0, result.output
    by_category = invoke("profile", GOOD, *FAST)
    assert by_category.exit_code == 0, by_category.output
    text = (
        "--- --by layer\n"
        + mask_csv(result.stdout, PROFILE_TIMES)
        + "--- --by category (rows sorted: their order follows the measured times)\n"
        + mask_csv(by_category.stdout, PROFILE_TIMES, sort=True)
    )
    check_golden("test_cli_profile_layer_csv_masked", norm.text(text))


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_cli_profile_file_schema(suffix: str, tmp_path: Path, norm: Normaliser) -> None:
    """A profile saved by the CLI: columns and types, metadata key tree (not values)."""
    out = tmp_path / f"p{suffix}"
    result = invoke("profile", GOOD, *FAST, "-o", str(out))
    assert result.exit_code == 0, result.output
    if suffix == ".parquet":
        text = parquet_schema(out)
        meta = json.loads(pq.read_schema(out).metadata[b"latprof"])
    else:
        meta = json.loads(out.read_text(encoding="utf-8"))
        layers = meta["layers"]
        text = "layer columns:\n" + "".join(
            f"  {k}: {json_type(v)}\n" for k, v in layers[0].items()
        )
        text += "keys:\n" + "\n".join(key_tree(meta, "  ")) + "\n"
        categories = sorted(c["category"] for c in meta["categories"])  # ordered by time
        text += "categories (sorted):\n" + "".join(f"  {c}\n" for c in categories)
    env = norm.env(meta["environment"])
    text += "environment (masked):\n" + json.dumps(env, indent=2) + "\n"
    text += "config:\n" + json.dumps(meta["config"], indent=2) + "\n"
    check_golden(f"test_cli_profile_file_schema.{suffix[1:]}", norm.text(text))


def test_cli_env_keys(norm: Normaliser) -> None:
    result = invoke("env", "--format", "json", "--threads", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    csv_keys = [r["key"] for r in csv.DictReader(io.StringIO(invoke("env").stdout))]
    text = "json:\n" + json.dumps(norm.env(data), indent=2) + "\ncsv keys:\n" + "\n".join(csv_keys)
    check_golden("test_cli_env_keys", norm.text(text))


@pytest.fixture(scope="module")
def tiny_lut_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The tiny space's table, built as in tests/conftest.py (tiny_lut), with its result."""
    out = tmp_path_factory.mktemp("golden-lut") / "tiny.parquet"
    args = ["build-lut", "--space", str(TINY), "--width-step", "4", *FAST, "-o", str(out)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return out, result


LUT_TIMES = {
    "time_us_median",
    "time_us_p10",
    "time_us_mean",
    "time_us_std",
    "time_us_iqr",
    "time_us_min",
    "outliers",
    "noisy",
    "time_us",
    "share",
    "time_us_median_sum",
}


def test_lut_schema(tiny_lut_build: tuple[Path, Any]) -> None:
    path, result = tiny_lut_build
    lut_dir = path.parent
    norm = Normaliser((lut_dir, "<tmp>"), (REPO, "<repo>"))
    meta = json.loads(pq.read_schema(path).metadata[b"latprof"])
    shown = {k: v for k, v in meta.items() if k not in ("environment", "device_name", "torch")}
    check = shown["self_check"]  # measured numbers: keep what was checked, mask the results
    shown["self_check"] = {k: check[k] for k in ("population", "k", "missed", "seed")} | {
        k: MASK for k in ("median_abs_error_pct", "max_abs_error_pct", "kendall_tau", "archs")
    }
    fitted = shown["correction"]  # measured too: keep the fit's shape, mask its numbers
    shown["correction"] = {
        k: (v if k in ("features", "k", "seed") else MASK) for k, v in fitted.items()
    }
    if shown.get("width_align") is not None:  # the CPU's vector width: 16 on AVX-512, 8 AVX2
        shown["width_align"] = "<width_align>"
    # the first line of the build's stdout; a second line about noisy entries comes and goes
    first = re.sub(
        r"in [\d.]+ s on .*?, batch",
        f"in {MASK} s on <device_name>, batch",
        result.stdout.splitlines()[0],
    )
    text = (
        parquet_schema(path)
        + "metadata (without environment, device_name, torch):\n"
        + json.dumps(shown, indent=2)
        + "\nenvironment (masked):\n"
        + json.dumps(norm.env(meta["environment"]), indent=2)
        + f"\nbuild stdout, first line:\n{first}\n"
    )
    check_golden("test_lut_schema", norm.text(text))


@pytest.mark.parametrize(
    "args",
    [
        ["report", "{lut}"],
        ["report", "{lut}", "--by", "layer"],
        ["predict", str(TINY_ARCH), "--lut", "{lut}", "-f", "csv"],
    ],
    ids=["report-category", "report-layer", "predict"],
)
def test_lut_cli_masked(
    tiny_lut_build: tuple[Path, Any], args: list[str], request: pytest.FixtureRequest
) -> None:
    """Reports and a prediction from the tiny table: keys, shapes, MACs; times masked."""
    path, _ = tiny_lut_build
    norm = Normaliser((path.parent, "<tmp>"), (REPO, "<repo>"))
    result = invoke(*(a.replace("{lut}", str(path)) for a in args))
    assert result.exit_code == 0, result.output
    stderr = re.sub(r"[\d,]+\.\d+ µs", f"{MASK} µs", result.stderr)
    # the self-check's figures (and whether they pass the trust thresholds) are measured
    measured = ("self-check", "correction fitted")
    stderr = "".join(
        line for line in stderr.splitlines(True) if not any(m in line for m in measured)
    )
    # report --by category orders ops by measured time: sort the rows
    body = mask_csv(result.stdout, LUT_TIMES, sort="category" in request.node.name)
    text = f"exit code: {result.exit_code}\n--- stdout\n{body}"
    check_golden(golden_name(request), norm.text(text + f"--- stderr\n{stderr}"))


def _mask_numbers_in_lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        yield re.sub(r"\d+\.\d+( ms| s)", rf"{MASK}\1", line)


def test_lut_dry_run_masked(tmp_path: Path, norm: Normaliser) -> None:
    out = tmp_path / "t.parquet"
    args = ["build-lut", "--space", str(TINY), "--width-step", "4", *FAST, "-o", str(out)]
    result = invoke(*args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    text = "\n".join(_mask_numbers_in_lines(cli_record(result, norm)))
    check_golden("test_lut_dry_run_masked", norm.text(text))
