"""Architectures, LUT prediction and differentiable expected latency, on exact hand-made tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from latprof import expected_latency, latency_model, predict
from latprof.errors import LookupMissError, SpaceError, UsageError
from latprof.lut.table import LatencyTable
from latprof.space import arch as archmod
from latprof.space.arch import Arch, Choice
from latprof.space.builtin import get_space

TINY = Path(__file__).parent / "spaces" / "tiny.toml"
STEP = 4
# tiny.toml at width step 4, in enumeration order, with the time (µs) each fake row gets:
TIMES = {
    "conv|k3|s2|m0|se0|relu|d1|3>8|16x16|b1|float32": 10.0,
    "mbinvres|k3|s1|m16|se0|relu|d1|8>8|8x8|b1|float32": 20.0,
    "mbinvres|k3|s1|m20|se0|relu|d1|8>8|8x8|b1|float32": 30.0,
    "mbinvres|k3|s1|m24|se0|relu|d1|8>8|8x8|b1|float32": 40.0,
    "mbinvres|k5|s1|m16|se8|relu|d1|8>8|8x8|b1|float32": 50.0,
    "mbinvres|k5|s1|m20|se8|relu|d1|8>8|8x8|b1|float32": 60.0,
    "mbinvres|k5|s1|m24|se8|relu|d1|8>8|8x8|b1|float32": 70.0,
    "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32": 80.0,
}


def tiny_space():
    return get_space(TINY)


def fake_table(drop: tuple[str, ...] = ()) -> LatencyTable:
    space = tiny_space()
    meta = {
        "kind": "lut",
        "source": "space",
        "space": space.name,
        "space_hash": space.hash(),
        "width_step": STEP,
        "batch": 1,
        "dtype": "float32",
        "device": "cpu",
        "threads": 1,
    }
    table = LatencyTable(meta)
    for entry in space.entries(STEP):
        key = entry.key(1, "float32")
        if key in drop:
            continue
        table.add(
            {
                **entry.to_dict(),
                "key": key,
                "time_us_median": TIMES[key],
                "time_us_p10": TIMES[key],
                "macs": 1000.0,
                "status": "ok",
            }
        )
    return table


def arch(*body: Choice, name: str = "a") -> Arch:
    return Arch(
        name,
        str(TINY),
        (Choice("stem", "conv", kernel=3), *body, Choice("pool_fc", "pool_fc")),
    )


K3_16 = Choice("body.0", "mbinvres", kernel=3, mid=16)


def test_space_entries_match_the_fake_table() -> None:
    assert [e.key(1, "float32") for e in tiny_space().entries(STEP)] == list(TIMES)


# ------------------------------------------------------------------ predict


def test_predict_is_the_exact_sum_of_entries() -> None:
    pred = predict(fake_table(), arch(K3_16), space=tiny_space())
    assert pred.total_us == 10 + 20 + 80
    assert [b.slot for b in pred.blocks] == ["stem", "body.0", "pool_fc"]  # body.1 skipped
    assert {b.source for b in pred.blocks} == {"measured"} and pred.misses == []
    assert pred.macs == 3000.0


def test_predict_interpolates_mid_widths_and_sums_both_layers() -> None:
    a = arch(
        Choice("body.0", "mbinvres", kernel=3, mid=18),  # between m16 (20) and m20 (30)
        Choice("body.1", "mbinvres", kernel=5, mid=24, se=8),
    )
    pred = predict(fake_table(), a, space=tiny_space())
    assert pred.total_us == pytest.approx(10 + 25 + 70 + 80)
    assert [b.source for b in pred.blocks] == [
        "measured",
        "interpolated",
        "measured",
        "measured",
    ]
    rows = pred.rows()
    assert rows[1]["time_us"] == pytest.approx(25) and rows[1]["share"] == pytest.approx(25 / 185)


def test_predict_misses_raise_or_are_listed() -> None:
    pool = "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32"
    table = fake_table(drop=(pool,))
    with pytest.raises(LookupMissError, match="1 entries of a are not in the table"):
        predict(table, arch(K3_16), space=tiny_space())
    pred = predict(table, arch(K3_16), space=tiny_space(), on_miss="report")
    assert pred.misses == [pool] and pred.total_us == 30 and pred.blocks[-1].source == "missing"


def test_predict_measures_misses_on_the_spot_and_adds_them() -> None:
    pool = "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32"
    table = fake_table(drop=(pool,))
    table.meta.update(warmup=1, trials=3)
    pred = predict(table, arch(K3_16), space=tiny_space(), on_miss="measure")
    assert pred.blocks[-1].source == "measured-now" and pred.misses == []
    row = table.rows[pool]
    assert row["status"] == "ok" and row["n"] == 3 and row["macs"] > 0
    assert pred.total_us == pytest.approx(30 + row["time_us_median"])


def test_misses_of_a_context_table_are_measured_inside_the_arch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.lut import in_network as context

    pool = "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32"
    table = fake_table(drop=(pool,))
    table.meta.update(warmup=1, trials=3, context="networks", statistic="p10")
    seen = []
    real = context.measure

    def spy(todo, slots, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(([j.key for j in todo], [[j.key for j in s] for s in slots]))
        return real(todo, slots, *args, **kwargs)

    monkeypatch.setattr(context, "measure", spy)
    pred = predict(table, arch(K3_16), space=tiny_space(), on_miss="measure")
    chain = [b.key for b in pred.blocks]
    assert seen == [([pool], [[k] for k in chain])]  # the one network is the arch itself
    row = table.rows[pool]
    assert row["n"] == 3 and pred.blocks[-1].source == "measured-now"
    assert pred.blocks[-1].time_us == row["time_us_p10"] <= row["time_us_median"]


def test_table_of_another_space_is_refused() -> None:
    with pytest.raises(SpaceError, match=r"is for space 'tiny'.*build a table for that space"):
        predict(fake_table(), "zoo:tfnas-a")


def test_target_environment_check() -> None:
    table = fake_table()
    assert table.check_target(device="cpu", batch=1, dtype="float32", threads=1) == []
    with pytest.raises(UsageError, match=r"batch: table 1, target 8; threads: table 1, target 4"):
        table.check_target(batch=8, threads=4)
    assert table.check_target(True, device="cuda") == ["device: table 'cpu', target 'cuda'"]


# ------------------------------------------------------------------ arch validation


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ((Choice("body.0", "mbinvres", kernel=3, mid=40),), r"mid in \[16, 24\]"),
        ((Choice("body.0", "mbinvres", kernel=5, mid=16, se=0),), "needs se 8"),
        ((Choice("body.0", "mbinvres", kernel=7, mid=16),), "needs kernel 3"),
        ((Choice("body.0", "conv", kernel=3),), "has no op 'conv'; its ops: mbinvres"),
        ((Choice("body.0", "skip"),), "slot body.0 can't be skipped"),
        ((Choice("body.9", "skip"),), "has no slot 'body.9'"),
        ((K3_16, K3_16), "slot body.0 is chosen twice"),
        ((), "no op chosen for slot body.0"),
    ],
)
def test_arch_that_does_not_fit_says_which_slot_and_why(body: tuple, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        archmod.resolve(arch(*body), tiny_space())


def test_arch_out_of_order() -> None:
    a = Arch("a", "tiny", (Choice("pool_fc", "pool_fc"), Choice("stem", "conv", kernel=3)))
    with pytest.raises(SpaceError, match="slot stem is out of order"):
        archmod.resolve(a, tiny_space())


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_arch_file_round_trip(tmp_path: Path, suffix: str) -> None:
    a = archmod.load("zoo:tfnas-c")
    path = tmp_path / f"a{suffix}"
    path.write_text(a.to_json() if suffix == ".json" else a.to_toml())
    assert archmod.load(str(path)) == a


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"space": "tiny", "blocks": [', "invalid JSON at line 1"),
        ('{"blocks": [{"slot": "stem", "op": "conv"}]}', "missing field 'space'"),
        ('{"space": "tiny", "blocks": []}', "'blocks' must be a non-empty list"),
        ('{"space": "t", "blocks": [{"slot": "stem", "op": "conv", "k": 3}]}', "unknown field 'k'"),
        ('{"space": "t", "blocks": [{"slot": "stem", "op": "conv", "mid": "8"}]}', "mid must be"),
    ],
)
def test_malformed_arch_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        archmod.load(str(path))


def test_sampling_is_reproducible_and_fits_the_space() -> None:
    space = get_space("tfnas")
    rng, rng2 = random.Random(7), random.Random(7)
    first = [archmod.sample(space, rng, f"s{i}") for i in range(5)]
    again = [archmod.sample(space, rng2, f"s{i}") for i in range(5)]
    assert [a.choices for a in first] == [a.choices for a in again]
    for a in first:
        archmod.resolve(a, space)
    depths = {sum(c.op != "skip" for c in a.choices) for a in first}
    assert len(depths) > 1  # depth is sampled too


def test_built_module_is_the_chain_of_measured_blocks() -> None:
    a = arch(K3_16, Choice("body.1", "mbinvres", kernel=5, mid=20, se=8))
    net = archmod.build_module(a)
    assert [n for n, _ in net.named_children()] == ["stem", "body_0", "body_1", "pool_fc"]
    assert net.body_1.mid_channels == 20 and net.body_1.se_channels == 8
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert not net.training


# ------------------------------------------------------------------ expected latency


def test_expected_latency_uniform_and_gradients() -> None:
    table = fake_table()
    model = latency_model(table, tiny_space())
    assert model.num_choices() == {"stem": 1, "body.0": 6, "body.1": 6, "pool_fc": 1}
    alpha = model.init_alpha()
    e = expected_latency(table, alpha, space=tiny_space())
    assert e.item() == pytest.approx(10 + 45 + 45 + 80)  # mean of 20..70 is 45
    e.backward()
    times = torch.tensor([20.0, 30, 40, 50, 60, 70], dtype=torch.float64)
    # d/d alpha_i of softmax(alpha) . t at alpha = 0: p_i (t_i - E) with p_i = 1/6
    assert torch.allclose(alpha["body.0"].grad, (times - 45) / 6)


def test_expected_latency_with_depth_logits() -> None:
    model = latency_model(fake_table(), tiny_space())
    assert model.depth_choices() == {"body": [1, 2]}
    alpha = model.init_alpha()
    depth = {"body": torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)}
    e = model.expected(alpha, depth)
    assert e.item() == pytest.approx(10 + 45 + 0.5 * 45 + 80)
    e.backward()
    # P(keep body.1) = softmax(d)[1]; dP/dd = (-1/4, 1/4); times E[body.1] = 45
    assert torch.allclose(depth["body"].grad, torch.tensor([-45 / 4, 45 / 4], dtype=torch.float64))


def test_expected_latency_bad_alpha() -> None:
    model = latency_model(fake_table(), tiny_space())
    with pytest.raises(UsageError, match=r"alpha for body.0: expected shape \(6,\), got \(3,\)"):
        model.expected({"body.0": torch.zeros(3), "body.1": torch.zeros(6)})
    with pytest.raises(UsageError, match=r"no alpha for slot body.1 \(6 choices\)"):
        model.expected({"body.0": torch.zeros(6)})


def test_derive_takes_the_argmax() -> None:
    model = latency_model(fake_table(), tiny_space())
    alpha = {"body.0": torch.eye(6)[5], "body.1": torch.eye(6)[0]}
    derived = model.derive(alpha, {"body": torch.tensor([1.0, 0.0])})
    assert [c.label() for c in derived.choices] == [
        "conv_k3",
        "mbinvres_k5_m24_se8",
        "skip",
        "pool_fc_k1",
    ]
    pred = predict(
        fake_table(), Arch("d", str(TINY), derived.choices), space=tiny_space()
    )  # a derived arch resolves and predicts
    assert pred.total_us == 10 + 70 + 80


def test_missing_entries_stop_the_latency_model() -> None:
    table = fake_table(drop=("mbinvres|k5|s1|m24|se8|relu|d1|8>8|8x8|b1|float32",))
    with pytest.raises(LookupMissError, match=r"slot body\.0: no entry"):
        latency_model(table, tiny_space())


def test_arch_json_is_editable_text() -> None:
    data = json.loads(archmod.load("zoo:tfnas-a").to_json())
    assert data["space"] == "tfnas" and data["blocks"][0] == {
        "slot": "stem",
        "op": "conv",
        "kernel": 3,
    }


def test_exact_measures_widths_instead_of_interpolating() -> None:
    table = fake_table()
    table.meta.update(warmup=1, trials=3)
    a = arch(Choice("body.0", "mbinvres", kernel=3, mid=18))
    assert predict(table, a, space=tiny_space()).blocks[1].source == "interpolated"
    pred = predict(table, a, space=tiny_space(), on_miss="measure", exact=True)
    assert [b.source for b in pred.blocks] == ["measured", "measured-now", "measured"]
    key = "mbinvres|k3|s1|m18|se0|relu|d1|8>8|8x8|b1|float32"
    assert table.rows[key]["status"] == "ok" and table.rows[key]["mid"] == 18
    assert predict(table, a, space=tiny_space()).blocks[1].source == "measured"  # kept
