"""zoo:tfnas-* are paths through the built-in spaces and rebuild the paper's tables exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latprof.blocks import ConvBNAct, MBInvRes
from latprof.loading import load_model
from latprof.macs import count_layer_costs
from latprof.measure.hooks import find_leaves
from latprof.space.arch import build_module, load, resolve
from latprof.space.builtin import get_space
from latprof.space.paper_archs import PAPER_ARCHS
from latprof.zoo import ZOO

ACT = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU}


@pytest.mark.parametrize("name", list(PAPER_ARCHS))
def test_arch_module_matches_its_paper_table(name: str) -> None:
    paper = PAPER_ARCHS[name]
    arch = load(f"zoo:{name}")
    assert arch.space == paper.space
    resolve(arch, get_space(paper.space))  # every choice is a candidate of its slot
    net = build_module(arch)
    blocks = list(net.children())
    assert len(blocks) == len(paper.layers) + 1  # + pool_fc
    for layer, block in zip(paper.layers, blocks, strict=False):
        if layer.op == "conv":
            assert isinstance(block, ConvBNAct)
            conv = block[0]
            assert (conv.in_channels, conv.out_channels) == (layer.c_in, layer.c_out)
            assert (conv.kernel_size[0], conv.stride[0]) == (layer.kernel, layer.stride)
            assert isinstance(block[-1], ACT[layer.act])
            continue
        assert isinstance(block, MBInvRes)
        got = (block.c_in, block.mid_channels, block.se_channels, block.c_out)
        assert got == (layer.c_in, layer.mid, layer.se, layer.c_out)
        assert (block.kernel, block.stride, block.act_name) == (
            layer.kernel,
            layer.stride,
            layer.act,
        )
        assert isinstance(block.depthwise[-1], ACT[layer.act])
    fc = blocks[-1][-1]
    assert (fc.in_features, fc.out_features) == (1280, 1000)


@pytest.mark.parametrize(
    ("name", "conv_fc_macs_m"),
    [("tfnas-a", 456.7), ("tfnas-d", 218.7), ("tfnas-cpu-b", 230.6), ("tfnas-a-wose", 512.8)],
)
def test_conv_and_fc_macs_match_the_paper_flops(name: str, conv_fc_macs_m: float) -> None:
    loaded = load_model(f"zoo:{name}")
    assert loaded.args[0].shape == (1, 3, 224, 224)
    leaves = dict(find_leaves(loaded.module))
    costs = count_layer_costs(loaded.module, loaded.args, leaves=list(leaves))
    conv_fc = sum(c.macs for n, c in costs.items() if isinstance(leaves[n], nn.Conv2d | nn.Linear))
    assert conv_fc / 1e6 == pytest.approx(conv_fc_macs_m, abs=0.05)
    paper = PAPER_ARCHS[name].flops_m
    # the paper counts conv + fc multiply-adds; A-wose's table adds up to 512.8 M, not its 504
    assert conv_fc / 1e6 == pytest.approx(paper, rel=0.02 if name == "tfnas-a-wose" else 0.005)
    total = sum(c.macs or 0 for c in costs.values())
    assert 1.05 < total / conv_fc < 1.12  # + BN, activations, SE gating, residual adds


def test_zoo_lists_the_paper_archs() -> None:
    assert {f"tfnas-{s}" for s in ("a", "b-wose", "cpu-a", "mbv2-b")} <= set(ZOO)
    net = ZOO["tfnas-cpu-b"].build()
    with torch.inference_mode():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
