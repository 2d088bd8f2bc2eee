"""The table's fitted correction: exact on synthetic data, used by predict and by expected
latency (still differentiable), with the raw sum kept beside it."""

from __future__ import annotations

import pytest
import torch

from latprof import expected_latency, latency_model, predict
from latprof.lut import correction
from latprof.lut.table import corrected
from tests.test_reuse import K3_16, arch, fake_table, tiny_space


def test_fit_recovers_an_exact_linear_law_and_its_loo_errors_are_zero() -> None:
    sums = [100.0, 200.0, 300.0, 150.0, 260.0]
    blocks = [3, 5, 4, 6, 2]
    measured = [0.9 * s + 2.5 * b + 7.0 for s, b in zip(sums, blocks, strict=True)]
    c = correction.fit(sums, blocks, measured)
    assert c["model"] == "full"
    assert c["coef"] == pytest.approx([0.9, 2.5, 7.0])
    assert c["loo_max_abs_error_pct"] == pytest.approx(0.0, abs=1e-9)
    raw = sorted(abs(s - m) / m * 100 for s, m in zip(sums, measured, strict=True))
    assert c["raw_median_abs_error_pct"] == pytest.approx(raw[2])
    assert c["raw_max_abs_error_pct"] == pytest.approx(raw[-1])
    assert corrected(c, 400.0, 3) == pytest.approx(0.9 * 400 + 7.5 + 7.0)


def test_loo_error_is_the_error_on_the_left_out_arch() -> None:
    # y = x exactly except the last point, 10 % high: leaving it out predicts it as x
    sums, blocks = [100.0, 200.0, 300.0, 400.0], [1, 2, 3, 5]
    measured = [100.0, 200.0, 300.0, 440.0]
    c = correction.fit(sums, blocks, measured)
    assert c["loo_max_abs_error_pct"] >= 9.0  # the outlier is not predicted from the others


def test_a_ratio_law_keeps_the_ratio_model_though_richer_ones_fit_its_noise_better() -> None:
    sums = [100.0, 200.0, 300.0, 150.0, 260.0, 180.0, 220.0, 120.0]
    blocks = [3, 5, 4, 6, 2, 4, 5, 3]
    wiggle = [0.004, -0.003, 0.002, -0.004, 0.003, 0.001, -0.002, 0.0]  # 0.4 % at most
    measured = [1.1 * s * (1 + e) for s, e in zip(sums, wiggle, strict=True)]
    c = correction.fit(sums, blocks, measured)
    assert c["model"] == "ratio"
    assert c["coef"][1:] == [0.0, 0.0]
    assert c["coef"][0] == pytest.approx(1.1, rel=0.005)
    assert c["loo_median_abs_error_pct"] == c["models"]["ratio"]["loo_median"]
    assert set(c["models"]) == set(correction.MODELS)
    # the richer models fit the wiggle a little better, by less than PARSIMONY_PCT
    full = c["models"]["full"]["loo_median"]
    assert c["models"]["ratio"]["loo_median"] - correction.PARSIMONY_PCT < full


def test_an_intercept_is_kept_when_it_earns_its_margin_and_blocks_stay_out() -> None:
    sums = [100.0, 200.0, 300.0, 150.0, 260.0, 180.0]
    blocks = [3, 5, 4, 6, 2, 4]
    measured = [0.8 * s + 50.0 for s in sums]  # a fixed 50 µs: up to 20 % of the small ones
    c = correction.fit(sums, blocks, measured)
    assert c["model"] == "ratio+intercept"
    assert c["coef"] == pytest.approx([0.8, 0.0, 50.0])
    assert c["coef"][1] == 0.0
    assert c["loo_max_abs_error_pct"] == pytest.approx(0.0, abs=1e-9)
    assert c["models"]["ratio"]["loo_median"] > correction.PARSIMONY_PCT


def loo(median: float, worst: float) -> dict[str, float]:
    return {"loo_median": median, "loo_max": worst}


