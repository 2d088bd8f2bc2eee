"""Tests for the built-in zoo models and the seed papers' candidate blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from latprof.blocks import (
    ACTIVATIONS,
    ConvBNAct,
    DilatedConv,
    FusedMBConv,
    MBInvRes,
    SepConv,
    SqueezeExcite,
    Zero,
    identity,
    make_act,
)
from latprof.errors import ModelLoadError
from latprof.zoo import ZOO, ZooEntry, get_entry

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_000_CATEGORIES = {
    "Conv2d",
    "BatchNorm2d",
    "ReLU",
    "MaxPool2d",
    "Linear",
    "Dropout",
    "AvgPool2d",
}


def leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def leaf_classes(module: nn.Module) -> set[str]:
    return {type(m).__name__ for m in leaves(module)}


def count(module: nn.Module, cls: type[nn.Module]) -> int:
    return sum(isinstance(m, cls) for m in leaves(module))


def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    with torch.inference_mode():
        return module(x)


# --- registry ---------------------------------------------------------------------------


def test_zoo_lists_cnns_transformers_and_the_tfnas_archs() -> None:
    tfnas = {f"tfnas-{s}" for s in "abcd"}
    tfnas |= {f"{n}-wose" for n in tfnas} | {"tfnas-cpu-a", "tfnas-cpu-b"}
    builtin = {"cnn", "dscnn", "vit", "swin", "densenet"}
    assert set(ZOO) == builtin | {"tfnas-mbv2-a", "tfnas-mbv2-b"} | tfnas
    for name, entry in ZOO.items():
        assert isinstance(entry, ZooEntry)
        assert entry.name == name
        assert entry.input_shape[0] == 1 and len(entry.input_shape) == 4
        assert entry.description and "\n" not in entry.description
        assert ":" in entry.factory_path


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_builds_and_runs_on_default_input(name: str) -> None:
    entry = get_entry(name)
    model = entry.build()
    assert isinstance(model, nn.Module)
    out = run(model, torch.randn(entry.input_shape))
    assert out.shape == (1, 1000 if name.startswith("tfnas") else 10)  # ImageNet / CIFAR
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_build_is_deterministic_and_leaves_global_rng_alone(name: str) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = get_entry(name).build()
    assert torch.equal(torch.rand(1), expected_next)
    b = get_entry(name).build()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_get_entry_unknown_lists_known_names() -> None:
    with pytest.raises(ModelLoadError) as info:
        get_entry("resnet")
    message = str(info.value)
    assert message.startswith(
        "unknown zoo model 'resnet'; known: cnn, densenet, dscnn, swin, tfnas-a, "
    )
    assert "\n" not in message


def test_entry_with_bad_factory_raises_model_load_error() -> None:
    entry = ZooEntry("broken", (1, 3, 8, 8), "broken", "latprof.zoo.cnn:no_such_factory")
    with pytest.raises(ModelLoadError, match="broken"):
        entry.build()


def test_importing_zoo_does_not_import_torch() -> None:
    code = "import sys, latprof.zoo; print('torch' in sys.modules, len(latprof.zoo.ZOO))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["False", "17"]


# --- zoo:cnn ----------------------------------------------------------------------------


def test_cnn_has_all_seven_seed_categories() -> None:
    model = get_entry("cnn").build()
    assert leaf_classes(model) >= SEED_000_CATEGORIES
    assert count(model, nn.Linear) == 3
    for m in leaves(model):
        if isinstance(m, nn.Conv2d):
            assert m.stride == (1, 1)


def test_cnn_names_are_readable() -> None:
    names = {name for name, _ in get_entry("cnn").build().named_modules()}
    assert {"features", "classifier", "avgpool", "features.stage1.0.conv"} <= names


# --- zoo:dscnn --------------------------------------------------------------------------


def test_dscnn_structure() -> None:
    model = get_entry("dscnn").build()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.stride == (2, 2) and first_conv.kernel_size == (3, 3)
    blocks = [m for m in model.modules() if isinstance(m, MBInvRes)]
    assert len(blocks) >= 3
    assert any(b.use_residual for b in blocks)
    assert all(b.expand is not None for b in blocks)  # seed 000: every block expands
    assert isinstance(list(model.children())[-1], nn.Linear)


def test_dscnn_residual_add_is_applied() -> None:
    block = get_entry("dscnn").build().blocks[0]
    assert block.use_residual
    x = torch.randn(1, block.c_in, 8, 8)
    with torch.inference_mode():
        inner = block.project(block.depthwise(block.expand(x)))
        assert torch.allclose(block(x), inner + x)


# --- zoo:vit, zoo:swin, zoo:densenet (torchvision-like structure) ----------------------


def calls(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How many times each module's forward runs in one eval pass."""
    counts = {name: 0 for name, _ in model.named_modules()}
    handles = [
        m.register_forward_pre_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
        for name, m in model.named_modules()
    ]
    try:
        run(model, x)
    finally:
        for h in handles:
            h.remove()
    return counts


