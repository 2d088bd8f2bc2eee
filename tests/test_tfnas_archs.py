"""Checks of the TF-NAS paper tables transcribed in :mod:`latprof.space.paper_archs`."""

from __future__ import annotations

from itertools import groupby

import pytest

from latprof.space.paper_archs import PAPER_ARCHS, Layer, PaperArch

EXPECTED = [
    ("tfnas-a", "TF-NAS-A", 9, "tfnas"),
    ("tfnas-b", "TF-NAS-B", 10, "tfnas"),
    ("tfnas-c", "TF-NAS-C", 11, "tfnas"),
    ("tfnas-d", "TF-NAS-D", 12, "tfnas"),
    ("tfnas-a-wose", "TF-NAS-A-wose", 13, "tfnas"),
    ("tfnas-b-wose", "TF-NAS-B-wose", 14, "tfnas"),
    ("tfnas-c-wose", "TF-NAS-C-wose", 15, "tfnas"),
    ("tfnas-d-wose", "TF-NAS-D-wose", 16, "tfnas"),
    ("tfnas-cpu-a", "TF-NAS-CPU-A", 17, "tfnas"),
    ("tfnas-cpu-b", "TF-NAS-CPU-B", 18, "tfnas"),
    ("tfnas-mbv2-a", "TF-NAS-MBV2-A", 19, "mbv2"),
    ("tfnas-mbv2-b", "TF-NAS-MBV2-B", 20, "mbv2"),
]

# (c_out, number of MBInvRes layers with that c_out), hand-counted from Tables 9-20.
TFNAS_FULL = [(16, 1), (24, 2), (40, 3), (80, 4), (112, 4), (192, 4), (320, 1)]
MBV2_FULL = [(16, 1), (24, 2), (32, 3), (64, 4), (96, 4), (160, 4), (320, 1)]
STAGES = {
    "tfnas-a": TFNAS_FULL,
    "tfnas-b": TFNAS_FULL,
    "tfnas-c": [(16, 1), (24, 1), (40, 3), (80, 4), (112, 4), (192, 4), (320, 1)],
    "tfnas-d": [(16, 1), (24, 2), (40, 3), (80, 4), (112, 4), (192, 1), (320, 1)],
    "tfnas-a-wose": TFNAS_FULL,
    "tfnas-b-wose": TFNAS_FULL,
    "tfnas-c-wose": TFNAS_FULL,
    "tfnas-d-wose": [(16, 1), (24, 2), (40, 3), (80, 3), (112, 4), (192, 4), (320, 1)],
    "tfnas-cpu-a": TFNAS_FULL,
    "tfnas-cpu-b": [(16, 1), (24, 2), (40, 3), (80, 4), (112, 1), (192, 4), (320, 1)],
    "tfnas-mbv2-a": MBV2_FULL,
    "tfnas-mbv2-b": MBV2_FULL,
}

ARCHS = list(PAPER_ARCHS.values())
IDS = list(PAPER_ARCHS)
TFNAS = [a for a in ARCHS if a.space == "tfnas"]
TFNAS_IDS = [a.name for a in TFNAS]


def _mb(arch: PaperArch) -> list[Layer]:
    return [layer for layer in arch.layers if layer.op == "mbinvres"]


def _stages(arch: PaperArch) -> list[tuple[int, int]]:
    return [(c, len(list(g))) for c, g in groupby(_mb(arch), key=lambda layer: layer.c_out)]


