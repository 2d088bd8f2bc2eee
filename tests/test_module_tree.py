"""Every module timed: self and total times on a fake clock, the tree, aten MACs by hand."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latprof.aten_ops import OUTSIDE, count_macs, op_bias, time_ops
from latprof.config import ProfileConfig
from latprof.errors import UsageError
from latprof.measure.clocks import FakeClock
from latprof.measure.runner import calibrate_nesting
from latprof.module_tree import children_of, parent_of
from latprof.profile_notices import notices_for
from latprof.profiler import profile
from tests.helpers import Work, assert_untouched, snapshot

READ_NS = 100


class Conv(Work):
    pass


class Act(Work):
    pass


class Block(nn.Module):
    """0.3 µs of its own work, then conv (2 µs) and act (1 µs)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.conv = Conv(clock, 2000)
        self.act = Act(clock, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(300)
        return self.act(self.conv(x))


class Tree(nn.Module):
    """Two blocks, a head called twice in a loop, 0.2 µs of own work and a direct call of
    b1.conv.forward (2 µs) from the model's own forward."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.b1 = Block(clock)
        self.b2 = Block(clock)
        self.head = Conv(clock, 500)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b2(self.b1(x))
        for _ in range(2):
            x = self.head(x)
        self.clock.advance(200)
        return self.b1.conv.forward(x)


def run(model: nn.Module, clock: FakeClock, trials: int = 4, **kw: object):
    config = ProfileConfig(warmup=2, trials=trials, **kw)
    return profile(model, (torch.zeros(1, 2),), config=config, clock=clock)


def test_nesting_cost_is_calibrated_from_clock_reads() -> None:
    # a child's timer reads the clock twice inside its parent's span; one read is inside the
    # child's own marks (the bias), so 1 read = 0.1 µs is the cost outside them
    assert calibrate_nesting(FakeClock(read_cost_ns=READ_NS), "cpu") == pytest.approx(0.1)
    assert calibrate_nesting(FakeClock(), "cpu") == 0.0


@pytest.fixture(scope="module")
def tree():
    clock = FakeClock(read_cost_ns=READ_NS)
    model = Tree(clock)
    before = snapshot(model)
    prof = run(model, clock)
    assert_untouched(model, *before)
    return prof


def test_self_and_total_times_are_exact(tree) -> None:
    assert tree.bias_us == pytest.approx(0.1) and tree.nest_us == pytest.approx(0.1)
    rows = {r["module"]: r for r in tree.module_rows()}
    # blocks: 0.3 µs own work; total 0.3 + 2 + 1
    for block in ("b1", "b2"):
        assert rows[block]["self_us"] == pytest.approx(0.3)
        assert rows[block]["time_us"] == pytest.approx(3.3)
    # the model: 0.2 µs own; the direct b1.conv.forward call is timed (a shadowed forward)
    # and counted as its child; total = all 9.8 µs of work
    assert rows["(model)"]["self_us"] == pytest.approx(0.2)
    assert rows["(model)"]["time_us"] == pytest.approx(9.8)
    # b1.conv: one call through b1, one direct from the model: listed under both callers,
    # 1 call and 2 µs each; its parameters once
    places = [r for r in tree.module_rows() if r["module"] == "b1.conv"]
    assert [(r["parent"], r["calls"], r["time_us"]) for r in places] == [
        ("b1", 1.0, pytest.approx(2.0)),
        ("(model)", 1.0, pytest.approx(2.0)),
    ]
    assert [r["params"] for r in places] == [0, None]
    # every row's total is its self time plus its children's totals
    rows_list = tree.module_rows()
    for row in rows_list:
        kids = [r for r in rows_list if r["parent"] == row["module"]]
        if kids:
            below = sum(r["time_us"] for r in kids)
            assert row["time_us"] == pytest.approx(row["self_us"] + below)
    assert rows["head"]["calls"] == 2 and rows["head"]["self_us"] == pytest.approx(1.0)
    s = tree.summary
    assert s.leaf_sum_us == pytest.approx(4.0 + 1.0 + 2.0 + 1.0 + 1.0)
    assert s.self_sum_us == pytest.approx(0.3 + 0.3 + 0.2)
    # plain pass: 9.8 µs of work + its own clock read; only that read is outside every module
    assert s.e2e.mean == pytest.approx(9.9)
    assert s.unattributed_us == pytest.approx(0.1)


def test_tree_rows_parent_depth_and_order(tree) -> None:
    rows = tree.module_rows()
    assert [(r["module"], r["parent"], r["depth"]) for r in rows] == [
        ("(model)", "", 0),
        ("b1", "(model)", 1),
        ("b1.conv", "b1", 2),
        ("b1.act", "b1", 2),
        ("b2", "(model)", 1),
        ("b2.conv", "b2", 2),
        ("b2.act", "b2", 2),
        ("head", "(model)", 1),
        ("b1.conv", "(model)", 1),
    ]
    assert [r["module"] for r in tree.module_rows(depth=1)] == [
        "(model)",
        "b1",
        "b2",
        "head",
        "b1.conv",
    ]
    assert rows[1]["class"] == "Block" and rows[2]["class"] == "Conv"


def test_categories_carry_container_self_times(tree) -> None:
    cats = {r["category"]: r for r in tree.category_rows()}
    # Block: mean over trials of the per-trial sum of both blocks' self times
    assert cats["Block"]["time_us"] == pytest.approx(0.6)
    assert cats["Block"]["calls"] == 2 and cats["Block"]["layers"] == 2
    assert cats["Tree"]["time_us"] == pytest.approx(0.2)
    assert cats["Conv"]["time_us"] == pytest.approx(4.0 + 2.0 + 1.0)
    assert cats["(unattributed)"]["time_us"] == pytest.approx(0.1)
    assert sum(r["share"] for r in tree.category_rows()) == pytest.approx(1.0)


def test_leaves_scope_times_no_container() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(Tree(clock), clock, scope="leaves")
    assert prof.modules == []
    # the blocks' 0.6 µs and the model's 0.2 µs go back to (unattributed), with the read
    assert prof.summary.unattributed_us == pytest.approx(0.9)
    assert [r["depth"] for r in prof.module_rows()] == [0] * 5


def test_negative_self_time_notice_names_the_module(tree) -> None:
    b1 = next(m for m in tree.modules if m.name == "b1")
    assert "negative-self" not in {n.kind for n in notices_for(tree)}

    def with_self(samples: list[float]):
        others = [m for m in tree.modules if m.name != "b1"]
        return replace(tree, modules=[replace(b1, samples_us=samples), *others], notices=[])

    [notice] = [n for n in notices_for(with_self([-2.0, -2.5, -1.5, -2.0])) if "self" in n.kind]
    assert "b1" in notice.message and "--leaves-only" in notice.hint
    # noise around 0 (mean -0.25, standard error 1.25) is not reported
    assert "negative-self" not in {n.kind for n in notices_for(with_self([2, -3, 2, -2]))}


def test_parent_is_the_nearest_timed_ancestor() -> None:
    present = {"(model)", "a", "a.b.c"}
    assert parent_of("a.b.c", present) == "a"  # a.b was not timed
    assert parent_of("a", present) == "(model)"
    assert parent_of("(model)", present) is None
    assert parent_of("x", {"x"}) is None  # no root timed (leaves only)
    assert children_of(["(model)", "a", "a.b.c", "z"]) == {
        "(model)": ["a", "z"],
        "a": ["a.b.c"],
        "a.b.c": [],
        "z": [],
    }


def test_unknown_op_module_is_a_usage_error_naming_close_ones() -> None:
    clock = FakeClock()
    with pytest.raises(UsageError, match=r"--module 'b1.cnv' .* did you mean b1.conv"):
        run(Tree(clock), clock, op_module="b1.cnv")


# ------------------------------------------------------------------ aten MACs, by hand


class Attention(nn.Module):
    """MHA (fast path in eval), a functional einsum and sdpa, and a Linear child."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.fc = nn.Linear(16, 32)
        self.w = nn.Parameter(torch.randn(32, 16))
        self.k = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mha(x, x, x, need_weights=False)[0] + x
        z = torch.einsum("blc,cd->bld", self.fc(y), self.w)
        q = z.view(2, 5, 2, 8).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q)
        img = F.conv2d(a.reshape(2, 2, 5, 8)[:, :1].expand(2, 3, 5, 8), self.k)
        return a.sum() + img.sum()


