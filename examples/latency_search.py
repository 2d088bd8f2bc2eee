"""Differentiable architecture search for a latency target with a latprof lookup table.

What FBNet / ProxylessNAS / TF-NAS put in their loss: E[latency] = sum of softmax(alpha) . LUT
per slot, differentiable in the architecture logits alpha (and per-stage depth logits). With
no data to train on, this example maximises expected MACs (a stand-in for accuracy) under a
TF-NAS-style latency penalty |E[lat] / target - 1|, with a growing entropy term so that the
mixture ends near one architecture; then it predicts that architecture with the table and
measures it for real. The derived (argmax) architecture lands near, not on, the target: the
space is discrete.

    .venv/bin/python examples/latency_search.py                # builds the small table once
    .venv/bin/python examples/latency_search.py --target-us 800
    .venv/bin/python examples/latency_search.py --lut tables/mbv2-cpu-b1.parquet --target-us 20000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from latprof.lut.expected import LatencyModel, latency_model
from latprof.lut.predict import predict
from latprof.lut.table import LatencyTable
from latprof.space.arch import Arch, build_module, input_shape

HERE = Path(__file__).parent
SPACE = HERE / "small_space.toml"
DEFAULT_LUT = HERE.parent / "tables" / "small-cpu-b1.parquet"


def entropy(logits: dict[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for v in logits.values():
        p = torch.softmax(v, dim=0)
        total = total - (p * p.clamp_min(1e-12).log()).sum()
    return total


def search(
    model: LatencyModel,
    target_us: float,
    steps: int = 300,
    lr: float = 0.1,
    penalty: float = 4.0,
    sharpen: float = 0.1,
) -> tuple[Arch, list[dict[str, float]]]:
    """Adam on alpha and depth logits; returns the argmax arch and the history. An entropy
    term, ramped up over the steps, pushes the mixture towards a single architecture."""
    alpha = model.init_alpha()
    depth = model.init_depth()
    opt = torch.optim.Adam([*alpha.values(), *depth.values()], lr=lr)
    uniform = model.expected(alpha, depth, of="macs").detach()
    history = []
    for step in range(steps):
        latency = model.expected(alpha, depth)
        macs = model.expected(alpha, depth, of="macs")
        loss = -macs / uniform + penalty * (latency / target_us - 1).abs()
        loss = loss + sharpen * step / steps * (entropy(alpha) + entropy(depth))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"step": step, "latency_us": latency.item(), "loss": loss.item()})
    return model.derive(alpha, depth, name=f"target-{target_us:g}us"), history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", type=Path, default=None, help="a space lookup table")
    parser.add_argument("--target-us", type=float, default=None, help="default: 0.8 x uniform")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lut = args.lut or DEFAULT_LUT
    if args.lut is None and not lut.exists():
        print(f"building {lut} (once, about a minute)...", flush=True)
        cmd = [sys.executable, "-m", "latprof", "build-lut", "--space", str(SPACE)]
        cmd += ["--width-step", "16", "--threads", "1", "--warmup", "5", "--trials", "15"]
        subprocess.run([*cmd, "-o", str(lut)], check=True)
    table = LatencyTable.load(lut)
    model = latency_model(table)
    uniform = float(model.expected(model.init_alpha(False), model.init_depth(False)))
    target = args.target_us or 0.8 * uniform
    print(f"table {lut.name}: {len(table)} entries; uniform mixture E[latency] {uniform:.0f} µs")
    arch, history = search(model, target, steps=args.steps)
    for h in history[:: max(1, len(history) // 6)] + history[-1:]:
        print(f"  step {h['step']:4d}  E[latency] {h['latency_us']:9.1f} µs  loss {h['loss']:.3f}")
    pred = predict(table, arch, space=model.space)
    print(f"derived: {', '.join(c.label() for c in arch.choices)}")
    print(f"target {target:.0f} µs, LUT prediction {pred.total_us:.0f} µs", end="", flush=True)

    from latprof.config import MeasureSettings
    from latprof.lut.validate import measure_end_to_end

    net = build_module(arch, model.space)
    x = torch.randn(*input_shape(arch, model.space, int(table.meta["batch"])))
    settings = MeasureSettings(dtype=table.meta["dtype"], warmup=10, trials=30)
    stats, _ = measure_end_to_end(net, (x,), {}, settings)
    print(f", measured {stats.median:.0f} µs (IQR {stats.iqr:.0f})")


if __name__ == "__main__":
    main()
