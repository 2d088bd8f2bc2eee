"""build-lut / merge / report on lookup tables, end to end through the CLI."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from latprof.cli import app, expand_multi
from latprof.lut import jobs as jobsmod
from latprof.space.builtin import get_space

MODELS = Path(__file__).parent / "models"
FAST = ["--warmup", "1", "--trials", "3", "--threads", "1"]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, expand_multi(list(args)))


def test_expand_multi() -> None:
    assert expand_multi(["build-lut", "--models", "a", "b", "--trials", "3"]) == [
        "build-lut",
        "--models",
        "a",
        "--models",
        "b",
        "--trials",
        "3",
    ]


def test_models_table_with_category_summary(tmp_path: Path) -> None:
    out = tmp_path / "layers.parquet"
    good, shared = str(MODELS / "good.py"), str(MODELS / "shared.py")
    result = invoke("build-lut", "--models", good, shared, *FAST, "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas()
    # good.py: Conv2d, ReLU, Flatten, Linear; shared.py: Linear(4,4), ReLU at 1x4 (called
    # twice, same shape -> one entry each)
    assert len(table) == 6 and table["key"].is_unique
    assert set(table["op"]) == {"Conv2d", "ReLU", "Flatten", "Linear"}
    conv = table[table["op"] == "Conv2d"].iloc[0]
    assert (conv["c_in"], conv["c_out"], conv["kernel"], conv["h"]) == (3, 4, 3, 8)
    meta = json.loads(pq.read_schema(out).metadata[b"latprof"])
    assert meta["source"] == "models" and meta["models"] == [good, shared]
    assert len(meta["model_keys"][shared]) == 4  # fc, act, fc, act in call order
    cats = invoke("report", str(out), "--by", "category")
    df = pd.read_csv(io.StringIO(cats.stdout)).set_index("category")
    assert df.loc["Linear", "entries"] == 2 and df.loc["ReLU", "entries"] == 2


def test_resume_existing_and_refuse_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    good = str(MODELS / "good.py")
    assert invoke("build-lut", "--models", good, *FAST, "-o", str(out)).exit_code == 0
    again = invoke("build-lut", "--models", good, *FAST, "-o", str(out))
    assert again.exit_code == 2 and "already exists; pass --resume" in again.stderr
    resumed = invoke("build-lut", "--models", good, *FAST, "-o", str(out), "--resume")
    assert resumed.exit_code == 0 and "(0 measured, 4 reused)" in resumed.stdout
    other = invoke(
        "build-lut", "--models", good, *FAST, "-o", str(out), "--resume", "--batch-size", "2"
    )
    assert other.exit_code == 2 and "another space or environment (batch: 1 != 2" in other.stderr
    shared = str(MODELS / "shared.py")
    more = invoke("build-lut", "--models", good, shared, *FAST, "-o", str(out), "--resume")
    assert more.exit_code == 2
    assert f"{out} is a layer table of {good}, not of {good}, {shared}" in more.stderr
    both = tmp_path / "both.parquet"
    assert invoke("build-lut", "--models", good, shared, *FAST, "-o", str(both)).exit_code == 0
    swapped = invoke("build-lut", "--models", shared, good, *FAST, "-o", str(both), "--resume")
    assert swapped.exit_code == 0 and "(0 measured, 6 reused)" in swapped.stdout  # any order
    missing = invoke("predict", shared, "--lut", str(out))
    assert missing.exit_code == 2 and "entries are not in" in missing.stderr
    assert "no prediction for" in missing.stderr and "predicted" not in missing.stderr
    mismatched = invoke("predict", good, "--lut", str(out), "--batch-size", "2", "--allow-mismatch")
    assert mismatched.exit_code == 0, mismatched.output
    assert "as the table was built (batch 1, float32, cpu), not as the target" in mismatched.stderr
    assert "pass --measure-misses, or build a table with --models" in missing.stderr
    assert "--resume" not in missing.stderr
    compared = invoke("compare", "--space", "uboost", "--lut", str(out), "--samples", "2")
    assert compared.exit_code == 2
    assert "is a layer table (build-lut --models), not a table of space 'uboost'" in (
        compared.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2"], "--shard '3/2': need N >= 1 and 0 <= I < N"),
        (["--shard", "0/0"], "--shard '0/0'"),
        (["--space", "x", "--models", "zoo:cnn"], "either --space or --models"),
        (["--remeasure-noisy"], "add --resume"),
        (["--width-step", "0"], "--width-step must be at least 1"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--device", "cuda:x"], "unknown device"),
    ],
)
def test_build_lut_bad_input(args: list[str], message: str) -> None:
    result = invoke("build-lut", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_resume_on_corrupt_or_foreign_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"garbage")
    result = invoke(
        "build-lut", "--models", str(MODELS / "good.py"), *FAST, "-o", str(junk), "--resume"
    )
    assert result.exit_code == 2 and "not a readable Parquet file" in result.stderr
    prof = tmp_path / "p.parquet"
    assert invoke("profile", str(MODELS / "good.py"), *FAST, "-o", str(prof)).exit_code == 0
    result = invoke(
        "build-lut", "--models", str(MODELS / "good.py"), *FAST, "-o", str(prof), "--resume"
    )
    assert result.exit_code == 2 and "'profile' file, not a lookup table" in result.stderr


def test_merge_cli_detects_conflicts(tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    good = str(MODELS / "good.py")
    for path in (a, b):
        assert invoke("build-lut", "--models", good, *FAST, "-o", str(path)).exit_code == 0
    result = invoke("merge", str(a), str(b), "-o", str(tmp_path / "m.parquet"))
    assert result.exit_code == 2 and "conflicting key" in result.stderr


def test_merge_cli_shards(tmp_path: Path) -> None:
    good = str(MODELS / "good.py")
    paths = []
    for i in range(2):
        path = tmp_path / f"s{i}.parquet"
        r = invoke("build-lut", "--models", good, *FAST, "--shard", f"{i}/2", "-o", str(path))
        assert r.exit_code == 0, r.output
        paths.append(str(path))
    merged = tmp_path / "m.parquet"
    result = invoke("merge", *paths, "-o", str(merged))
    assert result.exit_code == 0, result.output
    assert len(pq.read_table(merged)) == 4
    meta = json.loads(pq.read_schema(merged).metadata[b"latprof"])
    assert meta["merged_from"] == 2 and "shard" not in meta
    predicted = invoke("predict", good, "--lut", str(merged))
    assert "this table carries no self-check (merged from shards" in predicted.stderr


def test_unknown_space_lists_known() -> None:
    result = invoke("build-lut", "--space", "nope", "--dry-run")
    assert result.exit_code == 2
    assert "unknown space 'nope'; known: mbv2, tfnas, uboost" in result.stderr
    csv = invoke("build-lut", "--space", "uboost", "--dry-run", "-o", "t.csv")
    assert csv.exit_code == 2 and "lookup tables are Parquet files" in csv.stderr


def test_space_dry_run_and_small_build(tmp_path: Path) -> None:
    dry = invoke("build-lut", "--space", "uboost", "--dry-run", *FAST)
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("42 entries, 42 to measure")
    assert "estimated build time:" in dry.stdout and "an estimate" in dry.stdout
    # uboost: 8 entries in each of its busiest slots -> 8 context networks
    assert "go into 8 context networks" in dry.stdout and "measured 3 of them" in dry.stdout
    # the fit and the self-check run in fresh processes: their start-up is named (Linux)
    assert "the fit and self-check each start a fresh process: about" in dry.stdout
    alone = invoke("build-lut", "--space", "uboost", "--dry-run", "--context", "alone", *FAST)
    assert alone.exit_code == 0, alone.output
    assert "measured 5 sample entries for real" in alone.stdout and "cost proxy" in alone.stdout
    out = tmp_path / "u.parquet"
    result = invoke("build-lut", "--space", "uboost", "--shard", "0/6", *FAST, "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas()
    assert (table["status"] == "ok").all() and len(table) > 0
    assert (table["time_us_p10"] <= table["time_us_median"]).all()
    meta = json.loads(pq.read_schema(out).metadata[b"latprof"])
    assert meta["space"] == "uboost" and meta["shard"] == [0, 6] and len(meta["space_hash"]) == 16
    assert (meta["context"], meta["statistic"]) == ("networks", "p10")
    # shard 0/6 holds exactly the keys whose sha1 (first 12 hex digits) is 0 mod 6, though
    # its entries are measured in networks whose other slots hold any entry (fillers)
    every = [j.key for j in jobsmod.space_jobs(get_space("uboost"), 1, "float32", 8)]
    assert len(every) == 42
    mine = {k for k in every if int(hashlib.sha1(k.encode()).hexdigest()[:12], 16) % 6 == 0}
    assert set(table["key"]) == mine


def test_shards_partition_the_keys() -> None:
    keys = [j.key for j in jobsmod.space_jobs(get_space("uboost"), 1, "float32", 8)]
    shards = [{k for k in keys if jobsmod.in_shard(k, (i, 4))} for i in range(4)]
    assert sum(len(s) for s in shards) == len(keys)  # disjoint
    assert set().union(*shards) == set(keys)  # and nothing left out
    assert all(shards)  # 42 keys: every shard gets some
    assert all(jobsmod.in_shard(k, None) for k in keys)


def test_remeasure_noisy_measures_exactly_the_noisy_and_failed_entries(tmp_path: Path) -> None:
    from latprof.lut.table import LatencyTable

    out = tmp_path / "t.parquet"
    good = str(MODELS / "good.py")
    assert invoke("build-lut", "--models", good, *FAST, "-o", str(out)).exit_code == 0
    table = LatencyTable.load(out)
    noisy, failed, *kept = sorted(table.rows)
    table.rows[noisy]["noisy"] = True
    table.rows[noisy]["samples_us"] = [-1.0, -1.0, -1.0]  # a marker: replaced if re-measured
    table.rows[failed].update(
        status="failed", error="RuntimeError: flaky", samples_us=[], noisy=None
    )
    for key in kept:  # quiet ok entries (whatever this machine measured), kept as they are
        table.rows[key].update(noisy=False, samples_us=[-2.0, -2.0, -2.0])
    table.save(out)
    resume = ["--models", good, *FAST, "-o", str(out), "--resume"]
    dry = invoke("build-lut", *resume, "--remeasure-noisy", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.startswith("4 entries, 2 to measure"), dry.output
    assert invoke("build-lut", *resume, "--dry-run").stdout.startswith("4 entries, 0 to measure")
    plain = invoke("build-lut", *resume)
    assert plain.exit_code == 0 and "(0 measured, 4 reused)" in plain.stdout
    again = invoke(
        "build-lut", "--models", good, *FAST, "-o", str(out), "--resume", "--remeasure-noisy"
    )
    assert again.exit_code == 0, again.output
    assert "(2 measured, 2 reused)" in again.stdout
    rows = LatencyTable.load(out).rows
    assert sorted(rows) == sorted([noisy, failed, *kept])
    for key in (noisy, failed):
        assert rows[key]["status"] == "ok" and len(rows[key]["samples_us"]) == 3
        assert min(rows[key]["samples_us"]) >= 0
    for key in kept:
        assert rows[key]["samples_us"] == [-2.0, -2.0, -2.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "nearby"], "--context 'nearby': choose networks, models or alone"),
        (["--statistic", "p50"], "--statistic 'p50': choose one of p10, median, mean, min"),
        (
            ["--models", "zoo:cnn", "--context", "networks"],
            "--context networks needs a search space",
        ),
        (["--space", "mbv2", "--context", "models"], "--context models times entries inside"),
    ],
)
def test_context_and_statistic_options_are_checked(args: list[str], message: str) -> None:
    result = invoke("build-lut", *args, "--dry-run")
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output


def test_spaces_listing() -> None:
    result = invoke("spaces")
    df = pd.read_csv(io.StringIO(result.stdout)).set_index("name")
    assert df.loc["uboost", "entries_default"] == 42


def test_a_model_that_fails_is_exit_3_naming_the_layer(tmp_path: Path) -> None:
    """build-lut --models, predict and validate, like profile: one line, exit 3."""
    wrong = tmp_path / "wrongshape.py"
    wrong.write_text(
        "from torch import nn\ninput_shape = (1, 5)\nmodel = nn.Sequential(nn.Linear(4, 4))\n"
    )
    raising = tmp_path / "raising.py"
    raising.write_text(
        "import torch\nfrom torch import nn\ninput_shape = (1, 4)\n\n"
        "class Bad(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n"
        "    def forward(self, x):\n        x = self.fc(x)\n"
        "        raise ValueError('bad things')\n\n"
        "model = Bad()\n"
    )
    table = tmp_path / "good.parquet"
    built = invoke("build-lut", "--models", str(MODELS / "good.py"), *FAST, "-o", str(table))
    assert built.exit_code == 0, built.output
    expected = {
        wrong: "layer '0' (Linear) failed on input 1x5: mat1 and mat2 shapes cannot be multiplied",
        raising: "the model's forward failed outside any leaf layer after layer 'fc' "
        "(inputs 1x4): bad things",
    }
    for model, message in expected.items():
        commands = [
            ["build-lut", "--models", str(model), *FAST, "-o", str(tmp_path / "x.parquet")],
            ["predict", str(model), "--lut", str(table)],
            ["validate", str(model), "--lut", str(table)],
        ]
        for args in commands:
            result = invoke(*args)
            assert result.exit_code == 3, (args, result.output)
            assert message in result.output and "unexpected" not in result.output
            assert "check the model's inputs (input_shape or example_input" in result.output
            errors = [line for line in result.output.splitlines() if "latprof: error" in line]
            assert len(errors) == 1 and errors[0].startswith("latprof: error: "), result.output
            assert "Traceback" not in result.output


def test_a_failing_model_is_left_as_found_and_our_own_failures_stay_internal() -> None:
    import torch
    from torch import nn

    from latprof.errors import ModelRunError
    from latprof.lut import model_layers

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).train()
    with pytest.raises(ModelRunError, match=r"layer '0' \(Linear\) failed on input 1x5"):
        model_layers.entry_calls(model, (torch.zeros(1, 5),), {})
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all("forward" not in vars(m) for m in model.modules())

    # a failure that is not the model's (the model runs when probed): raised as it is
    class Flaky(nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise KeyError("ours")
            return x

    with pytest.raises(KeyError, match="ours"):
        model_layers.entry_calls(Flaky(), (torch.zeros(1, 4),), {})