def test_aten_macs_are_credited_to_the_innermost_module() -> None:
    model = Attention().eval()
    x = torch.randn(2, 5, 16)
    modules = [model, model.mha, model.fc, model.mha.out_proj]
    for mode in (torch.inference_mode, torch.no_grad):
        with mode():
            counter = count_macs(model, (x,), {}, modules)
        # mha, B 2, L 5, E 16: q, k, v and out projections 4 x 5·16·16, q·kᵀ and a·v 2 x 5·5·16
        mha = 2 * (4 * 5 * 16 * 16 + 2 * 5 * 5 * 16)
        assert counter.macs[1] == mha == 11840
        assert counter.macs[2] == 2 * 5 * 16 * 32  # fc: 10 rows x 16 x 32
        # the model itself: einsum 10 x 32 x 16; sdpa B 2, H 2, L 5, d 8: 2 x 2·2·5·5·8;
        # conv 3->4 k3 on 5x8: out 2x4x3x6 = 144 positions x 27
        own = 10 * 32 * 16 + 2 * (2 * 2 * 5 * 5 * 8) + 144 * 27
        assert counter.macs[0] == own
        assert 3 not in counter.macs and OUTSIDE not in counter.macs  # out_proj never ran


def test_profile_reports_container_macs_from_aten_and_leaves_from_thop() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), Residual(nn.Conv2d(4, 4, 1)))
    prof = profile(model, (torch.zeros(1, 3, 6, 6),), config=ProfileConfig(warmup=1, trials=2))
    rows = {r["module"]: r for r in prof.module_rows()}
    # conv 3->4 k3 on 6x6: 4x4x4 outputs x 27 = 1728, by latprof's conv counter
    assert (rows["0"]["macs"], rows["0"]["macs_by"]) == (1728, "latprof")
    # Residual's own forward runs a functional 1x1 conv 4->4 on 4x4: 64 x 4 = 256, by aten
    assert (rows["1"]["macs"], rows["1"]["macs_by"]) == (256, "aten")
    assert rows["1.conv"]["macs"] == 256  # its child, by thop
    assert rows["(model)"]["macs"] == 0 and rows["(model)"]["macs_total"] == 1728 + 512
    cats = {r["category"]: r for r in prof.category_rows()}
    assert cats["Residual"]["macs"] == 256