def test_vit_structure_and_fast_path_agrees_with_slow_path() -> None:
    from latprof.zoo.vit import EncoderBlock

    model = get_entry("vit").build()
    assert model.conv_proj.kernel_size == model.conv_proj.stride == (4, 4)
    assert model.encoder.pos_embedding.shape == (1, 65, 64)
    blocks = [m for m in model.modules() if isinstance(m, EncoderBlock)]
    assert len(blocks) == 4
    assert all(b.self_attention.batch_first and b.self_attention.num_heads == 4 for b in blocks)
    x = torch.randn(1, 3, 32, 32)
    counts = calls(model, x)
    assert counts["encoder.layers.encoder_layer_0.self_attention"] == 1
    assert counts["encoder.layers.encoder_layer_0.self_attention.out_proj"] == 0
    fused = run(model, x)
    model.train()  # all dropout is 0: same maths through F.multi_head_attention_forward
    with torch.no_grad():
        assert torch.allclose(model(x), fused, atol=1e-5)


def test_swin_attention_is_functional_and_shift_alternates() -> None:
    from latprof.zoo.swin import PatchMerging, ShiftedWindowAttention

    model = get_entry("swin").build()
    attns = [m for m in model.modules() if isinstance(m, ShiftedWindowAttention)]
    assert [a.shift_size for a in attns] == [[0, 0], [2, 2], [0, 0], [2, 2]]
    assert sum(isinstance(m, PatchMerging) for m in model.modules()) == 1
    counts = calls(model, torch.randn(1, 3, 64, 64))
    for name in ("features.1.0.attn", "features.3.1.attn"):
        assert counts[name] == 1
        assert counts[f"{name}.qkv"] == counts[f"{name}.proj"] == 0
    assert [a.shift_size for a in attns] == [[0, 0], [2, 2], [0, 0], [2, 2]]  # not mutated


def test_swin_shift_changes_the_output() -> None:
    from latprof.zoo.swin import SwinTransformerBlock

    block = SwinTransformerBlock(16, 2, window_size=[4, 4], shift_size=[2, 2]).eval()
    x = torch.randn(1, 8, 8, 16)
    shifted = run(block, x)
    block.attn.shift_size = [0, 0]
    assert shifted.shape == (1, 8, 8, 16)
    assert not torch.allclose(run(block, x), shifted)
    # odd sizes are padded to whole windows and cropped back
    assert run(block, torch.randn(1, 6, 7, 16)).shape == (1, 6, 7, 16)


