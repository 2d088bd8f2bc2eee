"""The hand MAC counts of ``tests/hand_macs.py`` against ``torch.utils.flop_counter``.

``FlopCounterMode`` counts 2 FLOPs per MAC for convolutions, (add)mm and bmm, and reports
per-module totals *inclusive* of children, keyed ``"RootClass.qualified.name"``, so each
module's count is compared with the sum of the hand *self* counts over its subtree.

It has no formula for ``aten._native_multi_head_attention`` (the fused path ViT's
``nn.MultiheadAttention`` takes in eval mode under ``inference_mode``) nor for the CPU
flash kernel of ``scaled_dot_product_attention``; ViT is checked in train mode (dropout is 0)
under ``no_grad`` with the math SDPA backend, where attention decomposes into addmm and bmm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from latprof.zoo import get_entry
from tests.hand_macs import HAND_MACS, subtree, total, with_zeros

FULLY_COUNTED = ["swin", "densenet", "dscnn"]  # FlopCounterMode sees every op in eval


def flop_counts(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """FlopCounterMode's inclusive FLOPs per module key (``"Global"`` included)."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    return {key: sum(by_op.values()) for key, by_op in counter.get_flop_counts().items()}


def assert_matches(name: str, model: nn.Module, flops: dict[str, int]) -> None:
    """Every module's inclusive FLOPs are twice the hand MACs of its subtree."""
    hand = HAND_MACS[name]()
    root = type(model).__name__
    assert flops.get("Global", 0) == 2 * total(name)
    mismatches = {}
    for module_name, _ in model.named_modules():
        key = f"{root}.{module_name}" if module_name else root
        expected = 2 * subtree(hand, module_name)
        if flops.get(key, 0) != expected:
            mismatches[module_name] = (flops.get(key, 0), expected)
    assert not mismatches, f"(FlopCounterMode, 2 × hand) per module: {mismatches}"


@contextlib.contextmanager
def vit_unfused(model: nn.Module) -> Iterator[None]:
    """Train mode (dropout is 0), no grad, math SDPA: attention runs as addmm + bmm."""
    model.train()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        yield


@pytest.mark.parametrize("name", FULLY_COUNTED)
def test_hand_macs_match_flop_counter_in_eval(name: str) -> None:
    entry = get_entry(name)
    model = entry.build()
    with torch.inference_mode():
        flops = flop_counts(model, torch.randn(entry.input_shape))
    assert_matches(name, model, flops)


def test_vit_hand_macs_match_flop_counter_unfused() -> None:
    entry = get_entry("vit")
    model = entry.build()
    assert all(m.p == 0 for m in model.modules() if isinstance(m, nn.Dropout))
    with vit_unfused(model):
        flops = flop_counts(model, torch.randn(entry.input_shape))
    assert_matches("vit", model, flops)


class OpLog(TorchDispatchMode):
    """Records the name of every aten op dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops.append(func.name())
        return func(*args, **(kwargs or {}))


def test_vit_eval_takes_the_fused_path_that_flop_counter_misses() -> None:
    entry = get_entry("vit")
    model = entry.build()
    x = torch.randn(entry.input_shape)
    with torch.inference_mode(), OpLog() as log:
        model(x)
    assert log.ops.count("aten::_native_multi_head_attention") == 4
    hand = HAND_MACS["vit"]()
    attention = sum(v for k, v in hand.items() if k.endswith(".self_attention"))
    with torch.inference_mode():
        flops = flop_counts(model, x)
    assert flops["Global"] == 2 * (total("vit") - attention)


@pytest.mark.parametrize("name", sorted(HAND_MACS))
def test_hand_dict_names_real_modules_with_positive_counts(name: str) -> None:
    model = get_entry(name).build()
    names = {n for n, _ in model.named_modules()}
    hand = HAND_MACS[name]()
    assert set(hand) <= names
    assert all(isinstance(v, int) and v > 0 for v in hand.values())
    assert sum(with_zeros(hand, model).values()) == total(name)


def test_functional_attention_owns_its_projections() -> None:
    vit_macs = with_zeros(HAND_MACS["vit"](), get_entry("vit").build())
    swin_macs = with_zeros(HAND_MACS["swin"](), get_entry("swin").build())
    assert vit_macs["encoder.layers.encoder_layer_0.self_attention.out_proj"] == 0
    assert vit_macs["encoder.layers.encoder_layer_0.self_attention"] == 1_605_760
    assert swin_macs["features.1.0.attn.qkv"] == swin_macs["features.1.0.attn.proj"] == 0
    assert swin_macs["features.1.0.attn"] == 1_310_720
    assert swin_macs["features.3.1.attn"] == 1_179_648


def test_totals() -> None:
    assert total("vit") == 10_880_128
    assert total("swin") == 14_287_488
    assert total("densenet") == 1_106_240
    assert total("dscnn") == 8_973_440