class Residual(nn.Module):
    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + F.conv2d(x, self.conv.weight)


def test_by_op_times_the_ops_inside_one_module() -> None:
    model = Attention().eval()
    x = torch.randn(2, 5, 16)
    with torch.inference_mode():
        rows = time_ops(model, (x,), {}, model, FakeClock(read_cost_ns=READ_NS), passes=3)
    ops = {r["op"]: r for r in rows}
    # every op spans one clock read (0.1 µs) on the fake clock, which is its bias: 0 left
    assert op_bias(FakeClock(read_cost_ns=READ_NS)) == pytest.approx(0.1)
    assert ops["aten._native_multi_head_attention"]["time_us"] == pytest.approx(0.0)
    assert ops["aten._native_multi_head_attention"]["macs"] == 11840
    assert ops["aten.bmm"]["macs"] == 10 * 32 * 16  # the einsum
    assert ops["aten.addmm"]["calls"] == 1 and ops["aten.addmm"]["macs"] == 5120
    total = sum(r["macs"] for r in rows)
    assert total == 11840 + 5120 + 10 * 32 * 16 + 2 * 2 * 2 * 5 * 5 * 8 + 144 * 27


@pytest.mark.parametrize("name", ["vit", "swin", "densenet", "dscnn"])
def test_aten_macs_equal_the_hand_counts_module_by_module(name: str) -> None:
    from latprof.loading import load_model
    from tests.hand_macs import HAND_MACS, with_zeros

    loaded = load_model(f"zoo:{name}")
    model = loaded.module.eval()
    named = list(model.named_modules())
    with torch.inference_mode():
        counter = count_macs(model, loaded.args, loaded.kwargs, [m for _, m in named])
    got = {n: counter.macs.get(i, 0.0) for i, (n, _) in enumerate(named)}
    assert got == with_zeros(HAND_MACS[name](), model)
    assert OUTSIDE not in counter.macs