def test_densenet_concatenates_inside_layers_and_blocks() -> None:
    from latprof.zoo.densenet import DenseBlock, DenseLayer

    model = get_entry("densenet").build()
    block = model.features.denseblock1
    assert isinstance(block, nn.ModuleDict) and isinstance(block, DenseBlock)
    assert list(block) == ["denselayer1", "denselayer2"]
    assert [layer.conv1.in_channels for layer in block.values()] == [16, 24]
    assert run(block, torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)
    layer = block.denselayer2
    assert isinstance(layer, DenseLayer)
    assert run(layer, [torch.randn(1, 16, 8, 8), torch.randn(1, 8, 8, 8)]).shape == (1, 8, 8, 8)
    assert model.features.transition1.conv.out_channels == 16
    assert model.classifier.in_features == 32


# --- MBInvRes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "size"), [(1, 16), (2, 8)])
def test_mbinvres_output_shape(stride: int, size: int) -> None:
    block = MBInvRes(16, 24, kernel=5, stride=stride, expansion=3)
    assert run(block, torch.randn(2, 16, 16, 16)).shape == (2, 24, size, size)


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "residual"),
    [(16, 16, 1, True), (16, 16, 2, False), (16, 24, 1, False), (16, 24, 2, False)],
)
def test_mbinvres_residual_only_when_allowed(
    c_in: int, c_out: int, stride: int, residual: bool
) -> None:
    block = MBInvRes(c_in, c_out, stride=stride, expansion=4)
    assert block.use_residual is residual


def test_mbinvres_se_adds_sigmoid_and_pooling() -> None:
    plain = MBInvRes(16, 16, expansion=4, act="swish")
    with_se = MBInvRes(16, 16, expansion=4, act="swish", se=True)
    assert leaf_classes(plain) == {"Conv2d", "BatchNorm2d", "SiLU"}
    assert leaf_classes(with_se) - leaf_classes(plain) == {"Sigmoid", "AdaptiveAvgPool2d"}
    assert count(with_se, nn.Conv2d) == count(plain, nn.Conv2d) + 2
    assert with_se.se is not None and plain.se is None
    # SE acts on the mid channels; default width is mid // 4 (TF-NAS).
    assert with_se.se.channels == 64 and with_se.se.se_channels == 16
    assert run(with_se, torch.randn(1, 16, 8, 8)).shape == (1, 16, 8, 8)


def test_mbinvres_tfnas_table_row() -> None:
    # Seed 004, Table 9, row 3: C_in 16, e*C_in 83, e_se*C_in 32, C_out 24, ReLU, stride 2.
    block = MBInvRes(16, 24, kernel=3, stride=2, mid_channels=83, act="relu", se=True,
                     se_channels=32)  # fmt: skip
    assert block.mid_channels == 83 and block.se_channels == 32
    assert block.se is not None and block.se.reduce.out_channels == 32
    assert run(block, torch.randn(1, 16, 112, 112)).shape == (1, 24, 56, 56)


def test_mbinvres_expansion_one_skips_expand_conv() -> None:
    e1 = MBInvRes(32, 16, expansion=1)
    e6 = MBInvRes(32, 16, expansion=6)
    by_mid = MBInvRes(32, 16, mid_channels=32)
    assert e1.expand is None and by_mid.expand is None and e6.expand is not None
    assert count(e1, nn.Conv2d) == 2
    assert count(e6, nn.Conv2d) == 3
    assert run(e1, torch.randn(1, 32, 8, 8)).shape == (1, 16, 8, 8)


def test_mbinvres_activation_choice() -> None:
    assert count(MBInvRes(8, 8, act="relu6"), nn.ReLU6) == 2
    assert count(MBInvRes(8, 8, act="relu"), nn.ReLU) == 2
    with pytest.raises(ValueError, match="either expansion or mid_channels"):
        MBInvRes(8, 8, expansion=2, mid_channels=16)


# --- FusedMBConv ------------------------------------------------------------------------


