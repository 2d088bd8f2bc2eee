"""Built-in search spaces, the registry and TOML spaces (latprof.space.builtin / toml_file)."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from latprof.errors import SpaceError
from latprof.space.builtin import (
    BUILTIN,
    DEFAULT_WIDTH_STEPS,
    default_width_step,
    describe,
    get_space,
)
from latprof.space.model import SE_RULES, Candidate, Entry, SearchSpace, Slot
from latprof.space.toml_file import dump_toml, load_toml_space, loads_toml_space, parse_op

EXAMPLE = Path(__file__).resolve().parents[1] / "tables" / "space-example.toml"


@pytest.fixture(scope="module")
def spaces() -> dict[str, SearchSpace]:
    return {name: get_space(name) for name in BUILTIN}


# --- entry counts, checked by hand --------------------------------------------------------


def mbinvres_widths(c: int, lo: int, hi: int, step: int = 1) -> int:
    """Mid widths of one op with expansion [lo, hi] at c_in c: lo*c, lo*c+step, ..., hi*c."""
    return math.ceil((hi - lo) * c / step) + 1


def test_mbv2_entry_counts(spaces: dict[str, SearchSpace]) -> None:
    space = spaces["mbv2"]
    # Per searchable slot (c_in c): k3/k5 x e [2,4] (2c+1 widths) and e [4,8] (4c+1 widths);
    # e3 and e6 share the width 4c (same entry, no SE) -> 2 * (2c+1 + 4c+1 - 1) = 12c + 2.
    # Distinct slot shapes: each stage's first layer (c_in = previous c_out) and, where L > 1,
    # its later layers (c_in = c_out, all the same entries):
    c_ins = [16, 24, 24, 32, 32, 64, 64, 96, 96, 160, 160]  # stages 3..8 (stage 8: L = 1)
    assert [12 * c + 2 for c in c_ins] == [194, 290, 290, 386, 386, 770, 770, 1154, 1154, 1922,
                                           1922]  # fmt: skip
    per_slot = sum(2 * (mbinvres_widths(c, 2, 4) + mbinvres_widths(c, 4, 8) - 1) for c in c_ins)
    assert per_slot == 9238
    # + 4 fixed slots with one entry each: stem conv, stage-2 MBInvRes e1, head conv, pool_fc
    assert len(space.entries(1)) == 9238 + 4 == 9242
    # width step 8 (all c_in are multiples of 4): e3 has 2c/8+1, e6 4c/8+1 widths, 4c shared:
    # 2 * (c/4 + 1 + c/2 + 1 - 1) = 1.5c + 2 per shape
    assert sum(2 * (c // 4 + 1 + c // 2 + 1 - 1) for c in c_ins) == 1174
    assert DEFAULT_WIDTH_STEPS["mbv2"] == 8
    assert len(space.entries(8)) == 1174 + 4 == 1178
    # slots: stem, stage2, 2+3+4+4+4+1 searchable, head, pool_fc
    assert len(space.slots) == 2 + 18 + 2 == 22


def test_tfnas_entry_counts(spaces: dict[str, SearchSpace]) -> None:
    space = spaces["tfnas"]
    # 8 ops per searchable slot: k3/k5 x e [2,4] / [4,8] x no SE / SE.
    # no SE: 2 * (2c+1 + 4c+1 - 1) = 12c + 2 (e3 and e6 share width 4c);
    # SE: e3 has SE c_in, e6 SE 2*c_in, so width 4c gives two entries: 2 * (6c + 2) = 12c + 4.
    c_ins = [16, 24, 24, 40, 40, 80, 80, 112, 112, 192, 192]
    assert sum(c_ins) == 912
    assert sum(24 * c + 6 for c in c_ins) == 24 * 912 + 6 * 11 == 21954
    # + 5 fixed entries: stem, stage 2 with SE 8 and without SE, head conv, pool_fc
    assert len(space.entries(1)) == 21954 + 5 == 21959
    # width step 8 (all c_in multiples of 8): no SE 1.5c + 2, SE 1.5c + 4 -> 3c + 6 per shape
    assert DEFAULT_WIDTH_STEPS["tfnas"] == 8
    assert len(space.entries(8)) == 3 * 912 + 6 * 11 + 5 == 2807
    assert len(space.slots) == 22


def test_uboost_entry_counts(spaces: dict[str, SearchSpace]) -> None:
    space = spaces["uboost"]
    # 5 distinct slot shapes (32x32x16 normal, 32->16x16 reduction 16->32, 16x16x32 normal,
    # 16->8x8 reduction 32->64, 8x8x64 normal) x 8 ops (no width search) + stem + pool_fc
    assert len(space.entries(1)) == 5 * 8 + 2 == 42
    assert len(space.entries(DEFAULT_WIDTH_STEPS["uboost"])) == 42
    assert len(space.slots) == 1 + 2 + 3 + 3 + 1 == 10


def test_describe_rows() -> None:
    rows = {row["name"]: row for row in describe()}
    assert set(rows) == {"mbv2", "tfnas", "uboost"}
    assert (rows["mbv2"]["entries_step1"], rows["mbv2"]["entries_default"]) == (9242, 1178)
    assert (rows["tfnas"]["entries_step1"], rows["tfnas"]["entries_default"]) == (21959, 2807)
    assert rows["uboost"]["slots"] == 10 and rows["uboost"]["width_step"] == 8
    assert all(row["description"] for row in rows.values())
    assert default_width_step("my-own") == 8


# --- the spaces against the seed tables ---------------------------------------------------------


def walk(rows: list[tuple[int, int, int, int, int, int]], act_of: dict[int, str]) -> list[Entry]:
    """Entries of a table's MBInvRes rows (k, c_in, mid, se, c_out, stride), from 112x112."""
    out, h = [], 112
    for k, c_in, mid, se, c_out, s in rows:
        out.append(Entry("mbinvres", k, s, mid, se, act_of[c_out], 1, c_in, c_out, h, h))
        h = math.ceil(h / s)
    return out


