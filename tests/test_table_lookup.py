"""LatencyTable lookup and interpolation edge cases that mutation testing found untested
(latprof/lut/table.py): the ends of the measured widths, SE width 1, mid width 1, messages.
Expected values are worked out by hand; the basic cases are in test_lut.py."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from latprof.errors import FileFormatError, UsageError
from latprof.lut.table import (
    SCHEMA,
    LatencyTable,
    check_target,
    describe,
    report_rows,
    trust_problem,
)
from tests.test_lut import META, entry_key, fake_table


def test_a_width_at_either_end_with_another_se_takes_that_row() -> None:
    # rows m16 se4 (100 µs) and m24 se6 (200 µs); the queries keep the width but not the se,
    # so they are not rows themselves: the neighbour below and above is the same width
    table = fake_table({entry_key(16, 4): 100.0, entry_key(24, 6): 200.0})
    assert table.get(entry_key(16, 5)) == 100.0
    assert table.get(entry_key(24, 7)) == 200.0
    # in between: 100 + (20 - 16) / (24 - 16) · (200 - 100) = 150
    assert table.get(entry_key(20, 5)) == pytest.approx(150.0)


def test_se_width_one_is_an_se() -> None:
    # rows m8 se1 (10 µs) and m16 se1 (30 µs): query m12 se1 -> 10 + 4/8 · 20 = 20
    table = fake_table({entry_key(8, 1): 10.0, entry_key(16, 1): 30.0})
    assert table.get(entry_key(12, 1)) == pytest.approx(20.0)
    assert table.get(entry_key(12, 0)) is None  # no-SE query: se 1 rows don't qualify


def test_mid_width_one_is_a_width() -> None:
    # rows m1 (5 µs) and m5 (25 µs): m3 -> 5 + (3 - 1) / (5 - 1) · 20 = 15
    table = fake_table({entry_key(1, 0): 5.0, entry_key(5, 0): 25.0})
    assert table.get(entry_key(3, 0)) == pytest.approx(15.0)
    # m1 with se 2 next to a row m1 se1 (7 µs): the same width, the closest se
    se_table = fake_table({entry_key(1, 1): 7.0})
    assert se_table.get(entry_key(1, 2)) == 7.0


def test_failed_rows_are_the_rows_not_ok() -> None:
    table = fake_table({entry_key(16, 0): 10.0})
    table.add({"key": "bad", "status": "failed", "error": "boom"})
    assert [r["key"] for r in table.failed_rows()] == ["bad"]
    assert [r["key"] for r in table.ok_rows()] == [entry_key(16, 0)]


def test_duplicate_key_and_missing_statistic_messages() -> None:
    table = fake_table({entry_key(16, 0): 10.0})
    with pytest.raises(UsageError, match=r"^duplicate key 'mbinvres\|k3\|s1\|m16\|"):
        table.add({"key": entry_key(16, 0), "status": "ok"})
    p10 = LatencyTable({**META, "statistic": "p10"})
    p10.add({"key": "k", "status": "ok", "time_us_median": 1.0})  # no time_us_p10
    message = "entry k has no time_us_p10 (the table's statistic is 'p10'); rebuild the table"
    with pytest.raises(FileFormatError, match="^" + re.escape(message) + "$"):
        p10.get("k")


def test_check_target_refuses_by_default_and_says_how_to_proceed() -> None:
    message = (
        "the lookup table was measured in another environment (batch: table 1, target 8; "
        "threads: table 1, target 4); rebuild it for this target or pass --allow-mismatch"
    )
    with pytest.raises(UsageError, match="^" + re.escape(message) + "$"):
        check_target(META, batch=8, threads=4)
    assert check_target(META, True, batch=8) == ["batch: table 1, target 8"]


def test_report_by_category_sums_each_op() -> None:
    table = LatencyTable(dict(META))
    rows = [
        ("conv|a", "conv", "ok", 10.0, 100.0, True),
        ("conv|b", "conv", "failed", None, None, None),
        ("conv|c", "conv", "ok", 30.0, None, True),
        ("conv|d", "conv", "failed", None, None, None),
        ("pool|e", "pool_fc", "ok", 45.0, 7.0, True),
        ("relu|f", "relu", "ok", 2.0, 0.0, False),
    ]
    for key, op, status, t, macs, noisy in rows:
        table.add(
            {
                "key": key,
                "op": op,
                "status": status,
                "time_us_median": t,
                "macs": macs,
                "noisy": noisy,
            }
        )
    # conv: 4 entries, 2 failed, 10 + 30 = 40 µs, 100 + 0 MACs, 2 noisy; sorted by time, largest
    # first: pool_fc 45, conv 40, relu 2
    assert report_rows(table, "category") == [
        {"category": "pool_fc", "entries": 1, "failed": 0, "time_us_median_sum": 45.0,
         "macs": 7.0, "noisy": 1},
        {"category": "conv", "entries": 4, "failed": 2, "time_us_median_sum": 40.0,
         "macs": 100.0, "noisy": 2},
        {"category": "relu", "entries": 1, "failed": 0, "time_us_median_sum": 2.0,
         "macs": 0.0, "noisy": 0},
    ]  # fmt: skip
    layers = report_rows(table, "layer")
    assert [r["key"] for r in layers] == [r[0] for r in rows]
    assert layers[2]["time_us_median"] == 30.0 and "samples_us" not in layers[2]


def test_saved_schema_is_the_tables_even_for_empty_columns(tmp_path: Path) -> None:
    # every row lacks samples_us, macs...: without the schema they would be saved as nulls
    table = fake_table({entry_key(16, 0): 10.0})
    path = tmp_path / "t.parquet"
    table.save(path)
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)


def test_self_check_descriptions() -> None:
    assert describe(None) == "no self-check"
    assert describe({"k": 0, "population": "random"}) == (
        "self-check: no random architecture could be predicted"
    )
    models = {"k": 5, "population": "models", "median_abs_error_pct": 1.26,
              "max_abs_error_pct": 4.0, "kendall_tau": None}  # fmt: skip
    assert describe(models) == (
        "self-check: median |error| 1.3 %, max 4.0 %, Kendall τ n/a over 5 models"
    )
    archs = {**models, "population": "random", "kendall_tau": 0.876, "seed": 7, "k": 20}
    assert describe(archs) == (
        "self-check: median |error| 1.3 %, max 4.0 %, Kendall τ 0.88 over 20 random "
        "architectures, seed 7"
    )
    assert trust_problem({"source": "space"}) == (
        "this table carries no self-check (built with --self-check 0, from --archs or a shard, "
        "or before latprof had one): run `latprof validate ARCH --lut TABLE` on the archs it "
        "was built for, or `latprof validate --lut TABLE --samples 20` for a whole-space "
        "table, before trusting its sums"
    )
    # a layer table is validated on its models; --samples would be refused
    layers = trust_problem({"source": "models"})
    assert "`latprof validate MODEL --lut TABLE`" in layers and "--samples" not in layers
    merged = trust_problem({"source": "space", "merged_from": ["a", "b"]})
    assert "merged from shards" in merged and "--resume -o TABLE" in merged


# widths that are multiples of the table's width_align (16) and widths that are not: rows at
# 32 (100 µs), 48 (120) and 64 (140) are aligned, 40 (130) and 56 (150) are not
ALIGNED_ROWS = {32: 100.0, 40: 130.0, 48: 120.0, 56: 150.0, 64: 140.0}


def aligned_table(align: int | None) -> LatencyTable:
    table = fake_table({entry_key(m, 0): us for m, us in ALIGNED_ROWS.items()})
    table.meta["width_align"] = align
    return table


def test_widths_are_interpolated_from_their_own_kind() -> None:
    table = aligned_table(16)
    # unaligned 44 between unaligned 40 and 56: 130 + 4/16 · 20 = 135 (linear over all: 125)
    assert table.get(entry_key(44, 0)) == pytest.approx(135.0)
    assert table.get(entry_key(52, 0)) == pytest.approx(145.0)  # 130 + 12/16 · 20
    # aligned 48 is a row; a width between two aligned rows only would be one of them
    assert table.get(entry_key(48, 0)) == 120.0
    assert table.get(entry_key(80, 0)) is None  # outside the measured widths
    # without an alignment (older tables, CUDA) linear over every width, as before
    assert aligned_table(None).get(entry_key(44, 0)) == pytest.approx(125.0)
    assert aligned_table(0).get(entry_key(44, 0)) == pytest.approx(125.0)


def test_a_width_without_its_kind_on_one_side_takes_the_nearest_ones_ratio() -> None:
    table = aligned_table(16)
    # 36: no unaligned row below. Aligned interpolation at 36: 100 + 4/16 · 20 = 105; the
    # nearest unaligned row, 40 (130 µs), against the aligned interpolation there (110):
    # 105 · 130 / 110
    assert table.get(entry_key(36, 0)) == pytest.approx(105.0 * 130.0 / 110.0)
    # 60: above the last unaligned row 56 (150 µs; aligned there 120 + 8/16 · 20 = 130);
    # aligned at 60: 135 -> 135 · 150 / 130
    assert table.get(entry_key(60, 0)) == pytest.approx(135.0 * 150.0 / 130.0)
    # an aligned width with no aligned row on one side: rows 40, 48, 56 only; 64 lies
    # outside every measured width, so there is nothing to interpolate
    inner = fake_table({entry_key(m, 0): ALIGNED_ROWS[m] for m in (40, 48, 56)})
    inner.meta["width_align"] = 16
    assert inner.get(entry_key(64, 0)) is None
    # 32 aligned, 40 unaligned only: no other kind around 36 either -> linear over all
    two = fake_table({entry_key(32, 0): 100.0, entry_key(40, 0): 130.0})
    two.meta["width_align"] = 16
    assert two.get(entry_key(36, 0)) == pytest.approx(115.0)


def test_default_width_align_is_the_vector_width_in_elements() -> None:
    from latprof.lut.table import default_width_align

    assert default_width_align("cpu", "float32", "AVX512") == 16
    assert default_width_align("cpu", "float32", "AVX2") == 8
    assert default_width_align("cpu", "bfloat16", "AVX512") == 32
    assert default_width_align("cpu", "float32", "DEFAULT") == 4
    assert default_width_align("cpu", "float32", "SVE256") == 8
    assert default_width_align("cpu", "float64", "DEFAULT") == 2
    assert default_width_align("cuda", "float32", "AVX512") is None  # not measured there
    assert default_width_align("cpu", "float32", None) is None


def test_space_tables_record_the_width_align_of_the_cpu_that_measures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import latprof.env
    from latprof.lut.plan import plan_build

    monkeypatch.setattr(latprof.env, "_cpu_capability", lambda torch: "AVX2")
    plan = plan_build(space="mbv2", width_step=8, warmup=1, trials=2)
    assert plan.meta["width_align"] == 8
    assert plan.meta["environment"]["cpu_capability"] == "AVX2"
    layers = plan_build(models=["zoo:cnn"], warmup=1, trials=2)
    assert layers.meta["width_align"] is None  # layer tables have no mid widths


def table_of(rows: dict[int, float], align: int, se_rule: bool = False) -> LatencyTable:
    table = fake_table({entry_key(m, m // 4 if se_rule else 0): us for m, us in rows.items()})
    table.meta["width_align"] = align
    return table


def test_an_aligned_width_is_interpolated_from_aligned_widths_only() -> None:
    # 48 not measured: aligned rows 32 (100) and 64 (140) -> 120; linear over all 140
    rows = {m: us for m, us in ALIGNED_ROWS.items() if m != 48}
    assert table_of(rows, 16).get(entry_key(48, 0)) == pytest.approx(120.0)
    assert table_of(rows, 0).get(entry_key(48, 0)) == pytest.approx(140.0)
    # 80 aligned, no aligned row above it: the unaligned rows give 170 + 8/16 · 20 = 180 at
    # 80 and 130 + 8/16 · 20 = 140 at the nearest aligned row 48 (120 µs): 180 · 120 / 140
    wide = {32: 100.0, 48: 120.0, 40: 130.0, 56: 150.0, 72: 170.0, 88: 190.0}
    assert table_of(wide, 16).get(entry_key(80, 0)) == pytest.approx(180.0 * 120.0 / 140.0)


def test_the_alignment_is_the_tables_own() -> None:
    # align 8: 36 and 44 are the unaligned rows; 38 -> 130 + 2/8 · 10, 42 -> 130 + 6/8 · 10
    rows = {32: 100.0, 36: 130.0, 40: 110.0, 44: 140.0, 48: 120.0}
    assert table_of(rows, 8).get(entry_key(38, 0)) == pytest.approx(132.5)
    assert table_of(rows, 8).get(entry_key(42, 0)) == pytest.approx(137.5)
    # align 16: 36, 40 and 44 are all unaligned -> 38 between 36 and 40: 120
    assert table_of(rows, 16).get(entry_key(38, 0)) == pytest.approx(120.0)


def test_aligned_interpolation_with_an_se_width_that_follows_mid() -> None:
    table = table_of(ALIGNED_ROWS, 16, se_rule=True)  # se = mid // 4
    assert table.get(entry_key(44, 11)) == pytest.approx(135.0)
    assert table.get(entry_key(36, 9)) == pytest.approx(105.0 * 130.0 / 110.0)


def test_a_zero_time_on_the_other_side_falls_back_to_linear() -> None:
    # 36: the nearest unaligned row 40 (130 µs) against an aligned interpolation of 0 there
    rows = {32: 0.0, 48: 0.0, 40: 130.0}
    assert table_of(rows, 16).get(entry_key(36, 0)) == pytest.approx(65.0)


def test_merge_keeps_the_width_align_and_refuses_two_different_ones() -> None:
    from latprof.lut.table import merge

    old = fake_table({entry_key(32, 0): 100.0})  # no width_align: built before it
    new = table_of({64: 140.0}, 16)
    for pair in ([("old", old), ("new", new)], [("new", new), ("old", old)]):
        assert merge(pair).meta["width_align"] == 16
    other = table_of({48: 120.0}, 8)
    message = "cannot merge other with new: environments differ (width_align: 16 != 8)"
    with pytest.raises(UsageError, match="^" + re.escape(message) + "$"):
        merge([("new", new), ("other", other)])
    with pytest.raises(UsageError, match=r"different vector widths \(width_align 8, 16\)"):
        merge([("old", old), ("new", new), ("other", other)])
    # resuming: an older table (no width_align) continues under any; a newer one only its own
    assert old.differences({**old.meta, "width_align": 16}) == []
    assert new.differences({**new.meta, "width_align": 8}) == ["width_align: 16 != 8"]
