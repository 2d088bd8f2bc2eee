"""Differentiable expected latency (latprof.lut.expected): the edge cases mutation testing found
untested. Expected values are worked out by hand in the comments; the basic cases are in
test_reuse.py (tiny space) and test_correction.py."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from latprof import expected_latency, latency_model
from latprof.errors import LookupMissError, SpaceError, UsageError
from latprof.lut import expected as expected_mod
from latprof.lut.table import LatencyTable
from latprof.space.builtin import get_space
from tests.test_reuse import TINY, fake_table, tiny_space

DEEP = Path(__file__).parent / "spaces" / "deep.toml"
# deep.toml's entries (step 1) and the time (µs) each fake row gets
DEEP_TIMES = {
    "conv|k3|s2|m0|se0|relu|d1|3>8|16x16|b1|float32": 10.0,
    "dil_conv|k3|s2|m0|se0|relu|d2|3>8|16x16|b1|float32": 30.0,
    "conv|k3|s1|m0|se0|relu|d1|8>8|8x8|b1|float32": 100.0,
    "pool_fc|k1|s1|m0|se0|none|d1|8>10|8x8|b1|float32": 1000.0,
}


def table_of(space, times, step: int | None) -> LatencyTable:
    """A table holding `times[key]` for every entry of `space` at `step`."""
    meta = {
        "kind": "lut",
        "source": "space",
        "space": space.name,
        "space_hash": space.hash(),
        "batch": 1,
        "dtype": "float32",
    }
    if step is not None:
        meta["width_step"] = step
    table = LatencyTable(meta)
    for entry in space.entries(step or 1):
        key = entry.key(1, "float32")
        t = times(entry) if callable(times) else times[key]
        table.add({**entry.to_dict(), "key": key, "time_us_median": t, "status": "ok"})
    return table


def deep():
    space = get_space(DEEP)
    return latency_model(table_of(space, DEEP_TIMES, None), space)


# ------------------------------------------------------------------ what the table holds


def test_table_without_width_step_is_read_at_step_one() -> None:
    # tiny at step 1: body ops k3 and k5 (se 8), mids 16..24 -> 9 + 9 = 18 choices per slot.
    # Times: k3 = mid, k5 = mid + 100 -> uniform mean (20 + 120) / 2 = 70 per body slot.
    table = table_of(tiny_space(), lambda e: e.mid + (100.0 if e.kernel == 5 else 0.0), None)
    model = latency_model(table, tiny_space())
    assert model.num_choices() == {"stem": 1, "body.0": 18, "body.1": 18, "pool_fc": 1}
    # stem conv and pool_fc have mid 0 -> 0 µs; body.0 70, body.1 70 (depth fixed at 2)
    assert model.expected(model.init_alpha()).item() == pytest.approx(140.0)


def test_entries_without_macs_count_zero_macs() -> None:
    table = fake_table()
    for row in table.rows.values():
        row["macs"] = None
    model = latency_model(table, tiny_space())
    assert model.expected(model.init_alpha(), of="macs").item() == 0.0


def test_latency_model_finds_the_tables_own_space() -> None:
    table = fake_table()
    table.meta["space_file"] = str(TINY)
    assert latency_model(table).num_choices() == {"stem": 1, "body.0": 6, "body.1": 6, "pool_fc": 1}


def test_latency_model_refusals_say_why() -> None:
    table = fake_table()
    table.meta["source"] = "models"
    with pytest.raises(
        SpaceError, match=r"^expected latency needs a table built from a search space$"
    ):
        latency_model(table, tiny_space())
    with pytest.raises(SpaceError, match=r"^the lookup table is for space 'tiny', not 'deep'$"):
        latency_model(fake_table(), get_space(DEEP))
    key = "mbinvres|k5|s1|m24|se8|relu|d1|8>8|8x8|b1|float32"
    message = (
        f"slot body.0: no entry for {key}; the table must hold the whole space "
        "(build-lut without --shard, or merge the shards)"
    )
    with pytest.raises(LookupMissError, match="^" + re.escape(message) + "$"):
        latency_model(fake_table(drop=(key,)), tiny_space())


# ------------------------------------------------------------------ logits


def test_initial_logits_only_for_real_choices_and_float64() -> None:
    model = deep()
    # stem: conv_k3 or dil_conv_k3 (2 choices); body.x.* and pool_fc have one each
    alpha = model.init_alpha()
    assert list(alpha) == ["stem"] and alpha["stem"].shape == (2,)
    depth = model.init_depth()
    assert list(depth) == ["body.x"] and depth["body.x"].dtype == torch.float64
    assert {k: v.dtype for k, v in model.keep_probabilities(None).items()} == dict.fromkeys(
        ["stem", "body.x.0", "body.x.1", "body.x.2", "pool_fc"], torch.float64
    )


def test_a_two_way_slot_needs_its_alpha() -> None:
    with pytest.raises(UsageError, match=r"^no alpha for slot stem \(2 choices\)$"):
        deep().expected({})


def test_dotted_stage_names_and_three_depths() -> None:
    model = deep()
    assert model.depth_choices() == {"body.x": [1, 2, 3]}
    # depth logits log(1, 2, 3): P(depth) = 1/6, 2/6, 3/6
    logits = torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    keep = model.keep_probabilities({"body.x": logits})
    # body.x.0 always; body.x.1 when depth >= 2: 2/6 + 3/6; body.x.2 when depth 3: 3/6
    assert keep["body.x.0"].item() == 1.0
    assert keep["body.x.1"].item() == pytest.approx(5 / 6)
    assert keep["body.x.2"].item() == pytest.approx(1 / 2)
    # stem uniform (10 + 30) / 2 = 20; body 100 · (1 + 5/6 + 1/2) = 700/3; pool_fc 1000
    e = model.expected({"stem": torch.zeros(2)}, {"body.x": logits})
    assert e.item() == pytest.approx(20 + 700 / 3 + 1000)


def test_float32_depth_logits_are_computed_in_float64() -> None:
    model = latency_model(fake_table(), tiny_space())
    depth = {"body": torch.tensor([0.0, 1.0], dtype=torch.float32)}
    # P(keep body.1) = e / (1 + e) exactly (float32 softmax is off by ~1e-8)
    p = math.e / (1 + math.e)
    e = model.expected(model.init_alpha(), depth)
    assert e.item() == pytest.approx(10 + 45 + p * 45 + 80, rel=1e-13, abs=0)


def test_bad_logits_are_named() -> None:
    model = latency_model(fake_table(), tiny_space())
    alpha = model.init_alpha()
    with pytest.raises(UsageError, match=r"^alpha for unknown slot 'nope'$"):
        model.expected({**alpha, "nope": torch.zeros(2)})
    with pytest.raises(UsageError, match=r"^depth logits for 'stem', which has no depth choice$"):
        model.expected(alpha, {"stem": torch.zeros(1)})
    with pytest.raises(UsageError, match=r"^depth for body: expected shape \(2,\), got \(3,\)$"):
        model.expected(alpha, {"body": torch.zeros(3)})
    with pytest.raises(UsageError, match=r"^expected value of 'flops': use 'time', 'sum' or"):
        model.expected(alpha, of="flops")


# ------------------------------------------------------------------ derive


def test_derive_skips_every_slot_past_the_depth_and_keeps_dilation() -> None:
    model = deep()
    derived = model.derive({"stem": torch.tensor([0.0, 1.0])}, {"body.x": torch.eye(3)[0]})
    assert derived.name == "derived" and derived.space == "deep"
    assert [(c.slot, c.op, c.dilation) for c in derived.choices] == [
        ("stem", "dil_conv", 2),
        ("body.x.0", "conv", 1),
        ("body.x.1", "skip", 1),
        ("body.x.2", "skip", 1),
        ("pool_fc", "pool_fc", 1),
    ]
    assert model.derive({"stem": torch.zeros(2)}, name="mine").name == "mine"


# ------------------------------------------------------------------ the cached model


def test_expected_latency_builds_the_model_once_per_space(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    real = expected_mod.latency_model

    def counting(table, space=None):  # type: ignore[no-untyped-def]
        built.append(space)
        return real(table, space)

    monkeypatch.setattr(expected_mod, "latency_model", counting)
    table, space = fake_table(), tiny_space()
    alpha = latency_model(table, space).init_alpha()
    first = expected_latency(table, alpha, space=space)
    again = expected_latency(table, alpha, space=space)
    assert first.item() == again.item() == pytest.approx(10 + 45 + 45 + 80)
    assert built == [space]  # the second call reused the model
    other = tiny_space()  # the same space, another object: a new model
    expected_latency(table, alpha, space=other)
    assert built == [space, other]


def test_predict_finds_a_toml_space_through_the_table() -> None:
    """A derived arch of a TOML space names the space, not its file: the table knows it."""
    from latprof import predict

    space = get_space(DEEP)
    table = table_of(space, DEEP_TIMES, None)
    table.meta["space_file"] = str(DEEP.resolve())
    arch = latency_model(table, space).derive(latency_model(table, space).init_alpha())
    assert arch.space == space.name == table.meta["space"]
    assert predict(table, arch).total_us == predict(table, arch, space=space).total_us > 0
    del table.meta["space_file"]  # a table that does not know its file
    with pytest.raises(SpaceError, match="unknown space"):
        predict(table, arch)


def test_predict_on_a_layer_table_says_what_it_is() -> None:
    from latprof import predict

    table = LatencyTable({"kind": "lut", "source": "models", "models": ["zoo:cnn"]})
    with pytest.raises(SpaceError, match=r"built from models \(--models\), not a search space"):
        predict(table, "zoo:cnn")
