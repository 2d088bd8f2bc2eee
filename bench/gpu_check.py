"""`make gpu-check`: everything that needs a GPU, as one script (under 8 minutes on one H200).

Runs the CUDA tests, `env` and `profile` on every visible GPU (cuda:N), the module tree of
zoo:vit and zoo:swin (do parents' self times stay above 0 on a GPU?), the TF32 on/off pair,
a `build-lut --device cuda` of the entries of the ten TF-NAS archs at batch 32, and
`validate` of those archs and of 20 random archs. Writes one results file (JSON) with every
step's command, exit code, wall time and output tail. `--plan N` prints the steps for N GPUs
without running anything (tested on CPU).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LATPROF = [sys.executable, "-m", "latprof"]
TFNAS = [
    f"zoo:tfnas-{n}"
    for n in ("a", "b", "c", "d", "a-wose", "b-wose", "c-wose", "d-wose", "cpu-a", "cpu-b")
]
RESULTS = Path("gpu-check-results.json")


def plan(gpus: int, folder: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, timeout s) of every step, for `gpus` visible GPUs."""
    lut = str(folder / "tfnas-archs-cuda-b32.parquet")
    steps = [
        (
            "cuda tests",
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_cuda_fake.py",
            ],
            120,
        ),
    ]
    for n in range(gpus):
        dev = f"cuda:{n}"
        steps.append((f"env {dev}", [*LATPROF, "env", "--device", dev, "--format", "json"], 60))
        for model in ("zoo:cnn", "zoo:dscnn", "zoo:tfnas-a"):
            steps.append(
                (
                    f"profile {model} {dev}",
                    [
                        *LATPROF,
                        "profile",
                        model,
                        "--device",
                        dev,
                        "--batch-size",
                        "32",
                        "--format",
                        "csv",
                    ],
                    120,
                )
            )
    for model in ("zoo:vit", "zoo:swin"):  # self times of parents on a GPU (issue 14)
        steps.append(
            (
                f"module tree {model}",
                [
                    *LATPROF,
                    "profile",
                    model,
                    "--device",
                    "cuda",
                    "--batch-size",
                    "32",
                    "--by",
                    "module",
                    "--depth",
                    "2",
                    "--format",
                    "csv",
                ],
                60,
            )
        )
    for flag in ("on", "off"):
        steps.append(
            (
                f"profile tfnas-a tf32 {flag}",
                [
                    *LATPROF,
                    "profile",
                    "zoo:tfnas-a",
                    "--device",
                    "cuda",
                    "--batch-size",
                    "32",
                    "--tf32",
                    flag,
                    "--format",
                    "csv",
                ],
                120,
            )
        )
    vit = str(folder / "vit-units-in-model-cuda-b32.parquet")
    steps += [
        (  # a layer table timed inside its model on the GPU (--context models)
            "build-lut vit units in model",
            [
                *LATPROF, "build-lut", "--models", "zoo:vit", "--unit", "EncoderBlock",
                "--context", "models", "--device", "cuda", "--self-check", "0", "-o", vit,
            ],
            35,
        ),
        ("predict vit", [*LATPROF, "predict", "zoo:vit", "--lut", vit, "--format", "csv"], 20),
    ]  # fmt: skip
    steps += [
        (
            "build-lut tfnas archs b32",
            [
                *LATPROF,
                "build-lut",
                "--device",
                "cuda",
                "--space",
                "tfnas",
                "--archs",
                *TFNAS,
                "-o",
                lut,
            ],
            240,
        ),
        (
            "validate zoo archs",
            [*LATPROF, "validate", "--lut", lut, *TFNAS, "--format", "csv"],
            120,
        ),
        (
            "validate 20 random (misses measured)",
            [
                *LATPROF,
                "validate",
                "--lut",
                lut,
                "--samples",
                "20",
                "--seed",
                "20261130",
                "--exact",
                "--format",
                "csv",
            ],
            180,
        ),
    ]
    return steps


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--plan":
        for name, cmd, timeout in plan(int(sys.argv[2]), Path("<tmp>")):
            print(f"{name}\t{timeout}\t{' '.join(cmd[1:])}")
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu-check: CUDA is not available (install a CUDA build: make install TORCH=...)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd, timeout in plan(torch.cuda.device_count(), Path(tmp)):
            start = time.perf_counter()
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                rc, out = done.returncode, done.stdout + done.stderr
            except subprocess.TimeoutExpired as exc:
                rc, out = 124, f"timed out after {timeout} s: {exc}"
            took = time.perf_counter() - start
            print(f"{'ok ' if rc == 0 else 'FAIL'} {name} ({took:.1f} s)", flush=True)
            results.append(
                {
                    "step": name,
                    "command": cmd[1:],
                    "rc": rc,
                    "seconds": took,
                    "output_tail": out[-4000:],
                }
            )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