# seed 004 Table 12 (TF-NAS-D): the one net whose e3-type SE ops have mid > 2 c_in
TFNAS_D = [
    (3, 32, 32, 8, 16, 1), (3, 16, 65, 32, 24, 2), (3, 24, 63, 0, 24, 1),
    (3, 24, 58, 24, 40, 2), (5, 40, 106, 0, 40, 1), (5, 40, 80, 0, 40, 1),
    (3, 40, 192, 80, 80, 2), (3, 80, 219, 0, 80, 1), (5, 80, 320, 0, 80, 1),
    (3, 80, 212, 80, 80, 1), (3, 80, 165, 0, 112, 1), (5, 112, 245, 112, 112, 1),
    (3, 112, 292, 112, 112, 1), (3, 112, 408, 112, 112, 1), (3, 112, 538, 0, 192, 2),
    (5, 192, 768, 192, 320, 1),
]  # fmt: skip
# seed 004 Table 20 (TF-NAS-MBV2-B)
MBV2_B = [
    (3, 32, 32, 0, 16, 1), (5, 16, 64, 0, 24, 2), (5, 24, 96, 0, 24, 1), (5, 24, 96, 0, 32, 2),
    (3, 32, 159, 0, 32, 1), (5, 32, 128, 0, 32, 1), (5, 32, 153, 0, 64, 2),
    (3, 64, 336, 0, 64, 1), (5, 64, 256, 0, 64, 1), (5, 64, 256, 0, 64, 1),
    (5, 64, 301, 0, 96, 1), (3, 96, 439, 0, 96, 1), (3, 96, 459, 0, 96, 1),
    (5, 96, 386, 0, 96, 1), (3, 96, 595, 0, 160, 2), (5, 160, 852, 0, 160, 1),
    (3, 160, 1004, 0, 160, 1), (5, 160, 1037, 0, 160, 1), (5, 160, 897, 0, 320, 1),
]  # fmt: skip


def test_tfnas_covers_table_12(spaces: dict[str, SearchSpace]) -> None:
    entries = set(spaces["tfnas"].entries(1))
    acts = {c: ("relu" if c <= 24 else "swish") for c in (16, 24, 40, 80, 112, 192, 320)}
    layers = walk(TFNAS_D, acts)
    missing = [e for e in layers if e not in entries]
    assert not missing
    fixed = [
        Entry("conv", 3, 2, 0, 0, "relu", 1, 3, 32, 224, 224),
        Entry("conv", 1, 1, 0, 0, "swish", 1, 320, 1280, 7, 7),
        Entry("pool_fc", 1, 1, 0, 0, "none", 1, 1280, 1000, 7, 7),
    ]
    assert all(e in entries for e in fixed)


def test_mbv2_covers_table_20(spaces: dict[str, SearchSpace]) -> None:
    entries = set(spaces["mbv2"].entries(1))
    acts = dict.fromkeys((16, 24, 32, 64, 96, 160, 320), "relu6")
    assert all(e in entries for e in walk(MBV2_B, acts))