def _macs(arch: PaperArch) -> float:
    """Multiply-adds (M) of the architecture, counted the way the paper's FLOPs are."""
    total = 1280 * 1000  # Fc
    for layer in arch.layers:
        out = (layer.h // layer.stride) ** 2
        if layer.op == "conv":
            total += layer.c_in * layer.c_out * layer.kernel**2 * out
            continue
        if layer.mid != layer.c_in:  # the e=1 stage-2 block has no expansion conv
            total += layer.c_in * layer.mid * layer.h**2
        total += layer.kernel**2 * layer.mid * out + layer.mid * layer.c_out * out
        total += 2 * layer.mid * layer.se
    return total / 1e6


def test_names_titles_tables_in_order() -> None:
    assert len(PAPER_ARCHS) == 12
    got = [(a.name, a.title, a.table, a.space) for a in ARCHS]
    assert got == EXPECTED
    assert all(key == arch.name for key, arch in PAPER_ARCHS.items())


def test_paper_metrics() -> None:
    flops = {a.name: a.flops_m for a in ARCHS}
    assert flops == {
        "tfnas-a": 457,
        "tfnas-b": 361,
        "tfnas-c": 284,
        "tfnas-d": 219,
        "tfnas-a-wose": 504,
        "tfnas-b-wose": 433,
        "tfnas-c-wose": 315,
        "tfnas-d-wose": 286,
        "tfnas-cpu-a": 305,
        "tfnas-cpu-b": 230,
        "tfnas-mbv2-a": 445,
        "tfnas-mbv2-b": 297,
    }
    assert PAPER_ARCHS["tfnas-a"].top1 == 76.9
    assert PAPER_ARCHS["tfnas-d-wose"].top1 == 74.0
    assert PAPER_ARCHS["tfnas-cpu-b"].top1 == 74.4
    assert PAPER_ARCHS["tfnas-mbv2-b"].top1 == 73.7
    # Within each family, more FLOPs buys more accuracy.
    for family in (ARCHS[0:4], ARCHS[4:8], ARCHS[8:10], ARCHS[10:12]):
        assert [a.top1 for a in family] == sorted((a.top1 for a in family), reverse=True)


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_stem_and_head(arch: PaperArch) -> None:
    act = "relu6" if arch.space == "mbv2" else "relu"
    assert arch.layers[0] == Layer("conv", 3, 3, 0, 0, 32, act, 2, 224)
    act = "relu6" if arch.space == "mbv2" else "swish"
    assert arch.layers[-1] == Layer("conv", 1, 320, 0, 0, 1280, act, 1, 7)
    assert all(layer.op == "mbinvres" for layer in arch.layers[1:-1])
    assert {layer.kernel for layer in _mb(arch)} <= {3, 5}


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_channels_and_sizes_chain(arch: PaperArch) -> None:
    for prev, nxt in zip(arch.layers[:-1], arch.layers[1:], strict=True):
        assert prev.c_out == nxt.c_in
        assert prev.h % prev.stride == 0
        assert nxt.h == prev.h // prev.stride
    assert [layer.h for layer in arch.layers if layer.stride == 2] == [224, 112, 56, 28, 14]
    # Down-sampling happens at the first layer of a stage, except for the stages of
    # c_out 16, 112 (tfnas) / 96 (mbv2) and 320, which keep the resolution.
    for layer in _mb(arch):
        widens = layer.c_in != layer.c_out
        assert (layer.stride == 2) == (widens and layer.c_out not in (16, 112, 96, 320))


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_stage_layer_counts(arch: PaperArch) -> None:
    stages = _stages(arch)
    assert stages == STAGES[arch.name]
    assert len(_mb(arch)) == sum(n for _, n in stages)
    assert len(arch.layers) == len(_mb(arch)) + 2


def test_hand_checked_rows() -> None:
    a = PAPER_ARCHS["tfnas-a"]
    assert len(_mb(a)) == 19
    assert a.layers[2] == Layer("mbinvres", 3, 16, 83, 32, 24, "relu", 2, 112)
    assert a.layers[19] == Layer("mbinvres", 5, 192, 1203, 384, 320, "swish", 1, 7)
    b = PAPER_ARCHS["tfnas-b"]
    assert b.layers[3] == Layer("mbinvres", 3, 24, 118, 48, 24, "relu", 1, 56)
    c = PAPER_ARCHS["tfnas-c"]
    assert [n for c_out, n in _stages(c) if c_out == 24] == [1]
    assert len(_mb(c)) == 18
    d = PAPER_ARCHS["tfnas-d"]
    assert len(_mb(d)) == 16
    assert d.layers[16] == Layer("mbinvres", 5, 192, 768, 192, 320, "swish", 1, 7)
    assert len(_mb(PAPER_ARCHS["tfnas-d-wose"])) == 18
    assert len(_mb(PAPER_ARCHS["tfnas-cpu-b"])) == 16
    mbv2_b = PAPER_ARCHS["tfnas-mbv2-b"]
    assert mbv2_b.layers[-2] == Layer("mbinvres", 5, 160, 897, 0, 320, "relu6", 1, 7)


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_activations(arch: PaperArch) -> None:
    for layer in arch.layers:
        if arch.space == "mbv2":
            assert layer.act == "relu6"
        elif layer.c_out <= 24 or layer.h == 224:  # the stem conv (c_out 32) is ReLU too
            assert layer.act == "relu"
        else:  # c_out 40 and wider, the 1x1 head conv included
            assert layer.act == "swish"


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_se_presence(arch: PaperArch) -> None:
    se_layers = [layer for layer in _mb(arch) if layer.se]
    assert all(layer.se == 0 for layer in arch.layers if layer.op == "conv")
    if arch.space == "mbv2" or arch.name.endswith("-wose"):
        assert se_layers == []
    else:
        assert se_layers
        # The fixed stage-2 block keeps its SE (32 -> 8) in every SE architecture.
        assert arch.layers[1] == Layer("mbinvres", 3, 32, 32, 8, 16, "relu", 1, 112)


@pytest.mark.parametrize("arch", TFNAS, ids=TFNAS_IDS)
def test_se_widths(arch: PaperArch) -> None:
    """SE width is c_in for e in [2, 4] ("e3" ops) and 2 c_in for e in [4, 8] ("e6" ops)."""
    for layer in _mb(arch)[1:]:
        if not layer.se:
            continue
        e = layer.mid / layer.c_in
        if layer.se == layer.c_in:
            assert 2 <= e <= 4, layer
        else:
            assert layer.se == 2 * layer.c_in, layer
            assert 4 <= e <= 8, layer


def test_se_equal_to_c_in_rows() -> None:
    """The rows whose SE width is 1 x c_in (all others are 2 x c_in or the stage-2 block)."""
    rows = {
        a.name: [i for i, layer in enumerate(a.layers) if layer.se and layer.se == layer.c_in]
        for a in TFNAS
    }
    assert {name: idx for name, idx in rows.items() if idx} == {
        "tfnas-c": [3, 17],
        "tfnas-d": [4, 10, 12, 13, 14, 16],
        "tfnas-cpu-a": [9],
        "tfnas-cpu-b": [9],
    }


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_expansion_range(arch: PaperArch) -> None:
    mb = _mb(arch)
    assert (mb[0].c_in, mb[0].mid, mb[0].c_out) == (32, 32, 16)  # fixed k3_e1 block
    for layer in mb[1:]:
        assert 2 * layer.c_in <= layer.mid <= 8 * layer.c_in, layer
    for layer in arch.layers:
        if layer.op == "conv":
            assert layer.mid == 0


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_macs_match_paper_flops(arch: PaperArch) -> None:
    """Recounting the FLOPs from the transcribed rows reproduces Tables 4 and 6.

    TF-NAS-A-wose is the exception: Table 13 sums to ~512.8M against 504M in Table 4
    (no single-cell typo in Table 13 explains the gap).
    """
    macs = _macs(arch)
    if arch.name == "tfnas-a-wose":
        assert macs == pytest.approx(512.8, abs=0.1)
    else:
        assert macs == pytest.approx(arch.flops_m, abs=1.0)