@pytest.mark.parametrize(
    ("ratio", "intercept", "full", "chosen"),
    [
        (loo(3.0, 6.0), loo(2.1, 6.0), loo(2.5, 5.0), "ratio"),  # gains of 0.9, 0.5
        (loo(3.0, 6.0), loo(2.0, 6.0), loo(1.5, 5.0), "ratio+intercept"),  # exactly 1.0
        (loo(3.0, 6.0), loo(1.0, 6.5), loo(2.5, 6.0), "ratio"),  # better median, worse max
        (loo(3.0, 6.0), loo(2.0, 5.0), loo(1.0, 5.0), "full"),
        (loo(3.0, 6.0), loo(2.9, 6.0), loo(1.9, 6.0), "full"),  # against ratio, not intercept
        (loo(3.0, 6.0), loo(1.0, 4.0), loo(0.5, 3.0), "ratio+intercept"),  # 0.5 short
    ],
)
def test_the_richer_model_must_beat_the_chosen_one_by_the_margin_at_no_worse_max(
    ratio: dict, intercept: dict, full: dict, chosen: str
) -> None:
    assert correction.PARSIMONY_PCT == 1.0  # the rows above are written for it
    fits = {"ratio": ratio, "ratio+intercept": intercept, "full": full}
    assert correction.choose(fits) == chosen


def test_describe_names_the_model_and_leaves_out_unused_terms() -> None:
    c = {"k": 20, "seed": 4409, "model": "ratio", "coef": [1.05, 0.0, 0.0],
         "loo_median_abs_error_pct": 1.0, "loo_max_abs_error_pct": 3.0,
         "raw_median_abs_error_pct": 5.0, "raw_max_abs_error_pct": 9.0}  # fmt: skip
    line = correction.describe(c)
    assert "model ratio" in line and "latency = 1.0500·Σ;" in line
    assert "blocks" not in line
    full = correction.describe({**c, "model": "full", "coef": [0.9, 2.5, -7.0]})
    assert "0.9000·Σ + 2.50 µs·blocks + -7.0 µs;" in full


def with_correction(coef: list[float]):
    table = fake_table()
    table.meta["correction"] = {"features": list(correction.FEATURES), "coef": coef}
    return table


def test_prediction_is_corrected_and_keeps_the_raw_sum() -> None:
    raw = predict(fake_table(), arch(K3_16), space=tiny_space())
    pred = predict(with_correction([0.5, 10.0, 3.0]), arch(K3_16), space=tiny_space())
    assert pred.sum_us == raw.total_us == raw.sum_us
    assert pred.total_us == pytest.approx(0.5 * raw.sum_us + 10.0 * len(pred.blocks) + 3.0)
    assert sum(r["time_us"] for r in pred.rows()) == pytest.approx(pred.sum_us)


def test_expected_latency_applies_the_correction_and_stays_differentiable() -> None:
    a, b, c = 0.5, 10.0, 3.0
    table = with_correction([a, b, c])
    model = latency_model(table, tiny_space())
    alpha = model.init_alpha()
    depth = model.init_depth()  # body: depth 1 or 2, so body.1 is kept with p = 1/2
    raw = model.expected(alpha, depth, of="sum")
    blocks = 3 + 0.5  # stem, body.0, pool_fc always; body.1 half the time
    e = expected_latency(table, alpha, depth, space=tiny_space())
    assert e.item() == pytest.approx(a * raw.item() + b * blocks + c)
    e.backward()
    times = torch.tensor([20.0, 30, 40, 50, 60, 70], dtype=torch.float64)
    assert torch.allclose(alpha["body.0"].grad, a * (times - 45) / 6)
    # d/d depth logits: E changes by (a · E[t(body.1)] + b) per unit of P(kept)
    assert depth["body"].grad is not None
    assert depth["body"].grad[1].item() == pytest.approx((a * 45 + b) * 0.25)


def test_a_fit_with_no_arch_predicted_and_measured_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latprof.errors import ModelRunError
    from latprof.lut import fresh

    rows = [
        {"arch": "sample-4409-0", "sum_us": None, "blocks": 3, "measured_us": 70.0},
        {"arch": "sample-4409-1", "sum_us": 100.0, "blocks": 3, "measured_us": None},
    ]
    monkeypatch.setattr(fresh, "rows", lambda *a, **k: rows)
    table = fake_table()
    with pytest.raises(ModelRunError, match="none of the 2 random architectures"):
        correction.fit_table(table, 2)
    assert "correction" not in table.meta