def test_se_rules_match_tfnas_tables() -> None:
    # (c_in, mid, e_se) from Tables 9-18: e3-type (mid in [2, 4] c_in) -> c_in;
    # e6-type (mid in [4, 8] c_in) -> 2 c_in; stage 2 (mid 32) -> mid / 4 = 8.
    e3 = [(24, 48, 24), (24, 58, 24), (80, 212, 80), (112, 245, 112), (112, 408, 112),
          (192, 768, 192), (192, 384, 192), (80, 160, 80)]  # fmt: skip
    e6 = [(16, 83, 32), (24, 138, 48), (40, 170, 80), (112, 555, 224), (192, 881, 384),
          (16, 64, 32), (192, 768, 384)]  # fmt: skip
    assert all(SE_RULES["c_in"](c, m) == se for c, m, se in e3)
    assert all(SE_RULES["2c_in"](c, m) == se for c, m, se in e6)
    assert SE_RULES["quarter"](32, 32) == 8
    assert "tfnas" not in SE_RULES  # min(2 c_in, mid // 2) gave 29 for (24, 58), not 24


# --- validity, registry --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtins_validate_and_chain_to_the_classifier(
    name: str, spaces: dict[str, SearchSpace]
) -> None:
    space = spaces[name]
    assert space.validate() is space
    assert space.name == name and space.notes
    assert space.slots[-1].candidates == (Candidate("pool_fc"),)
    # the chain starts at the image; stem and classifier are fixed (one candidate each)
    assert not space.slots[0].skippable and space.slots[0].c_in == 3
    assert len(space.slots[0].candidates) == 1 and space.slots[0].candidates[0].op == "conv"
    # a skippable slot keeps the shape (later layers of a stage)
    assert all(s.stride == 1 and s.c_in == s.c_out for s in space.slots if s.skippable)


def test_get_space_names_and_paths() -> None:
    assert get_space("mbv2") == BUILTIN["mbv2"]()
    assert get_space(str(EXAMPLE)) == get_space(EXAMPLE)
    with pytest.raises(SpaceError) as err:
        get_space("x")
    assert str(err.value) == (
        "unknown space 'x'; known: mbv2, tfnas, uboost (or a path to a .toml file)"
    )
    with pytest.raises(SpaceError, match=r"nope\.toml: no such file"):
        get_space("nope.toml")


def test_mbv2_strides_and_layers(spaces: dict[str, SearchSpace]) -> None:
    slots = {s.name: s for s in spaces["mbv2"].slots}
    # Table 5 Input column: 112 -> 56 -> 28 -> 14 -> 14 -> 7 -> 7
    firsts = ["stage3.0", "stage4.0", "stage5.0", "stage6.0", "stage7.0", "stage8"]
    assert [slots[n].h for n in firsts] == [112, 56, 28, 14, 14, 7]
    assert [slots[n].stride for n in firsts] == [2, 2, 2, 1, 2, 1]
    later = slots["stage4.2"]
    assert (later.c_in, later.c_out, later.stride, later.skippable) == (32, 32, 1, True)
    assert not slots["stage4.0"].skippable
    assert slots["stage2"].entries() == [
        Entry("mbinvres", 3, 1, 32, 0, "relu6", 1, 32, 16, 112, 112)
    ]


# --- width step -------------------------------------------------------------------------------


def test_width_step_includes_both_ends() -> None:
    cand = Candidate("mbinvres", kernel=3, expansion=(2, 4))
    assert cand.mids(10) == list(range(20, 41))
    assert cand.mids(10, 8) == [20, 28, 36, 40]  # 40 added: both ends
    assert cand.mids(10, 20) == [20, 40]
    assert cand.mids(10, 1000) == [20, 40]
    assert Candidate("conv", kernel=3).mids(10, 8) == [0]


def test_width_step_entries_are_a_subset(spaces: dict[str, SearchSpace]) -> None:
    space = spaces["mbv2"]
    fine, coarse = set(space.entries(1)), space.entries(8)
    assert set(coarse) <= fine
    slot = next(s for s in space.slots if s.name == "stage5.0")  # c_in 32
    mids = sorted({e.mid for e in slot.entries(8) if e.kernel == 3})
    assert mids[0] == 64 and mids[-1] == 256 and 128 in mids
    assert len(space.entries(10**6)) == 4 + 11 * 2 * 3  # ends only: 2c, 4c, 8c per kernel


# --- hash ---------------------------------------------------------------------------------------


