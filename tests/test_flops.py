"""MAC counting: hand-computed MACs per layer type, registry behaviour, model left untouched."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
from thop.rnn_hooks import count_lstm
from thop.vision.basic_hooks import count_convNd, count_relu
from torch import nn

from latprof import macs as flops
from latprof.errors import LatprofError, ModelRunError
from latprof.macs import (
    COUNTERS,
    LayerCost,
    count_layer_costs,
    counter_for,
    flop_counter_total,
    register_counter,
    uncounted,
)


@pytest.fixture
def registry() -> Iterator[dict]:
    """Restore COUNTERS after a test that changes it."""
    saved = dict(COUNTERS)
    yield COUNTERS
    COUNTERS.clear()
    COUNTERS.update(saved)


def single(module: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> LayerCost:
    """The cost of a one-module model (its key is the root name "")."""
    costs = count_layer_costs(module, args, kwargs)
    assert list(costs) == [""]
    return costs[""]


def thop_macs(fn, module: nn.Module, x: torch.Tensor) -> float:
    """What a thop counter function says for one call (on a throwaway module)."""
    module.eval()
    module.register_buffer("total_ops", torch.zeros(1, dtype=torch.float64))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(module, (x,), module(x))
    return float(module.total_ops.item())


# --- convolutions ---------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_macs_bias_not_counted(bias: bool) -> None:
    conv = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=bias)
    # output 1x8x8x8 = 512 elements, each 3 in-channels x 3x3 kernel = 27 MACs -> 13824.
    # Bias additions are not counted (thop and torch's FlopCounterMode both ignore them).
    cost = single(conv, torch.randn(1, 3, 8, 8))
    assert cost.macs == 8 * 8 * 8 * 3 * 3 * 3 == 13824
    assert cost.params == 8 * 3 * 3 * 3 + (8 if bias else 0)
    assert cost.counter == "latprof.conv"
    # latprof's conv counter agrees with thop's count_convNd on batched, non-transposed convs
    assert thop_macs(count_convNd, nn.Conv2d(3, 8, 3, padding=1), torch.randn(1, 3, 8, 8)) == 13824


def test_depthwise_grouped_and_strided_conv() -> None:
    # depthwise: output 2x8x8x8 = 1024 elements x (8/8 = 1 in-channel) x 9 = 9216
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert single(dw, torch.randn(2, 8, 8, 8)).macs == 2 * 8 * 8 * 8 * 1 * 9 == 9216
    # grouped: 8 -> 16, groups 4: output 2x16x8x8 = 2048 elements x (8/4 = 2) x 9 = 36864
    grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4)
    assert single(grouped, torch.randn(2, 8, 8, 8)).macs == 2 * 16 * 8 * 8 * 2 * 9 == 36864
    # stride 2: output 1x8x4x4 = 128 elements x 27 = 3456
    strided = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    assert single(strided, torch.randn(1, 3, 8, 8)).macs == 8 * 4 * 4 * 27 == 3456
    # dilation changes the output size only: 1x8x4x4 (8 - 2*2) = 128 elements x 27 = 3456
    dilated = nn.Conv2d(3, 8, 3, dilation=2)
    assert single(dilated, torch.randn(1, 3, 8, 8)).macs == 128 * 27


def test_conv1d_and_conv3d() -> None:
    # Conv1d 4->6 k3 on 2x4x10: output 2x6x8 = 96 elements x 4 x 3 = 1152
    assert single(nn.Conv1d(4, 6, 3), torch.randn(2, 4, 10)).macs == 96 * 12 == 1152
    # Conv3d 2->3 k2 on 1x2x3x3x3: output 1x3x2x2x2 = 24 elements x 2 x 8 = 384
    assert single(nn.Conv3d(2, 3, 2), torch.randn(1, 2, 3, 3, 3)).macs == 24 * 16 == 384


def test_transposed_conv_counts_input_side_where_thop_overcounts() -> None:
    # ConvTranspose2d 4->6 k3 s2 on 1x4x5x5: each of the 100 input elements meets 6 kernels of
    # 3x3 -> 100 * 6 * 9 = 5400 MACs (output is 1x6x11x11).
    x = torch.randn(1, 4, 5, 5)
    assert single(nn.ConvTranspose2d(4, 6, 3, stride=2), x).macs == 100 * 6 * 9 == 5400
    # thop counts every output element against the full kernel: 6*11*11 = 726 * 4 * 9
    assert thop_macs(count_convNd, nn.ConvTranspose2d(4, 6, 3, stride=2), x) == 726 * 36
    assert flop_counter_total(nn.ConvTranspose2d(4, 6, 3, stride=2, bias=False), (x,)) == 2 * 5400
    # grouped transposed: 4->6, groups 2: 100 input elements x 3 kernels x 9 = 2700
    grouped = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert single(grouped, x).macs == 100 * 3 * 9 == 2700


def test_unbatched_conv_input() -> None:
    # 3x8x8 input without batch dim: same 13824 MACs as 1x3x8x8 (thop reads H=8 as channels)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert single(conv, torch.randn(3, 8, 8)).macs == 13824
    assert thop_macs(count_convNd, nn.Conv2d(3, 8, 3, padding=1), torch.randn(3, 8, 8)) == 36864


# --- linear, norm, activations, pooling -----------------------------------------------------


def test_linear_2d_and_3d_input() -> None:
    lin = nn.Linear(16, 4)
    # 2x16 -> 2x4 = 8 outputs x 16 MACs = 128
    cost = single(lin, torch.randn(2, 16))
    assert cost == LayerCost(macs=2 * 4 * 16, params=16 * 4 + 4, counter="thop.count_linear")
    # 2x5x16 -> 2x5x4 = 40 outputs x 16 MACs = 640 (thop's in_features * y.numel() is right)
    assert single(lin, torch.randn(2, 5, 16)).macs == 2 * 5 * 4 * 16 == 640
    # unbatched 16 -> 4 outputs x 16 = 64
    assert single(lin, torch.randn(16)).macs == 64


@pytest.mark.parametrize(("affine", "expected"), [(True, 4 * 128), (False, 2 * 128)])
def test_batchnorm_follows_thop_normalization_formula(affine: bool, expected: int) -> None:
    # thop's count_normalization: 2 * numel ((x - mean) / std), doubled when affine (* w + b).
    # 1x8x4x4 = 128 elements.
    bn = nn.BatchNorm2d(8, affine=affine)
    cost = single(bn, torch.randn(1, 8, 4, 4))
    assert cost.macs == expected
    assert cost.counter == "thop.count_normalization"
    assert cost.params == (16 if affine else 0)  # running stats are buffers, not parameters


def test_groupnorm_and_layernorm_use_normalization_formula() -> None:
    # GroupNorm is not in thop's table; latprof maps it to the same formula: 4 * 2*4*3*3 = 288
    assert single(nn.GroupNorm(2, 4), torch.randn(2, 4, 3, 3)).macs == 4 * 72
    # LayerNorm (elementwise_affine): 4 * 2*5*8 = 320
    assert single(nn.LayerNorm(8), torch.randn(2, 5, 8)).macs == 4 * 80


@pytest.mark.parametrize(
    "act", [nn.SiLU(), nn.Sigmoid(), nn.Hardswish(), nn.GELU(), nn.Tanh(), nn.Mish(), nn.ELU()]
)
def test_activations_are_one_op_per_element(act: nn.Module) -> None:
    # 1x8x4x4 = 128 output elements, 1 op each
    cost = single(act, torch.randn(1, 8, 4, 4))
    assert cost == LayerCost(macs=128, params=0, counter="latprof.elementwise")


def test_leaky_relu_is_elementwise_although_thop_counts_zero() -> None:
    x = torch.randn(1, 8, 4, 4)
    assert thop_macs(count_relu, nn.LeakyReLU(), x) == 0  # calculate_relu_flops returns 0
    assert single(nn.LeakyReLU(), x).macs == 128
    # PReLU keeps thop's count_prelu (1 op per element in eval): the same convention
    assert single(nn.PReLU(), x) == LayerCost(128, 1, "thop.count_prelu")


@pytest.mark.parametrize(
    "layer", [nn.ReLU(), nn.ReLU6(), nn.Identity(), nn.Flatten(), nn.Dropout(), nn.MaxPool2d(2)]
)
def test_zero_cost_layers(layer: nn.Module) -> None:
    assert single(layer, torch.randn(1, 8, 4, 4)) == LayerCost(0.0, 0, "zero")


def test_softmax_pooling_upsample() -> None:
    # softmax over 5 features, 2 rows: 2 * (5 exp + 4 add + 5 div) = 28; dim=None -> dim 1
    assert single(nn.Softmax(dim=1), torch.randn(2, 5)).macs == 2 * (3 * 5 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the implicit dim
        assert single(nn.Softmax(), torch.randn(2, 5)).macs == 28
    # AvgPool2d(2) on 1x8x4x4 -> 1x8x2x2 = 32 outputs x (4 adds + 1 div) = 160
    assert single(nn.AvgPool2d(2), torch.randn(1, 8, 4, 4)).macs == 32 * 5
    # AdaptiveAvgPool2d(1) on 1x8x4x4 -> 8 outputs x (16 + 1) = 136; unbatched 8x4x4 the same
    assert single(nn.AdaptiveAvgPool2d(1), torch.randn(1, 8, 4, 4)).macs == 8 * 17
    assert single(nn.AdaptiveAvgPool2d(1), torch.randn(8, 4, 4)).macs == 8 * 17
    # trilinear upsample: thop's calculate_upsample has 31 ops per output element, but its
    # count_upsample logs a warning and counts 0 for "trilinear". 1x2x4x4x4 = 128 outputs.
    up = nn.Upsample(scale_factor=2, mode="trilinear")
    assert single(up, torch.randn(1, 2, 2, 2, 2)).macs == 128 * 31
    # nearest: 1 op per output element (thop's convention); 1x2x4x4 = 32
    assert single(nn.Upsample(scale_factor=2), torch.randn(1, 2, 2, 2)).macs == 32


def test_lstm_unbatched_input_counts_like_batch_of_one() -> None:
    lstm = nn.LSTM(8, 16)
    batched = single(lstm, torch.randn(5, 1, 8)).macs
    assert batched == thop_macs(count_lstm, nn.LSTM(8, 16), torch.randn(5, 1, 8))
    assert single(lstm, torch.randn(5, 8)).macs == batched  # thop would use batch = 8


# --- resolution, registry, sharing ----------------------------------------------------------


def test_conv2d_subclass_counted_like_conv2d() -> None:
    class MyConv(nn.Conv2d):
        pass

    class MyLinear(nn.Linear):
        pass

    assert single(MyConv(3, 8, 3, padding=1), torch.randn(1, 3, 8, 8)).macs == 13824
    assert single(MyLinear(16, 4), torch.randn(2, 16)).macs == 128
    assert counter_for(MyConv) is counter_for(nn.Conv2d)


def test_register_counter_overrides_and_subclass_specific_wins(registry: dict) -> None:
    class Gate(nn.Sigmoid):
        pass

    def two_per_element(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
        m.total_ops += 2 * y.numel()

    assert register_counter(Gate, two_per_element) is None
    x = torch.randn(1, 8, 4, 4)
    cost = single(Gate(), x)
    assert cost.macs == 256
    assert cost.counter.endswith("two_per_element")
    assert single(nn.Sigmoid(), x).macs == 128  # the base class keeps its counter
    assert register_counter(Gate, None) is two_per_element  # removal: resolves via Sigmoid
    assert single(Gate(), x).macs == 128
    with pytest.raises(TypeError):
        register_counter(int, two_per_element)


def test_shared_module_called_twice_sums_macs_counts_params_once() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(16, 16)
            self.alias = self.lin  # same module under a second name

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.alias(self.lin(x))

    costs = count_layer_costs(Twice(), (torch.randn(2, 16),))
    # one key (the first name); 2 calls x (2*16 outputs x 16 MACs = 512) = 1024
    expected = LayerCost(macs=2 * 512, params=16 * 16 + 16, counter="thop.count_linear")
    assert costs == {"lin": expected}


def test_unknown_leaf_is_not_counted_never_zero() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(8, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Scale(), nn.SiLU())
    costs = count_layer_costs(model, (torch.randn(1, 3, 8, 8),))
    assert list(costs) == ["0", "1", "2"]
    assert costs["1"] == LayerCost(macs=None, params=8, counter="none")
    assert costs["2"] == LayerCost(macs=8 * 8 * 8, params=0, counter="latprof.elementwise")
    assert uncounted(costs) == ["1"]


def test_failing_counter_gives_none_and_keeps_name(registry: dict) -> None:
    def broken(m: nn.Module, x: tuple, y: torch.Tensor) -> None:
        raise RuntimeError("boom")

    register_counter(nn.Tanh, broken)
    cost = single(nn.Tanh(), torch.randn(3))
    assert cost.macs is None
    assert cost.counter.endswith("broken")


def test_not_called_leaf_is_zero_and_labelled() -> None:
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)
            self.unused = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    costs = count_layer_costs(Skip(), (torch.randn(1, 4),))
    assert costs["unused"] == LayerCost(0.0, 20, "not-called")
    assert costs["used"].macs == 16


def test_leaves_selects_names_and_non_leaf_is_summed() -> None:
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU()),
        nn.Flatten(),
        nn.Linear(512, 10),
    )
    x = torch.randn(1, 3, 8, 8)
    costs = count_layer_costs(model, (x,), leaves=["2", "0.0"])
    assert list(costs) == ["2", "0.0"]
    assert costs["2"].macs == 512 * 10
    assert costs["0.0"].macs == 13824
    # block "0" = conv 13824 + BN 4*512 + SiLU 512, params = conv 216 + BN 16
    block = count_layer_costs(model, (x,), leaves=["0"])["0"]
    assert block == LayerCost(13824 + 4 * 512 + 512, 216 + 16, "latprof.subtree")
    # the root as one unit: everything, Flatten included (0)
    assert count_layer_costs(model, (x,), leaves=[""])[""].macs == 13824 + 2560 + 5120
    with pytest.raises(ValueError, match="not module names"):
        count_layer_costs(model, (x,), leaves=["9"])


def test_multihead_attention_as_a_named_unit() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # need_weights=True: attention runs as bmm, which FlopCounterMode counts (the
            # need_weights=False path uses CPU flash attention, which it does not count)
            return self.attn(x, x, x, need_weights=True)[0]

    x = torch.randn(5, 2, 16)  # L=5, N=2, E=16
    model = Attn()
    # per batch item: q, k, v, out projections 4 * 5*16*16 = 5120; QK^T and AV 2 * 5*5*16 = 800
    cost = count_layer_costs(model, (x,), leaves=["attn"])["attn"]
    assert cost.macs == 2 * (4 * 5 * 16 * 16 + 2 * 5 * 5 * 16) == 11840
    assert cost.counter == "latprof.multihead_attention"
    assert flop_counter_total(model, (x,)) == 2 * 11840
    # as a leaf listing, MHA is not a leaf; its out_proj weights are used functionally
    assert count_layer_costs(model, (x,)) == {"attn.out_proj": LayerCost(0.0, 256, "not-called")}


# --- the user's model, inputs, devices ------------------------------------------------------


def test_user_model_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.SiLU(), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(4 * 8 * 8, 5),
    )  # fmt: skip
    model.train()
    model[2].eval()  # mixed flags must come back as they were
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]

    count_layer_costs(model, (torch.randn(2, 3, 8, 8),))
    flop_counter_total(model, (torch.randn(2, 3, 8, 8),))

    assert list(model.state_dict()) == list(state)
    for key, value in model.state_dict().items():  # BN running stats not updated
        assert torch.equal(value, state[key]), key
    assert [m.training for m in model.modules()] == flags
    for m in model.modules():
        assert "total_ops" not in m._buffers and not hasattr(m, "total_ops")
        assert not m._forward_hooks and not m._forward_hooks_with_kwargs
        assert not m._forward_pre_hooks


def test_flop_counter_total_is_twice_conv_plus_linear_macs() -> None:
    # torch's FlopCounterMode counts 2 * MACs for conv and matmul and ignores bias, norms and
    # activations; so with only conv + linear doing arithmetic the totals agree exactly.
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10, bias=False),
    )  # fmt: skip
    x = torch.randn(1, 3, 8, 8)
    costs = count_layer_costs(model, (x,))
    macs = costs["0"].macs + costs["3"].macs
    assert macs == 13824 + 512 * 10 == 18944
    assert sum(c.macs for c in costs.values()) == macs  # ReLU, Flatten: 0
    assert flop_counter_total(model, (x,)) == 2 * macs == 37888


def test_kwargs_inputs() -> None:
    class KwModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
            return self.conv(input=x) * scale  # module called with a keyword input

    costs = count_layer_costs(KwModel(), (), {"x": torch.randn(1, 3, 8, 8), "scale": 2.0})
    assert costs["conv"].macs == 13824


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes(dtype: torch.dtype) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(512, 4))
    model = model.to(dtype)
    costs = count_layer_costs(model, (torch.randn(1, 3, 8, 8, dtype=dtype),))
    assert costs["0"].macs == 13824
    assert costs["2"].macs == 2048


def test_meta_device() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(512, 4))
    model = model.to("meta")
    costs = count_layer_costs(model, (torch.empty(1, 3, 8, 8, device="meta"),))
    assert costs["0"].macs == 13824
    assert costs["2"].macs == 2048


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(512, 4))
    model = model.to("cuda", torch.float16)
    x = torch.randn(1, 3, 8, 8, device="cuda", dtype=torch.float16)
    costs = count_layer_costs(model, (x,))
    assert (costs["0"].macs, costs["2"].macs) == (13824, 2048)
    assert flop_counter_total(model, (x,)) == 2 * (13824 + 2048)
    assert all(p.device.type == "cuda" for p in model.parameters())


def test_thop_output_suppressed(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    model = nn.Sequential(nn.PReLU(), nn.Upsample(scale_factor=2, mode="bicubic"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count_layer_costs(model, (torch.randn(1, 1, 2, 2),))
    assert capsys.readouterr() == ("", "")
    assert not [w for w in caught if "thop" in str(w.filename)]
    assert not caplog.records


def test_errors_are_latprof_errors() -> None:
    with pytest.raises(ModelRunError, match="failed while counting MACs"):
        count_layer_costs(nn.Linear(4, 2), (torch.randn(1, 5),))
    with pytest.raises(LatprofError, match="lazy modules"):
        count_layer_costs(nn.LazyBatchNorm2d(), (torch.randn(1, 3, 2, 2),))


def test_module_exports() -> None:
    assert set(flops.__all__) <= set(dir(flops))
