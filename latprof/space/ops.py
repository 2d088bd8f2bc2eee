"""The op registry: every op kind a search space can hold, in one place.

For each op: whether it has a searchable mid-channel width, whether it takes a kernel size,
how to build its block (from latprof.blocks) and a rough cost of one forward pass (MACs and
tensor elements read and written) for build-time estimates. Nothing here imports the space
model: ops see an entry only through the `Shape` protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from torch import nn


class Shape(Protocol):
    """What an op needs to know of an entry."""

    op: str
    kernel: int
    stride: int
    mid: int
    se: int
    act: str
    dilation: int
    c_in: int
    c_out: int
    h: int
    w: int


@dataclass(frozen=True)
class Op:
    """One op kind: its block builder, its cost and whether it has a mid width / kernel."""

    name: str
    has_mid: bool
    has_kernel: bool
    build: Callable[[Shape], nn.Module]
    cost: Callable[[Shape], tuple[float, float]]  # (MACs, tensor elements moved)
    about: str


def _act(name: str) -> str | None:
    return None if name == "none" else name


def _out(e: Shape) -> tuple[int, int, int]:
    """(input elements, output spatial size ho*wo, output elements)."""
    ho, wo = math.ceil(e.h / max(1, e.stride)), math.ceil(e.w / max(1, e.stride))
    return e.c_in * e.h * e.w, ho * wo, e.c_out * ho * wo


def _conv(e: Shape) -> nn.Module:
    from latprof.blocks import ConvBNAct

    return ConvBNAct(e.c_in, e.c_out, e.kernel, e.stride, act=_act(e.act))


def _conv_cost(e: Shape) -> tuple[float, float]:
    x_in, _, out = _out(e)
    return e.kernel * e.kernel * e.c_in * out, x_in + 2 * out


def _dil_conv(e: Shape) -> nn.Module:
    from latprof.blocks import DilatedConv

    return DilatedConv(e.c_in, e.c_out, e.kernel, e.stride, e.dilation, act=_act(e.act) or "relu")


def _sep_conv(e: Shape) -> nn.Module:
    from latprof.blocks import SepConv

    return SepConv(e.c_in, e.c_out, e.kernel, e.stride, e.dilation, act=_act(e.act) or "relu")


def _sep_conv_cost(e: Shape) -> tuple[float, float]:
    x_in, hw, out = _out(e)
    k, ci = e.kernel, e.c_in
    return (k * k + e.c_out) * ci * hw, x_in + 2 * ci * hw + 2 * out


def _mbinvres(e: Shape) -> nn.Module:
    from latprof.blocks import MBInvRes

    return MBInvRes(
        e.c_in,
        e.c_out,
        e.kernel,
        e.stride,
        mid_channels=e.mid,
        act=_act(e.act) or "relu",
        se=e.se > 0,
        se_channels=e.se or None,
    )


def _mbinvres_cost(e: Shape) -> tuple[float, float]:
    """[1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project."""
    x_in, hw, out = _out(e)
    k, ci, mid, se, co = e.kernel, e.c_in, e.mid, e.se, e.c_out
    expand = mid != ci
    macs = (ci * mid * e.h * e.w if expand else 0) + (k * k + co) * mid * hw + 2 * mid * se
    elems = x_in + (2 * mid * e.h * e.w if expand else 0) + 2 * mid * hw + 2 * out
    return macs, elems + (2 * mid * hw if se else 0)


def _fused_mbconv(e: Shape) -> nn.Module:
    from latprof.blocks import FusedMBConv

    return FusedMBConv(
        e.c_in,
        e.c_out,
        e.kernel,
        e.stride,
        expansion=e.mid / e.c_in,
        act=_act(e.act) or "relu",
        se=e.se > 0,
        se_ratio=e.se / e.c_in if e.se else 0.25,  # FusedMBConv sizes SE from c_in
    )


def _fused_mbconv_cost(e: Shape) -> tuple[float, float]:
    """kxk conv to mid -> [SE] -> 1x1 project; mid = c_in: kxk only."""
    x_in, hw, out = _out(e)
    k, ci, mid, se = e.kernel, e.c_in, e.mid, e.se
    project = mid != ci
    width = mid if project else e.c_out
    macs = k * k * ci * width * hw + (width * out if project else 0) + 2 * width * se
    elems = x_in + 2 * width * hw + (2 * out if project else 0)
    return macs, elems + (2 * width * hw if se else 0)


def _identity(e: Shape) -> nn.Module:
    from latprof.blocks import identity

    return identity(e.c_in, e.c_out, e.stride)


def _identity_cost(e: Shape) -> tuple[float, float]:
    x_in, _, out = _out(e)
    return (e.c_in * out if e.stride != 1 or e.c_in != e.c_out else 0), x_in


def _zero(e: Shape) -> nn.Module:
    from latprof.blocks import Zero

    return Zero(e.stride, e.c_out)


def _pool_fc(e: Shape) -> nn.Module:
    from torch import nn

    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(e.c_in, e.c_out))


def _pool_fc_cost(e: Shape) -> tuple[float, float]:
    x_in, _, _ = _out(e)
    return x_in + e.c_in * e.c_out, x_in


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("conv", False, True, _conv, _conv_cost, "ConvBNAct: stem, 1x1 head conv, U-Boost conv"),
        Op("dil_conv", False, True, _dil_conv, _conv_cost, "DilatedConv"),
        Op("sep_conv", False, True, _sep_conv, _sep_conv_cost, "SepConv (depthwise + pointwise)"),
        Op("mbinvres", True, True, _mbinvres, _mbinvres_cost, "MBInvRes (TF-NAS / MobileNetV2)"),
        Op(
            "fused_mbconv",
            True,
            True,
            _fused_mbconv,
            _fused_mbconv_cost,
            "FusedMBConv (EfficientNet-X / V2)",
        ),
        Op(
            "identity",
            False,
            False,
            _identity,
            _identity_cost,
            "skip (1x1 conv when shapes change)",
        ),
        Op("zero", False, False, _zero, lambda e: (0, _out(e)[2]), "no op (zeros)"),
        Op("pool_fc", False, False, _pool_fc, _pool_fc_cost, "global average pool + linear"),
    )
}

OP_KINDS: dict[str, bool] = {name: op.has_mid for name, op in OPS.items()}
"""Op name -> whether it has a searchable mid-channel width."""


def build_entry(e: Shape) -> nn.Module:
    """The block an entry measures, in eval mode."""
    op = OPS.get(e.op)
    if op is None:
        raise ValueError(f"unknown op {e.op!r}")
    return op.build(e).eval()
