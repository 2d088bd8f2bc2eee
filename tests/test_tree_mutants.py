"""Tests written for mutants of the module tree, its timers and the aten counter that the
other tests let survive (docs/testing.md): exact values by hand, on fake clocks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latprof.aten_ops import MacCounter, OpTimer, native_mha_flops, sdpa_flops, time_ops
from latprof.measure.clocks import FakeClock
from latprof.measure.hooks import find_modules, scripted_modules, shape_of
from latprof.measure.runner import run_trials
from latprof.module_tree import parent_of, tree_rows
from tests.helpers import Work

CLOCK = FakeClock()


@torch.library.custom_op("latproftest::busy", mutates_args=())
def busy(x: torch.Tensor, ns: int) -> torch.Tensor:
    """An aten-level op that takes `ns` of the test clock's time."""
    CLOCK.advance(ns)
    return x.clone()


@busy.register_fake
def _(x: torch.Tensor, ns: int) -> torch.Tensor:
    return torch.empty_like(x)


class Skewed(nn.Module):
    """Per pass: busy(1 µs) always, busy(2 µs) on passes 1, 2, 3 and busy(20 µs) on pass 4
    (pass 0 is the untimed one), relu on odd passes, neg when the keyword-only `scale` is
    not 1, and two matmuls 1x4 @ 4x3, 1x3 @ 3x4."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0
        self.w = nn.Parameter(torch.ones(4, 3))

    def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        n = self.passes
        self.passes += 1
        x = busy(x, 1000)
        x = busy(x, 20000 if n == 4 else 2000)
        if n % 2:
            x = torch.ops.aten.relu(x)
        if scale != 1.0:
            x = torch.ops.aten.neg(x)
        return (x @ self.w) @ self.w.T


def test_time_ops_per_op_statistics_by_hand() -> None:
    model = Skewed()
    with torch.inference_mode():
        rows = time_ops(model, (torch.ones(1, 4),), {"scale": 2.0}, model, CLOCK, passes=4)
    ops = {r["op"]: r for r in rows}
    # busy: 2 calls per pass; per pass 3, 3, 3, 21 µs: mean 7.5, median 3
    assert ops["latproftest.busy"]["calls"] == 2
    assert ops["latproftest.busy"]["time_us"] == pytest.approx(7.5)
    assert ops["latproftest.busy"]["time_us_median"] == pytest.approx(3.0)
    # relu ran in passes 1 and 3 only: 0.5 calls per pass on average
    assert ops["aten.relu"]["calls"] == 0.5 and ops["aten.relu"]["time_us"] == 0.0
    assert ops["aten.relu"]["macs"] == 0.0  # no MACs in the passes without it either
    assert "aten.neg" in ops  # the keyword argument reached the forward
    assert ops["aten.mm"]["calls"] == 2 and ops["aten.mm"]["macs"] == 4 * 3 + 3 * 4
    assert ops["latproftest.busy"]["macs"] == 0
    assert rows[0]["op"] == "latproftest.busy"  # slowest first
    assert [r["time_us"] for r in rows] == sorted((r["time_us"] for r in rows), reverse=True)
    assert model.passes == 5  # one untimed pass, then 4


def test_time_ops_subtracts_the_larger_bias_only() -> None:
    model = Skewed()
    with torch.inference_mode():
        rows = time_ops(model, (torch.ones(1, 4),), {}, model, CLOCK, passes=4, bias_us=0.5)
    busy_row = next(r for r in rows if r["op"] == "latproftest.busy")
    assert busy_row["time_us"] == pytest.approx(7.5 - 2 * 0.5)  # 2 calls less 0.5 µs each


def test_dispatch_modes_keep_keyword_arguments() -> None:
    """sdpa's `scale` is keyword-only: a mode that dropped kwargs would change the output."""
    q = torch.randn(1, 2, 5, 8)

    class Attn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(x, x, x, scale=0.05)

    model = Attn()
    outer = nn.Sequential(nn.Identity(), model)
    with torch.inference_mode():
        plain = model(q)
        # OpTimer of the Identity: sdpa runs outside the timed module, passed through
        for mode in (MacCounter([model]), OpTimer(model, FakeClock()), OpTimer(outer[0], CLOCK)):
            with mode.attached():
                torch.testing.assert_close(outer(q), plain)