class SharedAct(nn.Module):
    """One Act instance registered in two blocks; the second block also calls it twice."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        act = Act(clock, 1000)
        self.a = nn.Sequential(Conv(clock, 2000), act)
        self.b = nn.Sequential(act, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_a_module_shared_between_parents_is_subtracted_where_it_ran() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(SharedAct(clock), clock)
    rows = {r["module"]: r for r in prof.module_rows()}
    # named a.1 (named_modules keeps the first name); 3 calls of 1 µs, listed under each
    # caller with its calls there: 1 under a, 2 under b
    places = [(r["parent"], r["calls"], r["time_us"]) for r in prof.module_rows()]
    assert ("a", 1.0, pytest.approx(1.0)) in places and ("b", 2.0, pytest.approx(2.0)) in places
    assert "b.0" not in rows
    # b ran it twice: its self time is 0 and its total the 2 µs it ran
    assert rows["b"]["self_us"] == pytest.approx(0.0, abs=1e-9)
    assert rows["b"]["time_us"] == pytest.approx(2.0)
    assert rows["a"]["time_us"] == pytest.approx(3.0)
    # the tree adds up: leaves + self times = the model's total = 5 µs of work
    s = prof.summary
    assert s.leaf_sum_us + s.self_sum_us == pytest.approx(rows["(model)"]["time_us"])
    assert rows["(model)"]["time_us"] == pytest.approx(5.0)
    assert all(m.stats.mean >= -1e-9 for m in prof.modules)


class PerElement(nn.Module):
    """A leaf taking 1 µs per input element of fake time."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(1000 * x.numel())
        return x


class Caller(nn.Module):
    def __init__(self, shared: nn.Module, size: int) -> None:
        super().__init__()
        self.shared, self.size = shared, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(torch.zeros(self.size))


def test_a_shared_module_is_split_by_the_time_each_caller_took() -> None:
    # one module called once from a (1 element: 1 µs) and once from b (3 elements: 3 µs)
    clock = FakeClock(read_cost_ns=READ_NS)
    shared = PerElement(clock)
    model = nn.Sequential(Caller(shared, 1), Caller(shared, 3))
    prof = run(model, clock)
    rows = prof.module_rows()
    places = {r["parent"]: r for r in rows if r["module"] == "0.shared"}
    assert places["0"]["calls"] == 1 and places["0"]["time_us"] == pytest.approx(1.0)
    assert places["1"]["calls"] == 1 and places["1"]["time_us"] == pytest.approx(3.0)
    for row in rows:  # every total is its self time plus its children's, exactly
        kids = [r["time_us"] for r in rows if r["parent"] == row["module"]]
        if kids:
            assert row["time_us"] == pytest.approx(row["self_us"] + sum(kids))
    # a file without the callee times splits by calls: 2 µs each
    old = replace(prof, edges=[e[:3] for e in prof.edges])
    halves = [r["time_us"] for r in old.module_rows() if r["module"] == "0.shared"]
    assert halves == [pytest.approx(2.0), pytest.approx(2.0)]


class Recursive(nn.Module):
    """1 µs of its own work and a 2 µs leaf, then itself, `depth` levels deep."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.leaf = Conv(clock, 2000)

    def forward(self, x: torch.Tensor, depth: int = 3) -> torch.Tensor:
        self.clock.advance(1000)
        x = self.leaf(x)
        return self(x, depth - 1) if depth > 1 else x


def test_a_recursive_module_total_is_counted_once() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    model = nn.Sequential(Recursive(clock))
    prof = run(model, clock)
    rows = {r["module"]: r for r in prof.module_rows()}
    # 3 calls of 1 µs own work + 2 µs leaf: the outermost call's total holds them all
    assert rows["0"]["calls"] == 3
    assert rows["0"]["self_us"] == pytest.approx(3.0)
    assert rows["0"]["time_us"] == pytest.approx(9.0)
    assert rows["(model)"]["time_us"] == pytest.approx(9.0)


class Raising(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("no")


class CatchesTwoUp(nn.Module):
    """p runs c1 (2 µs) then a child that raises; the model catches it and runs b (4 µs)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.p = nn.Sequential(Conv(clock, 2000), Raising())
        self.b = Conv(clock, 4000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(ValueError):
            self.p(x)
        return self.b(x)


def test_an_exception_caught_two_levels_up_keeps_the_tree_whole() -> None:
    clock = FakeClock(read_cost_ns=READ_NS)
    prof = run(CatchesTwoUp(clock), clock)
    rows = {r["module"]: r for r in prof.module_rows()}
    assert rows["p"]["time_us"] == pytest.approx(2.0)  # c1, and the raising call's nothing
    assert rows["(model)"]["self_us"] == pytest.approx(0.0, abs=1e-9)
    s = prof.summary
    assert s.leaf_sum_us + s.self_sum_us == pytest.approx(6.0)
    assert s.unattributed_us == pytest.approx(0.1)  # the plain pass's own clock read


def test_transformer_encoder_fused_path_macs_and_untimed_children() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    prof = profile(model, (torch.randn(1, 5, 16),), config=ProfileConfig(warmup=1, trials=2))
    rows = {r["module"]: r for r in prof.module_rows()}
    # fused path: attention 5·16·16 x 4 projections + 2 x 5·5·16, FFN 5·16·32 x 2
    per_layer = 4 * 5 * 16 * 16 + 2 * 5 * 5 * 16 + 2 * 5 * 16 * 32
    assert rows["layers.0"]["macs"] == per_layer == 11040
    assert rows["(model)"]["macs_total"] == 2 * per_layer
    # the fused fast path: the timed passes (and the shape probe) never call the children
    assert "layers.0.linear1" not in rows
    [notice] = [n for n in prof.notices if n.kind == "uncalled"]
    # 8 leaves per layer: out_proj, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2
    assert notice.message.startswith("16 leaf module(s)")


def test_op_view_finds_any_module_and_says_when_it_ran_nothing() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.ReLU())
    config = ProfileConfig(warmup=1, trials=2, scope="leaves", op_module="0")
    prof = profile(model, (torch.zeros(1, 4),), config=config)
    assert sorted(r["op"] for r in prof.ops) == ["aten.addmm", "aten.t"]  # F.linear
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    attn = Attending(mha)
    config = ProfileConfig(warmup=1, trials=2, op_module="mha.out_proj")
    prof = profile(attn, (torch.zeros(1, 3, 8),), config=config)
    assert prof.ops == []
    assert "op-view-empty" in {n.kind for n in prof.notices}


