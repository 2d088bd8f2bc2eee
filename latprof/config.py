"""Settings: ProfileConfig (the validated input of a profile) and MeasureSettings (how table
entries and whole networks are measured), read from table metadata in one place."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from latprof.errors import UsageError

DTYPES = ("float32", "float16", "bfloat16")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def check_warmup(warmup: int) -> None:
    if warmup < 1:
        raise UsageError(
            f"--warmup must be at least 1 (the first pass is never a sample), got {warmup}"
        )


@dataclass(frozen=True)
class ProfileConfig:
    """How to measure: device, dtype, threads, warm-up, trials."""

    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    warmup: int = 10
    trials: int = 20
    calibrate_bias: bool = True
    allocator: str = "system"  # host allocator condition: system (untouched) or steady
    tf32: bool | None = None  # CUDA: TF32 for matmul and cuDNN; None leaves PyTorch's own
    cudnn_benchmark: bool | None = None  # CUDA: cudnn.benchmark; None leaves PyTorch's own
    scope: str = "modules"  # modules: every module timed (self times); leaves: leaves only
    op_module: str | None = None  # --by op: the module whose aten ops are timed

    def __post_init__(self) -> None:
        if self.scope not in ("modules", "leaves"):
            raise UsageError(f"scope {self.scope!r} is unknown; use modules or leaves")
        if self.allocator not in ("system", "steady"):
            raise UsageError(f"--allocator {self.allocator!r} is unknown; use system or steady")
        object.__setattr__(self, "device", parse_device(self.device))
        if self.dtype not in DTYPES:
            raise UsageError(
                f"--dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}"
            )
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        check_warmup(self.warmup)
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        for name, value in (("--tf32", self.tf32), ("--cudnn-benchmark", self.cudnn_benchmark)):
            if value is not None and not self.device.startswith("cuda"):
                raise UsageError(
                    f"{name} sets a CUDA condition; it has no meaning with --device cpu"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileConfig:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


BUILD_TRIALS = 20
"""`build-lut`'s timed passes per entry. 40 was tried (1.6x the build time): one pair of
40-trial mbv2 builds agreed on 50 random archs' sums within 1.55 % (sd), another within
3.25 %, against 2.3-2.7 % for pairs of 20-trial builds; no clear gain (docs/benchmarks.md)."""


@dataclass(frozen=True)
class MeasureSettings:
    """How table entries and whole networks are measured."""

    device: str = "cpu"
    dtype: str = "float32"
    batch: int = 1
    warmup: int = 10
    trials: int = 20
    flush_every: int = 16
    tf32: bool | None = None  # CUDA conditions; None leaves PyTorch's own
    cudnn_benchmark: bool | None = None

    @classmethod
    def of_table(
        cls, meta: dict[str, Any], warmup: int | None = None, trials: int | None = None
    ) -> MeasureSettings:
        """The settings a table was measured with (warm-up and trials overridable)."""
        return cls(
            device=meta.get("device") or "cpu",
            dtype=meta["dtype"],
            batch=int(meta.get("batch") or 1),
            warmup=int(meta.get("warmup", 10)) if warmup is None else warmup,
            trials=int(meta.get("trials", 20)) if trials is None else trials,
            tf32=meta.get("tf32"),
            cudnn_benchmark=meta.get("cudnn_benchmark"),
        )


def parse_device(text: str) -> str:
    """Normalise a device string: 'cpu', 'cuda' or 'cuda:N'."""
    value = text.strip().lower()
    if not _DEVICE_RE.match(value):
        raise UsageError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    return value


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse '1,3,224,224' (or '1x3x224x224') into a shape tuple."""
    parts = re.split(r"\s*[,x×]\s*", text.strip())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--input-shape {text!r} is not a shape; write comma-separated sizes like 1,3,224,224"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"--input-shape {text!r} needs positive sizes, e.g. 1,3,224,224")
    return shape
