"""Entry -> nn.Module, from the blocks in latprof.zoo.blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from latprof.zoo import blocks

if TYPE_CHECKING:
    from latprof.lut.space import Entry


def _act(name: str) -> str | None:
    return None if name == "none" else name


def build_entry(e: Entry) -> nn.Module:
    """The block an entry measures, in eval mode."""
    act = _act(e.act)
    if e.op == "conv":
        module: nn.Module = blocks.ConvBNAct(e.c_in, e.c_out, e.kernel, e.stride, act=act)
    elif e.op == "dil_conv":
        module = blocks.DilatedConv(
            e.c_in, e.c_out, e.kernel, e.stride, e.dilation, act=act or "relu"
        )
    elif e.op == "sep_conv":
        module = blocks.SepConv(e.c_in, e.c_out, e.kernel, e.stride, e.dilation, act=act or "relu")
    elif e.op == "mbinvres":
        module = blocks.MBInvRes(
            e.c_in,
            e.c_out,
            e.kernel,
            e.stride,
            mid_channels=e.mid,
            act=act or "relu",
            se=e.se > 0,
            se_channels=e.se or None,
        )
    elif e.op == "fused_mbconv":
        module = blocks.FusedMBConv(
            e.c_in,
            e.c_out,
            e.kernel,
            e.stride,
            expansion=e.mid / e.c_in,
            act=act or "relu",
            se=e.se > 0,
            se_ratio=e.se / e.c_in if e.se else 0.25,  # FusedMBConv sizes SE from c_in
        )
    elif e.op == "identity":
        module = blocks.identity(e.c_in, e.c_out, e.stride)
    elif e.op == "zero":
        module = blocks.Zero(e.stride, e.c_out)
    elif e.op == "pool_fc":
        module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(e.c_in, e.c_out))
    else:
        raise ValueError(f"unknown op {e.op!r}")
    return module.eval()