def test_hash_is_stable_and_distinguishes_spaces(spaces: dict[str, SearchSpace]) -> None:
    hashes = {name: space.hash() for name, space in spaces.items()}
    assert len(set(hashes.values())) == 3
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in hashes.values())
    assert {name: factory().hash() for name, factory in BUILTIN.items()} == hashes
    mbv2 = spaces["mbv2"]
    assert replace(mbv2, name="other", description="x").hash() == hashes["mbv2"]
    changed = list(mbv2.slots)
    changed[3] = replace(changed[3], skippable=not changed[3].skippable)
    assert replace(mbv2, slots=tuple(changed)).hash() != hashes["mbv2"]
    # integer and float expansions are the same candidate and hash the same
    a = Candidate("mbinvres", kernel=3, expansion=(2, 4))
    b = Candidate("mbinvres", kernel=3, expansion=(2.0, 4.0))
    slot = Slot("s", 8, 8, 4, 4, 1, "relu", (a,))
    assert (
        SearchSpace("x", "", (slot,)).hash()
        == SearchSpace("y", "", (replace(slot, candidates=(b,)),)).hash()
    )


# --- TOML ---------------------------------------------------------------------------------------


def test_example_is_mbv2(spaces: dict[str, SearchSpace]) -> None:
    space = load_toml_space(EXAMPLE)
    assert space.validate() is space
    assert space == spaces["mbv2"]
    assert space.entries(1) == spaces["mbv2"].entries(1)
    assert space.hash() == spaces["mbv2"].hash()


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_dump_load_round_trip(name: str, spaces: dict[str, SearchSpace]) -> None:
    text = dump_toml(spaces[name])
    assert loads_toml_space(text, f"{name}.toml") == spaces[name]


def test_dump_round_trip_of_irregular_slots() -> None:
    odd = Candidate("dil_conv", kernel=3, dilation=1)  # not the default dilation 2
    fixed_mid = Candidate("mbinvres", kernel=5, mid=24, se="half", act="hswish")
    slots = (
        Slot("a", 8, 8, 16, 16, 1, "relu", (odd,)),
        Slot("b", 8, 8, 16, 16, 1, "relu", (fixed_mid, Candidate("identity")), skippable=True),
        Slot("c.0", 8, 12, 16, 16, 2, "swish", (Candidate("zero"),)),
        Slot("c.1", 12, 12, 8, 8, 1, "relu", (Candidate("zero"),)),  # act differs: no group
    )
    space = SearchSpace("odd", 'quote " and \\ back', slots, ("n",)).validate()
    assert loads_toml_space(dump_toml(space)) == space


def test_shorthand_and_inline_ops_agree() -> None:
    inline = {"op": "mbinvres", "kernel": 3, "expansion": [2, 4], "se": "c_in", "act": "swish"}
    assert parse_op("mbinvres_k3_e2-4_se-c_in_swish") == parse_op(inline)
    assert parse_op("sep_conv_k5") == Candidate("sep_conv", kernel=5)
    assert parse_op("dil_conv_k3") == Candidate("dil_conv", kernel=3, dilation=2)
    assert parse_op("mbinvres_k3_e3").expansion == (3.0, 3.0)
    assert parse_op("fused_mbconv_k3_m64").mid == 64
    assert parse_op("identity") == Candidate("identity")
    assert parse_op({"op": "mbinvres", "kernel": 3, "expansion": 6}, default_se="quarter").se == (
        "quarter"
    )


def test_defaults_names_and_skippable_stages() -> None:
    space = loads_toml_space(
        """
        name = "tiny"
        input = [3, 16, 16]
        [defaults]
        act = "hswish"
        se = "quarter"
        [[stage]]
        c_out = 8
        stride = 2
        ops = ["conv_k3"]
        [[stage]]
        c_out = 8
        layers = [0, 2]
        ops = ["mbinvres_k3_e2-4", "identity"]
        [[stage]]
        c_out = 5
        ops = ["pool_fc"]
        """
    )
    assert [s.name for s in space.slots] == ["stage1", "stage2.0", "stage2.1", "stage3"]
    assert [s.skippable for s in space.slots] == [False, True, True, False]
    assert {s.act for s in space.slots[:3]} == {"hswish"}
    assert space.slots[1].candidates[0].se == "quarter"  # default se for mbinvres only
    assert space.slots[1].candidates[1].se == "none"
    assert (space.slots[1].h, space.slots[3].h) == (8, 8)