def test_attention_formulas_by_hand() -> None:
    # 3-D sdpa: B 2, Lq 5, Lk 7, E 8, Ev 4: q·kᵀ 2·5·7·8 + a·v 2·5·7·4, FLOPs = 2 x MACs
    q, k, v = torch.zeros(2, 5, 8), torch.zeros(2, 7, 8), torch.zeros(2, 7, 4)
    assert sdpa_flops(q, k, v) == 2 * (2 * 5 * 7 * 8 + 2 * 5 * 7 * 4)
    # unbatched MHA (L, E): batch 1; Lq 3, Lk 6, E 4: q proj 3·16, k and v 2·6·16, q·kᵀ and
    # a·v 2·3·6·4, out 3·16
    mha = native_mha_flops(torch.zeros(3, 4), torch.zeros(6, 4), None, 4)
    assert mha == 2 * (3 * 16 + 2 * 6 * 16 + 2 * 3 * 6 * 4 + 3 * 16)


def test_run_trials_reports_progress_and_sums_totals_of_repeated_calls() -> None:
    clock = FakeClock()
    block = nn.Sequential(Work(clock, 1000), Work(clock, 2000))
    model = nn.Sequential(block, block)  # the same block twice: 2 calls per pass
    seen: list[tuple[str, int, int]] = []
    with torch.inference_mode():
        result = run_trials(
            lambda: model(torch.zeros(1)),
            [model, block, block[0], block[1]],
            clock,
            warmup=2,
            trials=3,
            progress=lambda phase, done, total: seen.append((phase, done, total)),
        )
    assert seen == [("warm-up", 1, 5), ("warm-up", 2, 5)] + [("trials", i, 5) for i in (3, 4, 5)]
    # default nest 0 and a clock without read cost: the block's own time is exactly 0
    assert result.leaf_time_us[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert result.total_us[:, 1].tolist() == [6.0, 6.0, 6.0]  # 2 calls x 3 µs, summed
    assert result.leaf_calls[:, 1].tolist() == [2, 2, 2]


def test_shape_text_of_nested_inputs() -> None:
    t = torch.zeros
    assert shape_of(t(())) == "scalar"
    assert shape_of([t(2, 3), t(4)]) == "(2x3, 4)"
    assert shape_of([t(2, 3)]) == "2x3"  # one tensor: no parentheses
    assert shape_of([t(2), "text", [t(1, 1), t(5)]]) == "(2, (1x1, 5))"
    assert shape_of({"a": t(3), "b": t(1)}) == "(3, 1)"
    assert shape_of(["text", 3]) == ""
    assert shape_of(7) == ""


def test_modules_inside_scripted_ones_are_left_out_and_the_rest_kept() -> None:
    inner = torch.jit.script(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    model = nn.Sequential(nn.Linear(2, 2), inner, nn.ReLU())
    assert [n for n, _ in find_modules(model)] == ["(model)", "0", "2"]
    nested = nn.Sequential(torch.jit.script(nn.Sequential(nn.Linear(2, 2))), nn.ReLU())
    assert scripted_modules(nested) == ["0"]  # the outermost scripted module only


def test_parent_is_the_immediate_timed_parent_when_there_is_one() -> None:
    assert parent_of("a.b", {"(model)", "a", "a.b"}) == "a"
    assert parent_of("a.b.c", {"a.b", "a.b.c"}) == "a.b"


def test_shares_are_nan_without_an_end_to_end_time() -> None:
    from latprof.records import LayerRecord

    leaf = LayerRecord("x", "Conv", 1.0, 0, "", "", [1.0, 3.0], [1, 1])
    [row] = tree_rows([leaf], [], 0.0)
    assert math.isnan(row["share"]) and math.isnan(row["self_share"])
    [row] = tree_rows([leaf], [], 4.0)
    assert row["share"] == row["self_share"] == 0.5


def test_op_rows_name_their_module() -> None:
    model = Skewed()
    with torch.inference_mode():
        named = time_ops(model, (torch.ones(1, 4),), {}, model, CLOCK, 1, module_name="enc.0")
        plain = time_ops(model, (torch.ones(1, 4),), {}, model, CLOCK, 1)
    assert {r["module"] for r in named} == {"enc.0"} and {r["module"] for r in plain} == {""}


def _module(name: str, macs: float, children: list[str], calls: int = 1):
    from latprof.records import ModuleRecord

    return ModuleRecord(name, "M", macs, 0, [1.0], [2.0], [calls], children=children)


def test_macs_total_of_files_without_call_edges_sums_the_tree_by_name() -> None:
    from latprof.records import LayerRecord

    leaves = [LayerRecord(n, "L", m, 0, "", "", [1.0], [1]) for n, m in (("a.x", 5.0), ("b", 7.0))]
    parents = [_module("(model)", 1.0, ["a", "b"]), _module("a", 2.0, ["a.x"])]
    rows = {r["module"]: r for r in tree_rows(leaves, parents, 10.0)}
    assert rows["a"]["macs_total"] == 2.0 + 5.0
    assert rows["(model)"]["macs_total"] == 1.0 + 7.0 + 7.0


def test_macs_total_survives_mutual_recursion_and_splits_by_calls() -> None:
    # a calls b twice, b calls a once; a has 2 calls in all (one from the root), b 2;
    # own MACs a 3, b 4. A cycle is cut at the first module already being summed
    parents = [_module("(model)", 0.0, ["a", "b"])]
    parents += [_module("a", 3.0, [], calls=2), _module("b", 4.0, [], calls=2)]
    edges = [["(model)", "a", 1], ["a", "b", 2], ["b", "a", 1]]
    rows = tree_rows([], parents, 10.0, edges=edges)
    # listed model > a > b, a's row for the root's 1 of its 2 calls, b's for all of a's
    assert [(r["module"], r["parent"]) for r in rows] == [
        ("(model)", ""),
        ("a", "(model)"),
        ("b", "a"),
    ]
    by = {r["module"]: r for r in rows}
    # b: its 4 and a's (cut there); a: 3 and both of b's calls (4 x 2 / 2); each row at its
    # share of the calls, half of a's
    assert by["a"]["macs_total"] == (3.0 + 4.0 * 2 / 2) / 2
    assert by["b"]["macs_total"] == 4.0 / 2
    assert by["(model)"]["macs_total"] == 7.0 * 1 / 2  # one of a's two calls


def test_rows_by_view_and_nan_shares_without_end_to_end_time() -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from latprof.config import ProfileConfig
    from latprof.profiler import profile

    clock = FakeClock()  # no work, no read cost: every time is 0
    model = nn.Sequential(nn.Sequential(Work(clock, 0)), Work(clock, 0))
    prof = profile(model, (torch.zeros(1),), config=ProfileConfig(warmup=1, trials=2), clock=clock)
    assert prof.summary.e2e.mean == 0.0
    assert all(math.isnan(r["share"]) for r in prof.category_rows())
    assert all(math.isnan(r["share"]) for r in prof.layer_rows())

    def names(rows: list[dict], key: str) -> list[str]:
        return [r[key] for r in rows]  # rows hold NaN shares: compare their names

    assert names(prof.rows("module"), "module") == ["(model)", "0", "0.0", "1"]
    assert names(prof.rows("layer"), "layer") == ["0.0", "1"] and prof.rows("op") == []
    assert names(prof.rows("category"), "category")[-1] == "(unattributed)"
    # roofline columns read the profile's dtype: float16 moves half the bytes of float32
    cal = SimpleNamespace(peak_macs_per_s=1e9, bandwidth_bytes_per_s=1e9, ridge_point=1.0)
    layer = replace(prof.layers[0], macs=100.0, input_shape="1x10", output_shape="1x10")
    rows = {}
    for dtype in ("float32", "float16"):
        p = replace(prof, layers=[replace(layer, samples_us=[1.0, 1.0])], calibration=cal)
        p.config = ProfileConfig(dtype=dtype)
        rows[dtype] = p.layer_rows()[0]["intensity"]
    assert rows["float16"] == 2 * rows["float32"] == 2 * 100 / (20 * 4)
