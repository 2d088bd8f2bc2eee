"""Candidate operation blocks from the seed papers, as plain ``nn.Module``s.

These are the blocks a NAS latency lookup table measures and the zoo models are built from:

* seed 004 (TF-NAS): :class:`MBInvRes` with or without :class:`SqueezeExcite`;
* seed 003 (EfficientNet-X): :class:`FusedMBConv`;
* seed 002 (U-Boost, Table 2): ``conv`` (:class:`ConvBNAct`), ``dws`` (:class:`SepConv`),
  ``dil`` (:class:`DilatedConv`), ``identity`` (:func:`identity`) and ``zero`` (:class:`Zero`).

Every block is composed of standard ``torch.nn`` layers (``Conv2d``, ``BatchNorm2d``,
``ReLU``, ``SiLU``, ``Sigmoid``, ``AdaptiveAvgPool2d``, ...), so a per-leaf profiler attributes
its time to those layers. The only functional ops are the residual add and the SE rescale
(``x * gate``); a profiler reports them as unattributed time, which is intended.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "ConvBNAct",
    "DilatedConv",
    "FusedMBConv",
    "MBInvRes",
    "SepConv",
    "SqueezeExcite",
    "Zero",
    "identity",
    "make_act",
    "seeded",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
}
"""Activation names accepted by :func:`make_act` (``swish`` is ``nn.SiLU``)."""


def make_act(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (one of :data:`ACTIVATIONS`).

    Raises ``ValueError`` naming the known activations for anything else.
    """
    try:
        factory = ACTIVATIONS[name]
    except (KeyError, TypeError):
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; known: {known}") from None
    return factory()


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")


def _same_padding(kernel: int, dilation: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1 (odd kernels)."""
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd for 'same' padding, got {kernel}")
    return dilation * (kernel - 1) // 2


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias, 'same' padding) → ``BatchNorm2d`` → activation.

    ``act=None`` leaves out the activation (a linear conv, e.g. a projection).
    Children are named ``conv``, ``bn`` and ``act``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ) -> None:
        _check_positive(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, dilation=dilation)
        if c_in % groups or c_out % groups:
            raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            c_in,
            c_out,
            kernel,
            stride=stride,
            padding=_same_padding(kernel, dilation),
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        layers["bn"] = nn.BatchNorm2d(c_out)
        if act is not None:
            layers["act"] = make_act(act)
        super().__init__(layers)
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride


class DilatedConv(ConvBNAct):
    """Dilated convolution, U-Boost ``dil_kxk`` (seed 002, Table 2): a plain
    ``Conv2d`` with dilation 2 by default → ``BatchNorm2d`` → ReLU.

    Seed 002 lists it as type "Convolution" (not depthwise-separable as in DARTS).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 2,
        act: str | None = "relu",
    ) -> None:
        super().__init__(c_in, c_out, kernel, stride, dilation=dilation, act=act)