BASE = """
name = "t"
input = [3, 32, 32]
[[stage]]
c_out = 16
stride = 2
ops = ["conv_k3"]
[[stage]]
c_out = 32
stride = 2
ops = ["mbinvres_k3_e2-4"]
[[stage]]
c_out = 32
layers = [1, 2]
ops = ["sep_conv_k3"]
[[stage]]
c_out = 40
ops = ["conv_k1"]
[[stage]]
c_out = 10
ops = ["pool_fc"]
"""


def base_with(stage: int, old: str, new: str) -> str:
    """BASE with `old` replaced by `new` inside the given (1-based) stage."""
    head, *stages = BASE.split("[[stage]]")
    assert old in stages[stage - 1], (stage, old)
    stages[stage - 1] = stages[stage - 1].replace(old, new, 1)
    return "[[stage]]".join([head, *stages])


def load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(SpaceError) as err:
        load_toml_space(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: "), msg
    return msg[len(f"{path}: ") :]


def test_base_loads() -> None:
    space = loads_toml_space(BASE)
    assert [(s.c_in, s.c_out, s.h) for s in space.slots] == [
        (3, 16, 32), (16, 32, 16), (32, 32, 8), (32, 32, 8), (32, 40, 8), (40, 10, 8)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            base_with(3, '"sep_conv_k3"', '"mbconv_k3"'),
            "stage 3: unknown op 'mbconv'; known: conv, dil_conv, sep_conv, mbinvres, "
            "fused_mbconv, identity, zero, pool_fc",
        ),
        (
            base_with(3, '"sep_conv_k3"', '{op = "mbconv", kernel = 3}'),
            "stage 3: unknown op 'mbconv'; known: conv,",
        ),
        (base_with(2, "stride = 2", "stride = 3"), "stage 2: stride must be 1 or 2, got 3"),
        (
            base_with(4, "c_out = 40", "c_in = 16\nc_out = 40"),
            "stage 4: c_in 16 doesn't chain with the previous stage's c_out 32",
        ),
        (
            base_with(1, "c_out = 16", "c_in = 4\nc_out = 16"),
            "stage 1: c_in 4 doesn't chain with the input's 3 channels",
        ),
        (
            base_with(3, "c_out = 32", "h = 16\nc_out = 32"),
            "stage 3: h 16 doesn't chain with the previous stage's output 8x8",
        ),
        (base_with(2, "c_out = 32\n", ""), "stage 2: missing required field 'c_out'"),
        (base_with(2, 'ops = ["mbinvres_k3_e2-4"]', ""), "stage 2: missing required field 'ops'"),
        (BASE.replace('name = "t"', ""), "missing required field 'name'"),
        (BASE.replace("input = [3, 32, 32]", ""), "missing required field 'input' ([C, H, W])"),
        (
            BASE.replace("[3, 32, 32]", "[3, 32]"),
            "input must be [C, H, W], positive integers; got [3, 32]",
        ),
        (
            base_with(2, "c_out = 32", "c_out = 32\nkernel = 3"),
            "stage 2: unknown field 'kernel'; known: name, c_out, stride, layers, act, ops, c_in,"
            " h, w",
        ),
        (base_with(2, "c_out = 32", "c_out = 0"), "stage 2: c_out must be positive, got 0"),
        (base_with(2, "c_out = 32", 'c_out = "32"'), "stage 2: c_out must be an integer, got"),
        (
            base_with(3, "layers = [1, 2]", "layers = [2, 1]"),
            "stage 3: layers [min, max] needs 0 <= min <= max and max >= 1, got [2, 1]",
        ),
        (
            base_with(3, "layers = [1, 2]", "layers = [1, 1000000000]"),
            "stage 3: layers 1000000000 is more than 1024 per stage; split it",
        ),
        (
            base_with(3, "layers = [1, 2]", "layers = 1025"),
            "stage 3: layers 1025 is more than 1024 per stage; split it",
        ),
        (
            base_with(2, 'ops = ["mbinvres_k3_e2-4"]', 'layers = [0, 1]\nops = ["conv_k3"]'),
            "stage 2: layers [0, 1] lets the whole stage be skipped, which needs stride 1 and "
            "c_in == c_out (got stride 2, 16 -> 32)",
        ),
        (base_with(2, '"mbinvres_k3_e2-4"', '"mbinvres_k4_e2-4"'), "kernel must be odd, got 4"),
        (base_with(2, '"mbinvres_k3_e2-4"', '"mbinvres_e2-4"'), "missing kernel"),
        (base_with(2, '"mbinvres_k3_e2-4"', '"mbinvres_k3"'), "missing expansion"),
        (base_with(2, '"mbinvres_k3_e2-4"', '"mbinvres_k3_e4-2"'), "expansion needs 0 < low"),
        (
            base_with(
                2, '"mbinvres_k3_e2-4"', '{op = "mbinvres", kernel = 3, mid = 8, expansion = 2}'
            ),
            "give expansion or mid, not both",
        ),
        (
            base_with(2, '"mbinvres_k3_e2-4"', '"mbinvres_k3_e2-4_se-eighth"'),
            "unknown se rule 'eighth'; known: none, quarter, half, c_in, 2c_in",
        ),
        (base_with(1, '"conv_k3"', '"conv_k3_se-quarter"'), "conv has no mid width, so no se"),
        (base_with(1, '"conv_k3"', '"conv_k3_e2"'), "conv has no mid width, so no expansion"),
        (
            base_with(1, '"conv_k3"', '{op = "conv", kernal = 3}'),
            "stage 1: op {op = \"conv\", kernal = 3}: unknown field 'kernal'",
        ),
        (base_with(1, '"conv_k3"', '"conv k3"'), "stage 1: can't read op 'conv k3'"),
        (base_with(1, '"conv_k3"', '"conv_k3", "conv_k3"'), "op 'conv_k3' is listed twice"),
        (base_with(1, "c_out = 16", 'c_out = 16\nact = "gelu"'), "stage 1: unknown act 'gelu'"),
        (base_with(4, '"conv_k1"', '"pool_fc"'), "stage 4: pool_fc must be the last stage"),
        (base_with(5, '"pool_fc"', '"pool_fc", "conv_k1"'), "pool_fc can't be mixed"),
        (BASE.replace('name = "t"', 'name = "t"\nnmae = "u"'), "unknown field 'nmae'"),
        (BASE.split("[[stage]]")[0], "no stages: add at least one [[stage]] table"),
        (
            BASE.split("[[stage]]")[0] + "[stage]\nc_out = 3\n",
            "stage must be an array of tables: write [[stage]]",
        ),
        (
            BASE + '[defaults]\nse = "big"\n',
            "unknown se rule 'big'",
        ),
        (
            BASE.replace("c_out = 16", "c_out = 16\nc_out = 17"),
            "not valid TOML: Cannot overwrite a value (line 6, column 11)",
        ),
        ('name = "t"\ninput = [3, 32, 32\n', "not valid TOML: Unclosed array"),
    ],
)
def test_toml_errors(tmp_path: Path, text: str, message: str) -> None:
    msg = load_error(tmp_path, text)
    assert msg.startswith(message) or message in msg, msg


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(SpaceError, match="not valid TOML: not UTF-8"):
        load_toml_space(path)