class Attending(nn.Module):
    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=False)[0]


def test_saved_profile_round_trip_keeps_the_tree_and_old_files_read_as_leaves_only(
    tree, tmp_path
) -> None:
    import json

    from latprof.io import profile_file

    for suffix in (".parquet", ".json"):
        path = tmp_path / f"p{suffix}"
        (profile_file.save_parquet if suffix == ".parquet" else profile_file.save_json)(tree, path)
        back = profile_file.load(path)
        assert back.module_rows() == tree.module_rows()
        assert back.config.scope == "modules" and back.nest_us == tree.nest_us
    data = json.loads((tmp_path / "p.json").read_text())
    del data["config"]["scope"], data["modules"]  # as written before modules were timed
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = profile_file.load(tmp_path / "old.json")
    assert old.config.scope == "leaves" and old.modules == []


def test_profile_parquet_has_a_row_per_timed_module_with_parent_and_depth(tree, tmp_path) -> None:
    import pandas as pd

    from latprof.io import profile_file

    path = tmp_path / "p.parquet"
    profile_file.save_parquet(tree, path)
    df = pd.read_parquet(path).set_index("layer")
    assert list(df["kind"]) == ["leaf"] * 5 + ["parent"] * 3
    assert df.loc["b1.conv", "parent"] == "b1" and df.loc["b1.conv", "depth"] == 2
    assert df.loc["b1", "parent"] == "(model)" and df.loc["(model)", "depth"] == 0
    # a parent's time columns are its self time; total_us its total
    assert df.loc["b1", "time_us"] == pytest.approx(0.3)
    assert df.loc["b1", "total_us"] == pytest.approx(3.3)
    # leaves + self times = the model's total, read straight from the file
    assert df["time_us"].sum() == pytest.approx(df.loc["(model)", "total_us"])
    assert len(profile_file.load(path).layers) == 5


class DirectForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b.forward(self.a(x))  # bypasses hooks, not the shadowed forward


def test_a_leaf_called_through_forward_is_timed_and_counted() -> None:
    prof = profile(DirectForward(), (torch.zeros(3, 4),), config=ProfileConfig(warmup=1, trials=2))
    rows = {r["module"]: r for r in prof.module_rows()}
    assert rows["b"]["calls"] == 1 and rows["b"]["parent"] == "(model)"
    # THOP's hooks never saw it: the aten counter's 3 rows x 8 x 2 MACs, labelled so
    assert (rows["b"]["macs"], rows["b"]["macs_by"]) == (48, "aten")
    assert rows["(model)"]["macs"] == 0  # not in the model's own forward any more
    assert "uncalled" not in {n.kind for n in prof.notices}


class NormThroughForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn.forward(self.fc(x))


def test_macs_no_counter_saw_are_empty_and_named_not_zero() -> None:
    prof = profile(
        NormThroughForward().eval(), (torch.zeros(3, 4),), config=ProfileConfig(warmup=1, trials=2)
    )
    rows = {r["module"]: r for r in prof.module_rows()}
    assert rows["bn"]["calls"] == 1 and rows["bn"]["macs"] is None  # not 0
    # the shape probe shadows forward as the timers do: it sees the call, in its order
    assert [layer.name for layer in prof.layers] == ["fc", "bn"]
    assert [layer.input_shape for layer in prof.layers] == ["3x4", "3x4"]
    [notice] = [n for n in prof.notices if n.kind == "macs-not-counted"]
    assert notice.message.startswith("MACs are not counted for bn: called through .forward()")
    assert rows["fc"]["macs"] == 3 * 4 * 4