class SepConv(nn.Sequential):
    """Depthwise-separable convolution, U-Boost ``dws_kxk`` (seed 002, Table 2).

    Seed 002 defines DWS as "a depthwise convolution and a (standard) convolution" with a
    ReLU nonlinearity. Here: depthwise ``kxk`` conv (carries the stride) → pointwise ``1x1``
    conv → ``BatchNorm2d`` → activation, both convs without bias, i.e. one DARTS-style
    dw+pw pair (DARTS repeats the pair twice; seed 002 does not). Children: ``dw``, ``pw``,
    ``bn``, ``act``. Parameters: ``c_in*k*k + c_in*c_out + 2*c_out``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: str | None = "relu",
    ) -> None:
        _check_positive(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, dilation=dilation)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["dw"] = nn.Conv2d(
            c_in,
            c_in,
            kernel,
            stride=stride,
            padding=_same_padding(kernel, dilation),
            dilation=dilation,
            groups=c_in,
            bias=False,
        )
        layers["pw"] = nn.Conv2d(c_in, c_out, 1, bias=False)
        layers["bn"] = nn.BatchNorm2d(c_out)
        if act is not None:
            layers["act"] = make_act(act)
        super().__init__(layers)
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride


def identity(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """The ``identity`` candidate (seed 002): ``nn.Identity`` when the shapes allow it.

    When ``stride > 1`` or ``c_in != c_out`` an identity cannot produce the required shape;
    then this returns a ``1x1`` conv (stride ``stride``) + ``BatchNorm2d``, no activation —
    the "Conv2D-1x1 when feature maps mismatch" skip of seed 003 (Table 4). It replaces
    DARTS' ``FactorizedReduce`` on purpose: that one slices and concatenates tensors
    functionally, which a per-leaf profiler could not attribute to any layer.
    """
    _check_positive(c_in=c_in, c_out=c_out, stride=stride)
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return ConvBNAct(c_in, c_out, kernel=1, stride=stride, act=None)


class Zero(nn.Module):
    """The ``zero`` candidate (seed 002): all zeros of the shape a stride-``stride`` op with
    ``c_out`` output channels (``None``: as many as the input) would produce.

    Output spatial size is ``ceil(h / stride) x ceil(w / stride)``, matching a 'same'-padded
    convolution. Has no children, so it is itself a leaf (category ``Zero``).
    """

    def __init__(self, stride: int = 1, c_out: int | None = None) -> None:
        super().__init__()
        _check_positive(stride=stride)
        if c_out is not None:
            _check_positive(c_out=c_out)
        self.stride = stride
        self.c_out = c_out

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        s = self.stride
        c_out = c if self.c_out is None else self.c_out
        return x.new_zeros((n, c_out, -(-h // s), -(-w // s)))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, c_out={self.c_out}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool → ``1x1`` conv reduce → activation →
    ``1x1`` conv expand → sigmoid, then rescale the input channel-wise.

    Seed 004 describes SE as "an average pooling, two fully connected layers and a sigmoid
    function"; as in the TF-NAS code the two FC layers are ``1x1`` convs with bias (no
    reshape needed) and the inner activation is the block's own. Children: ``pool``,
    ``reduce``, ``act``, ``expand``, ``gate``. The final ``x * gate`` is functional.
    """

    def __init__(self, channels: int, se_channels: int, act: str = "relu") -> None:
        super().__init__()
        _check_positive(channels=channels, se_channels=se_channels)
        self.channels = channels
        self.se_channels = se_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, se_channels, 1, bias=True)
        self.act = make_act(act)
        self.expand = nn.Conv2d(se_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class MBInvRes(nn.Module):
    """TF-NAS MBInvRes block (seed 004, section 1; MobileNetV2 inverted residual).

    ``1x1`` expand conv-BN-act → ``kxk`` depthwise conv-BN-act (carries the stride) →
    optional :class:`SqueezeExcite` on the depthwise output → ``1x1`` project conv-BN (no
    activation) → ``+ x`` when ``stride == 1`` and ``c_in == c_out``.

    Width: give ``mid_channels`` (the ``e x C_in`` column of seed 004's tables) or
    ``expansion`` (default 6); when ``mid_channels == c_in`` (expansion 1) the expand conv is
    left out, as in MobileNetV2. SE width: ``se_channels`` (the ``e_se x C_in`` column) or
    else ``max(1, int(mid_channels * se_ratio))`` — relative to the mid channels, as TF-NAS
    builds its supernet (``mid // 4``). Children: ``expand`` (absent when skipped),
    ``depthwise``, ``se`` (absent without SE), ``project``.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        expansion: float | None = None,
        mid_channels: int | None = None,
        act: str = "relu",
        se: bool = False,
        se_channels: int | None = None,
        se_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride)
        if expansion is not None and mid_channels is not None:
            raise ValueError("give either expansion or mid_channels, not both")
        if mid_channels is None:
            e = 6.0 if expansion is None else expansion
            if e <= 0:
                raise ValueError(f"expansion must be > 0, got {e}")
            mid_channels = max(1, round(c_in * e))
        _check_positive(mid_channels=mid_channels)

        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride
        self.mid_channels = mid_channels
        self.act_name = act
        self.use_residual = stride == 1 and c_in == c_out

        self.expand: nn.Module | None = None
        if mid_channels != c_in:
            self.expand = ConvBNAct(c_in, mid_channels, kernel=1, act=act)
        self.depthwise = ConvBNAct(
            mid_channels, mid_channels, kernel, stride, groups=mid_channels, act=act
        )
        self.se: SqueezeExcite | None = None
        self.se_channels = 0
        if se:
            if se_channels is None:
                se_channels = max(1, int(mid_channels * se_ratio))
            self.se_channels = se_channels
            self.se = SqueezeExcite(mid_channels, se_channels, act=act)
        self.project = ConvBNAct(mid_channels, c_out, kernel=1, act=None)

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.use_residual:
            out = out + x
        return out

    def extra_repr(self) -> str:
        return (
            f"c_in={self.c_in}, mid={self.mid_channels}, c_out={self.c_out}, "
            f"k={self.kernel}, stride={self.stride}, act={self.act_name}, "
            f"se_channels={self.se_channels}, residual={self.use_residual}"
        )


class FusedMBConv(nn.Module):
    """Fused MBConv (seed 003, EfficientNet-X / EfficientNetV2).

    ``kxk`` expand conv-BN-act (carries the stride; replaces MBConv's ``1x1`` expand +
    depthwise) → optional :class:`SqueezeExcite` → ``1x1`` project conv-BN (no activation)
    → ``+ x`` when ``stride == 1`` and ``c_in == c_out``.

    ``expansion == 1``: a single ``kxk`` conv-BN-act straight to ``c_out`` (SE, if any, on
    the input), as in the EfficientNetV2 reference code. SE width follows EfficientNet:
    ``max(1, int(c_in * se_ratio))`` — relative to the block *input* channels; seed 003
    searches ``se_ratio`` in {1.0, 0.5, 0.25, 0.125}. Children: ``se`` (optional, before
    ``fused`` when expansion is 1), ``fused``, ``project`` (absent when expansion is 1).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        expansion: float = 4.0,
        act: str = "relu",
        se: bool = False,
        se_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        _check_positive(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride)
        if expansion <= 0:
            raise ValueError(f"expansion must be > 0, got {expansion}")
        self.c_in, self.c_out, self.kernel, self.stride = c_in, c_out, kernel, stride
        self.expansion = expansion
        self.act_name = act
        self.use_residual = stride == 1 and c_in == c_out
        se_channels = max(1, int(c_in * se_ratio))

        self.se: SqueezeExcite | None = None
        self.project: ConvBNAct | None = None
        if expansion == 1:
            if se:
                self.se = SqueezeExcite(c_in, se_channels, act=act)
            self.fused = ConvBNAct(c_in, c_out, kernel, stride, act=act)
            self.mid_channels = c_in
        else:
            mid = max(1, round(c_in * expansion))
            self.mid_channels = mid
            self.fused = ConvBNAct(c_in, mid, kernel, stride, act=act)
            if se:
                self.se = SqueezeExcite(mid, se_channels, act=act)
            self.project = ConvBNAct(mid, c_out, kernel=1, act=None)

    def forward(self, x: Tensor) -> Tensor:
        if self.project is None:
            out = x if self.se is None else self.se(x)
            out = self.fused(out)
        else:
            out = self.fused(x)
            if self.se is not None:
                out = self.se(out)
            out = self.project(out)
        if self.use_residual:
            out = out + x
        return out

    def extra_repr(self) -> str:
        return (
            f"c_in={self.c_in}, mid={self.mid_channels}, c_out={self.c_out}, "
            f"k={self.kernel}, stride={self.stride}, act={self.act_name}, "
            f"se={self.se is not None}, residual={self.use_residual}"
        )


def seeded(fn: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Call ``fn`` with the CPU RNG seeded (deterministic weights), leaving the caller's
    RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def _register_counters() -> None:
    from latprof.macs import register_counter, zero

    register_counter(Zero, zero)


_register_counters()