# --- building entries ------------------------------------------------------------------------


def one_of_each_kind(spaces: dict[str, SearchSpace]) -> dict[str, Entry]:
    """The cheapest entry of every op kind (SE / no SE, identity / projection) in the spaces."""
    picked: dict[str, tuple[int, Entry]] = {}
    for space in spaces.values():
        for e in space.entries(DEFAULT_WIDTH_STEPS[space.name]):
            kind = e.op
            if e.op == "mbinvres":
                kind += "+se" if e.se else ""
                kind += "+expand" if e.mid != e.c_in else ""
            if e.op == "identity":
                kind += "+proj" if (e.stride != 1 or e.c_in != e.c_out) else ""
            cost = e.h * e.w * max(e.mid, e.c_in) * e.c_out * e.kernel**2
            if kind not in picked or cost < picked[kind][0]:
                picked[kind] = (cost, e)
    return {kind: e for kind, (_, e) in picked.items()}


def test_entries_build_and_run(spaces: dict[str, SearchSpace]) -> None:
    entries = one_of_each_kind(spaces)
    assert set(entries) == {
        "conv", "sep_conv", "dil_conv", "identity", "identity+proj", "zero", "pool_fc",
        "mbinvres", "mbinvres+expand", "mbinvres+se", "mbinvres+se+expand",
    }  # fmt: skip
    batch = 2
    with torch.no_grad():
        for kind, e in entries.items():
            module = e.build()
            out = module(torch.randn(e.input_shape(batch)))
            if e.op == "pool_fc":
                assert out.shape == (batch, e.c_out), kind
            else:
                expect = (batch, e.c_out, math.ceil(e.h / e.stride), math.ceil(e.w / e.stride))
                assert out.shape == expect, kind