def test_fused_mbconv_conv_counts_and_shapes() -> None:
    x = torch.randn(1, 16, 16, 16)
    fused = FusedMBConv(16, 16, kernel=3, stride=1, expansion=4)
    assert count(fused, nn.Conv2d) == 2
    assert fused.fused.conv.kernel_size == (3, 3) and fused.fused.conv.out_channels == 64
    assert fused.use_residual
    assert run(fused, x).shape == (1, 16, 16, 16)

    fused_se = FusedMBConv(16, 24, kernel=5, stride=2, expansion=4, act="swish", se=True)
    assert count(fused_se, nn.Conv2d) == 4
    assert count(fused_se, nn.Sigmoid) == 1
    assert not fused_se.use_residual
    assert fused_se.se is not None and fused_se.se.se_channels == 4  # 0.25 * c_in
    assert run(fused_se, x).shape == (1, 24, 8, 8)

    single = FusedMBConv(16, 24, kernel=3, stride=2, expansion=1)
    assert count(single, nn.Conv2d) == 1 and single.project is None
    assert run(single, x).shape == (1, 24, 8, 8)


# --- U-Boost micro ops ------------------------------------------------------------------


def test_sepconv_param_count_matches_hand_computation() -> None:
    c_in, c_out, k = 4, 8, 3
    op = SepConv(c_in, c_out, kernel=k)
    params = sum(p.numel() for p in op.parameters())
    # depthwise k*k per input channel + pointwise c_in*c_out + BN weight and bias
    assert params == c_in * k * k + c_in * c_out + 2 * c_out == 84
    assert op.dw.groups == c_in
    assert run(op, torch.randn(1, c_in, 8, 8)).shape == (1, c_out, 8, 8)
    assert run(SepConv(c_in, c_out, 5, stride=2), torch.randn(1, c_in, 9, 9)).shape == (
        1,
        c_out,
        5,
        5,
    )


def test_conv_and_dilated_conv_keep_size() -> None:
    x = torch.randn(1, 8, 10, 10)
    dil = DilatedConv(8, 16, kernel=5)
    assert dil.conv.dilation == (2, 2) and dil.conv.padding == (4, 4)
    assert run(dil, x).shape == (1, 16, 10, 10)
    conv = ConvBNAct(8, 16, kernel=3, stride=2, act=None)
    assert leaf_classes(conv) == {"Conv2d", "BatchNorm2d"}
    assert run(conv, x).shape == (1, 16, 5, 5)
    with pytest.raises(ValueError, match="odd"):
        ConvBNAct(8, 8, kernel=2)


def test_identity_factory() -> None:
    assert isinstance(identity(8, 8, 1), nn.Identity)
    reduce = identity(8, 16, 2)
    assert count(reduce, nn.Conv2d) == 1 and reduce.conv.kernel_size == (1, 1)
    assert run(reduce, torch.randn(1, 8, 9, 9)).shape == (1, 16, 5, 5)


def test_zero_returns_zeros_of_the_right_shape() -> None:
    x = torch.randn(2, 8, 9, 9)
    out = run(Zero(stride=2, c_out=16), x)
    assert out.shape == (2, 16, 5, 5)
    assert out.dtype == x.dtype and not out.any()
    assert run(Zero(), x).shape == x.shape
    assert not list(Zero().children())  # a leaf of its own


# --- SE and activations -----------------------------------------------------------------


def test_squeeze_excite_shape_and_structure() -> None:
    se = SqueezeExcite(32, 8, act="relu")
    assert [type(m).__name__ for m in se.children()] == [
        "AdaptiveAvgPool2d",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "Sigmoid",
    ]
    assert run(se, torch.randn(1, 32, 7, 7)).shape == (1, 32, 7, 7)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("relu", nn.ReLU),
        ("relu6", nn.ReLU6),
        ("swish", nn.SiLU),
        ("hswish", nn.Hardswish),
        ("sigmoid", nn.Sigmoid),
    ],
)
def test_make_act_known(name: str, cls: type[nn.Module]) -> None:
    a, b = make_act(name), make_act(name)
    assert type(a) is cls and a is not b


def test_make_act_unknown_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown activation 'gelu'") as info:
        make_act("gelu")
    for name in ACTIVATIONS:
        assert name in str(info.value)