def test_parameters_of_children_a_parent_uses_directly_stay_with_it() -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    prof = profile(
        Attending(mha).eval(), (torch.zeros(1, 3, 8),), config=ProfileConfig(warmup=1, trials=2)
    )
    rows = {r["module"]: r for r in prof.module_rows()}
    # in_proj 3·8·8 + 24 = 216 of its own, out_proj 8·8 + 8 = 72 (never called, used by it)
    assert rows["mha"]["params"] == 216 + 72
    assert sum(r["params"] for r in prof.module_rows()) == sum(p.numel() for p in mha.parameters())


def test_negative_unattributed_beyond_the_noise_names_the_timers_cost(tree) -> None:
    # the timed sum is 9.8 µs over 10 calls per pass (the model, 2 blocks, 4 leaves in them,
    # b1.conv again, head twice); end-to-end 8.2 µs in every trial (IQR 0)
    lower = replace(tree, e2e_us=[8.2] * 4, notices=[])
    [notice] = [n for n in notices_for(lower) if n.kind == "negative-unattributed"]
    assert "exceeds end-to-end latency by 1.60 µs;" in notice.message
    assert "about 0.16 µs per timed call of the timers' own cost" in notice.message
    assert "spike" not in notice.message and "--leaves-only" in notice.hint
    assert "calibrated on nn.Identity (0.10 µs per child call)" in notice.message
    # with the nest the passes measured subtracted, the medians add up: slow timed passes
    passes = replace(lower, nest_us=0.4, nest_identity_us=0.1, nest_in_model_us=0.4)
    [notice] = [n for n in notices_for(passes) if n.kind == "negative-unattributed"]
    assert "slow timed passes raise the layers' means" in notice.message
    assert "nest 0.40 µs per child call as these passes measured it" in notice.message
    assert "timers' own cost is not removed" not in notice.message
    assert "--by layer" in notice.hint
    # far beyond what the timers cost: the machine was busy, not the timers
    busy = replace(lower, e2e_us=[0.5] * 4, bias_us=0.02, nest_us=0.02, nest_identity_us=0.02)
    [notice] = [n for n in notices_for(busy) if n.kind == "negative-unattributed"]
    assert "0.93 µs per timed call, over 10 times what the timers cost" in notice.message
    assert "the machine was busy" in notice.message and "--threads 1" in notice.hint
    # within the end-to-end IQR it is still read as noise
    noisy = replace(tree, e2e_us=[6.2, 12.2, 6.2, 8.2], notices=[])
    [notice] = [n for n in notices_for(noisy) if n.kind == "negative-unattributed"]
    assert "within the end-to-end IQR" in notice.message and "spike" in notice.message


class A(nn.Module):
    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class B(nn.Module):
    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc2 = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(5):
            x = self.fc2(x)
        return x


def test_a_module_shared_by_two_parents_counts_toward_each_by_its_calls() -> None:
    fc = nn.Linear(8, 8)
    model = nn.Sequential(A(fc), B(fc))
    prof = profile(model, (torch.zeros(2, 8),), config=ProfileConfig(warmup=1, trials=2))
    rows = {r["module"]: r for r in prof.module_rows()}
    per_call = 2 * 8 * 8  # 2 rows x 8 x 8
    places = [(r["parent"], r["calls"], r["macs"]) for r in prof.module_rows()]
    assert [p for p in places if p[0] in ("0", "1")] == [("0", 1, per_call), ("1", 5, 5 * per_call)]
    assert rows["0"]["macs_total"] == per_call  # one call
    assert rows["1"]["macs_total"] == 5 * per_call  # five calls, though registered under 0
    assert rows["(model)"]["macs_total"] == 6 * per_call
    [notice] = [n for n in prof.notices if n.kind == "shared"]
    assert "0.fc, from 0, 1" in notice.message
    # the name it has under its second parent reaches --by op too
    config = ProfileConfig(warmup=1, trials=2, op_module="1.fc2")
    ops = profile(model, (torch.zeros(2, 8),), config=config).ops
    assert {r["op"] for r in ops} >= {"aten.addmm"}
