"""Predictors (flops, roofline, systolic), layer descriptions and ranking metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from latprof.predictors import (
    LayerInfo,
    describe,
    flops_model,
    kind_of,
    make,
    metrics,
    roofline,
    systolic,
)
from tests.helpers import assert_untouched, snapshot


def layer(kind: str = "conv", **kw: object) -> LayerInfo:
    base: dict[str, object] = dict(
        name="x", kind=kind, category="Conv2d", batch=1, c_in=1, c_out=1, kernel=(1, 1),
        stride=(1, 1), groups=1, h_in=1, w_in=1, h_out=1, w_out=1, macs=0.0, bytes_in=0,
        bytes_out=0, bytes_weights=0,
    )  # fmt: skip
    base.update(kw)
    return LayerInfo(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# systolic (seed 002, appendix B)


def test_systolic_conv_eq10_eq11() -> None:
    # k1 = k2 = 3, c = 20, f = 10, s1 = s2 = 8, h = w = 4 (output), b = 2
    # Eq. 10: ceil(9*20/8) = ceil(22.5) = 23; ceil(10/8) = 2; h*w*b = 32 -> 23*2*32 = 1472
    # Eq. 11: 9*20*10 / (8*8 * 23 * 2) = 1800 / 2944 = 225/368
    conv = layer("conv", c_in=20, c_out=10, kernel=(3, 3), h_out=4, w_out=4, batch=2)
    assert systolic.layer_cycles(conv, 8, 8) == 1472
    assert systolic.utilization(conv, 8, 8) == pytest.approx(225 / 368)
    # utilization = MACs (Eq. 9: h w b k1 k2 c f = 57600) / (s1 s2 runtime)
    assert systolic.utilization(conv, 8, 8) == pytest.approx(57600 / (64 * 1472))


def test_systolic_depthwise_eq12_eq13() -> None:
    # c = f = groups = 6, k1 = k2 = 3, h = w = 5, b = 1
    # s = 8:   Eq. 12: 6 * ceil(9/8) * 25 = 6*2*25 = 300;  Eq. 13: 9 / (64 * 2) = 9/128
    # s = 128: Eq. 12: 6 * ceil(9/128) * 25 = 150;        Eq. 13: 9 / 16384
    dw = layer("dwconv", c_in=6, c_out=6, groups=6, kernel=(3, 3), h_out=5, w_out=5)
    assert systolic.layer_cycles(dw, 8, 8) == 300
    assert systolic.utilization(dw, 8, 8) == pytest.approx(9 / 128)
    assert systolic.layer_cycles(dw) == 150
    assert systolic.utilization(dw) == pytest.approx(9 / 16384)


def test_systolic_fc_eq14_eq15() -> None:
    # c = 300, f = 100, b = 3 on the default 128 x 128 array (Table 6)
    # Eq. 14: ceil(300/128) * ceil(100/128) * 3 = 3 * 1 * 3 = 9
    # Eq. 15: 300*100 / (128*128 * 3 * 1) = 30000 / 49152
    fc = layer("fc", c_in=300, c_out=100, batch=3)
    assert systolic.layer_cycles(fc) == 9
    assert systolic.utilization(fc) == pytest.approx(30000 / 49152)
    # tokens count as rows: [3, 7, 300] input -> b = 21
    assert systolic.layer_cycles(dataclasses.replace(fc, h_out=7)) == 63


def test_systolic_grouped_conv_and_other() -> None:
    # c = 8, f = 16, g = 2 -> per group c = 4, f = 8; k = 3x3; s = 4x4; h*w*b = 2*2*1
    # 2 * ceil(36/4) * ceil(8/4) * 4 = 2*9*2*4 = 144; utilization 36*8 / (16 * 9 * 2) = 1
    g = layer("conv", c_in=8, c_out=16, groups=2, kernel=(3, 3), h_out=2, w_out=2)
    assert systolic.layer_cycles(g, 4, 4) == 144
    assert systolic.utilization(g, 4, 4) == 1.0
    # the grouped formula with g = c = f is Eq. 12
    dw = layer("dwconv", c_in=6, c_out=6, groups=6, kernel=(3, 3), h_out=5, w_out=5)
    as_grouped = dataclasses.replace(dw, kind="conv")
    for s in (1, 4, 8, 128):
        assert systolic.layer_cycles(as_grouped, s, s) == systolic.layer_cycles(dw, s, s)
        assert systolic.utilization(as_grouped, s, s) == systolic.utilization(dw, s, s)
    other = layer("other", macs=100.0)
    assert systolic.layer_cycles(other) == 0.0
    assert systolic.utilization(other) == 1.0
    assert systolic.predict([g, other, g], 4, 4) == 288
    with pytest.raises(ValueError):
        systolic.layer_cycles(g, 0, 4)


# --------------------------------------------------------------------------------------------
# roofline

# Conv2d(3, 8, 3, padding=1) on 1x3x8x8 float32:
#   input 192 elements = 768 B; output 1x8x8x8 = 512 elements = 2048 B;
#   weights 8*3*3*3 + 8 bias = 224 elements = 896 B; total 3712 B
#   MACs = 512 outputs * 27 = 13824; intensity = 13824 / 3712 MACs/B
CONV_BYTES = 768 + 2048 + 896
CONV_MACS = 13824.0


def test_roofline_hand_counted_conv() -> None:
    torch.manual_seed(0)
    (info,) = describe(nn.Conv2d(3, 8, 3, padding=1), (torch.randn(1, 3, 8, 8),))
    assert (info.bytes_in, info.bytes_out, info.bytes_weights) == (768, 2048, 896)
    assert info.macs == CONV_MACS
    assert roofline.intensity(info) == pytest.approx(13824 / 3712)
    # compute-bound: 1 GMAC/s, 1 TB/s -> 13.824 µs of compute vs 3.712 ns of traffic
    assert roofline.bound(info, 1e9, 1e12) == "compute"
    assert roofline.layer_time_s(info, 1e9, 1e12) == pytest.approx(13.824e-6)
    assert roofline.attainable_macs_per_s(info, 1e9, 1e12) == pytest.approx(1e9)
    # memory-bound: 1 TMAC/s, 1 GB/s -> 13.824 ns of compute vs 3.712 µs of traffic
    assert roofline.bound(info, 1e12, 1e9) == "memory"
    assert roofline.layer_time_s(info, 1e12, 1e9) == pytest.approx(3.712e-6)
    assert roofline.attainable_macs_per_s(info, 1e12, 1e9) == pytest.approx(13824 / 3712 * 1e9)
    assert roofline.predict([info, info], 1e12, 1e9) == pytest.approx(2 * 3.712e-6)
    assert roofline.ridge_point(1e12, 1e9) == 1000.0
    # measured 2x the bound -> half the roof reached
    assert roofline.efficiency(info, 7.424e-6, 1e12, 1e9) == pytest.approx(0.5)
    assert math.isnan(roofline.efficiency(info, 0.0, 1e12, 1e9))
    with pytest.raises(ValueError):
        roofline.layer_time_s(info, 0.0, 1e9)


def test_roofline_intensity_edges() -> None:
    assert roofline.intensity(layer(macs=0.0)) == 0.0
    assert roofline.intensity(layer(macs=5.0)) == math.inf
    assert roofline.bound(layer(macs=0.0), 1.0, 1.0) == "compute"  # 0 >= 0


# --------------------------------------------------------------------------------------------
# flops and the predictor interface


def test_flops_model() -> None:
    layers = [layer(macs=10.0), layer("other", macs=2.5), layer("fc", macs=0.0)]
    assert flops_model.predict(layers) == 12.5
    # a = Σxy / Σx² = (2 + 8 + 21) / (1 + 4 + 9)
    assert flops_model.fit_scale([1, 2, 3], [2, 4, 7]) == pytest.approx(31 / 14)
    assert math.isnan(flops_model.fit_scale([0, 0], [1, 2]))


def test_make() -> None:
    layers = [layer("fc", c_in=300, c_out=100, batch=3, macs=90000.0, bytes_in=1000)]
    assert make("flops")(layers) == 90000.0
    assert make("systolic")(layers) == 9
    assert make("systolic", s1=1, s2=1)(layers) == 90000
    cal = dataclasses.make_dataclass("Cal", ["peak_macs_per_s", "bandwidth_bytes_per_s"])
    assert make("roofline", cal(1e9, 1e12))(layers) == pytest.approx(90e-6)
    with pytest.raises(ValueError, match="calibration"):
        make("roofline")
    with pytest.raises(ValueError, match="unknown predictor"):
        make("lut")


# --------------------------------------------------------------------------------------------
# describe()


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.SiLU()  # shared: called twice
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)  # registered, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        x = self.act(self.dw(x))
        return self.fc(self.pool(x).flatten(1))


def test_describe_tiny_model() -> None:
    torch.manual_seed(0)
    model = Tiny().train()
    model.fc.eval()  # mixed flags must come back as they were
    keys, flags = snapshot(model)
    infos = describe(model, (torch.randn(2, 3, 8, 8),))
    assert_untouched(model, keys, flags)
    assert not torch.is_inference_mode_enabled()

    assert [i.name for i in infos] == ["conv", "act", "dw", "act", "pool", "fc"]
    assert [i.kind for i in infos] == ["conv", "other", "dwconv", "other", "other", "fc"]
    assert [i.category for i in infos] == [
        "Conv2d", "SiLU", "Conv2d", "SiLU", "AdaptiveAvgPool2d", "Linear",
    ]  # fmt: skip
    conv, act1, dw, act2, pool, fc = infos

    # conv: 2x3x8x8 -> 2x8x8x8; MACs 2*8*8*8 outputs * 27 = 27648
    assert (conv.batch, conv.c_in, conv.c_out, conv.kernel, conv.stride, conv.groups) == (
        2, 3, 8, (3, 3), (1, 1), 1,
    )  # fmt: skip
    assert (conv.h_in, conv.w_in, conv.h_out, conv.w_out) == (8, 8, 8, 8)
    assert conv.macs == 27648
    assert (conv.bytes_in, conv.bytes_out, conv.bytes_weights) == (384 * 4, 1024 * 4, 224 * 4)

    # depthwise: 2x8x8x8 -> 2x8x4x4 (stride 2); MACs 256 outputs * 9 = 2304; 8*9 + 8 weights
    assert (dw.c_in, dw.c_out, dw.groups, dw.stride) == (8, 8, 8, (2, 2))
    assert (dw.h_in, dw.w_in, dw.h_out, dw.w_out) == (8, 8, 4, 4)
    assert dw.macs == 2304
    assert (dw.bytes_in, dw.bytes_out, dw.bytes_weights) == (4096, 1024, 80 * 4)

    # the shared SiLU: 1 op per output element, 1024 then 256 (split of the 1280 counted)
    assert (act1.macs, act2.macs) == (1024, 256)
    assert (act1.bytes_in, act1.bytes_out, act1.bytes_weights) == (4096, 4096, 0)
    assert (act2.bytes_in, act2.bytes_out) == (1024, 1024)
    assert (act2.c_in, act2.h_in, act2.w_in) == (8, 4, 4)

    # adaptive pool: (16 + 1) per output element * 16 outputs
    assert pool.macs == 272
    assert (pool.h_out, pool.w_out, pool.bytes_out) == (1, 1, 64)

    # fc: 2x8 -> 2x5; MACs 8 * 10 = 80; weights 40 + 5
    assert (fc.batch, fc.c_in, fc.c_out, fc.h_out, fc.w_out) == (2, 8, 5, 1, 1)
    assert fc.macs == 80
    assert (fc.bytes_in, fc.bytes_out, fc.bytes_weights) == (64, 40, 180)

    # on a 1 x 1 array every conv/dw/fc MAC takes one cycle
    for info in (conv, dw, fc):
        assert systolic.layer_cycles(info, 1, 1) == info.macs
        assert systolic.utilization(info, 1, 1) == 1.0


def test_describe_dtype_bytes_and_tokens() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(5))
    (fc, bn) = describe(model, torch.randn(2, 5, 8), dtype_bytes=2)
    # [2, 5, 8] -> [2, 5, 4]: batch 2, 5 rows each; 5 * 2 * 4 * 8 MACs
    assert (fc.batch, fc.h_in, fc.h_out, fc.w_out) == (2, 5, 5, 1)
    assert fc.macs == 320
    assert (fc.bytes_in, fc.bytes_out, fc.bytes_weights) == (160, 80, 72)
    # BatchNorm: weight, bias, running mean/var (not the int num_batches_tracked)
    assert bn.bytes_weights == 4 * 5 * 2
    assert bn.kind == "other"


def test_describe_unbatched_conv1d_and_kwargs() -> None:
    class Kw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv1d(4, 6, 3)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return self.c(x) * scale

    (c,) = describe(Kw(), (torch.randn(4, 10),), {"scale": torch.ones(1)})
    assert (c.kind, c.batch, c.kernel, c.h_in, c.w_in, c.h_out, c.w_out) == (
        "conv", 1, (1, 3), 1, 10, 1, 8,
    )  # fmt: skip
    assert c.macs == 6 * 8 * 4 * 3


def test_kind_of() -> None:
    assert kind_of(nn.Conv2d(8, 8, 3, groups=8)) == "dwconv"
    assert kind_of(nn.Conv2d(8, 16, 3, groups=8)) == "conv"  # channel multiplier 2
    assert kind_of(nn.Conv2d(8, 8, 3, groups=2)) == "conv"
    assert kind_of(nn.Conv2d(1, 1, 3)) == "conv"  # groups == c == f == 1 is a plain conv
    assert kind_of(nn.Linear(2, 3)) == "fc"
    assert kind_of(nn.ReLU()) == "other"


def test_describe_restores_on_failure() -> None:
    class FailsInInference(nn.Module):
        # MAC counting (no_grad) passes; describe's own hooked pass (inference_mode) fails
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if torch.is_inference_mode_enabled():
                raise RuntimeError("boom")
            return x

    model = nn.Sequential(nn.Linear(4, 4), FailsInInference()).train()
    keys, flags = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        describe(model, torch.randn(1, 4))
    assert_untouched(model, keys, flags)


# --------------------------------------------------------------------------------------------
# ranking metrics


def test_rank_metrics_known_permutations() -> None:
    x = list(range(20))
    assert metrics.kendall_tau(x, x) == pytest.approx(1.0)
    assert metrics.spearman(x, x) == pytest.approx(1.0)
    assert metrics.kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    assert metrics.spearman(x, x[::-1]) == pytest.approx(-1.0)
    # one swapped pair of 3: concordant 2, discordant 1 -> 1/3; ρ = 1 - 6·2 / (3·8) = 0.5
    assert metrics.kendall_tau([1, 2, 3], [2, 1, 3]) == pytest.approx(1 / 3)
    assert metrics.spearman([1, 2, 3], [2, 1, 3]) == pytest.approx(0.5)


def test_rank_metrics_with_ties() -> None:
    a, b = [1, 2, 2, 3], [1, 3, 2, 4]
    # pairs: 5 concordant, 1 tied in a (indices 1, 2), none discordant; n0 = 6
    # τ-b = 5 / sqrt((6 - 1) * (6 - 0)) = 5 / sqrt(30)
    assert metrics.kendall_tau(a, b) == pytest.approx(5 / math.sqrt(30))
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 3, 2, 4]; centred dot 4.5, norms² 4.5 and 5
    assert list(metrics.ranks(a)) == [1, 2.5, 2.5, 4]
    assert metrics.spearman(a, b) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(metrics.kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(metrics.kendall_tau([1], [1]))
    with pytest.raises(ValueError, match="length"):
        metrics.kendall_tau([1, 2], [1, 2, 3])


def test_rank_metrics_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 6, size=25).astype(float)
        b = a + rng.integers(0, 4, size=25)
        assert metrics.kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b)[0])
        assert metrics.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0])


def test_mape_after_fit() -> None:
    assert metrics.mape_after_fit([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    # a = (1 + 3) / 2 = 2: |2 - 1| / 1 = 1, |2 - 3| / 3 = 1/3 -> mean 2/3
    assert metrics.mape_after_fit([1, 1], [1, 3]) == pytest.approx(2 / 3)
    assert math.isnan(metrics.mape_after_fit([0, 0], [1, 3]))
    with pytest.raises(ValueError, match="positive"):
        metrics.mape_after_fit([1, 1], [1, 0])


def test_top_overlap() -> None:
    x = list(range(30))
    assert metrics.top_overlap(x, x) == 1.0
    assert metrics.top_overlap(x, x[::-1]) == 0.0
    # n = 30, k = 3: pred's fastest {0, 1, 2}, measured's fastest {0, 1, 29}
    measured = [*x[:2], *[m + 100 for m in x[2:29]], -1]
    assert metrics.top_overlap(x, measured) == pytest.approx(2 / 3)
    # n = 15, k = ceil(1.5) = 2: {0, 1} vs {1, 5}
    pred = list(range(15))
    measured15 = [10.0] * 15
    measured15[1], measured15[5] = 0.0, 1.0
    assert metrics.top_overlap(pred, measured15) == 0.5
    assert metrics.top_overlap([3, 1, 2], [3, 2, 1], fraction=1.0) == 1.0
    with pytest.raises(ValueError, match="fraction"):
        metrics.top_overlap(x, x, fraction=0)
