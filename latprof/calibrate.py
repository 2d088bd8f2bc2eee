"""Device calibration: sustained MAC/s (a square matmul) and memory bandwidth (a copy).

The two rates are what the roofline predictor (`latprof.predictors.roofline`) needs. Both are
the **median** over repeats (not the best), the same statistic latprof reports for layer
times, so a layer's fraction of its roofline bound compares like with like.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from latprof.env import cpu_name
from latprof.errors import DeviceError, FileFormatError, UsageError
from latprof.io.atomic import write_text
from latprof.measure.clocks import Clock, clock_for
from latprof.measure.runner import time_plain
from latprof.stats import summarize

__all__ = ["FORMAT", "Calibration", "default_sizes", "load", "measure"]

FORMAT = "latprof.calibration"
MIB = 2**20
_DEFAULTS = {"cpu": (1024, 64), "cuda": (4096, 256)}  # (matmul n, copy MiB)


@dataclass(frozen=True)
class Calibration:
    """Measured rates of one device at one dtype."""

    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str  # "float32", "float16", "bfloat16"
    peak_macs_per_s: float  # n³ / median matmul time
    bandwidth_bytes_per_s: float  # 2 × copy_bytes / median copy time (read + write)
    matmul_n: int
    copy_bytes: int  # size of the copied tensor (bytes moved per copy is twice this)
    threads: int  # torch intra-op threads while measuring
    device_name: str

    @property
    def ridge_point(self) -> float:
        """MACs per byte above which a layer is compute-bound."""
        return self.peak_macs_per_s / self.bandwidth_bytes_per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """From `to_dict` output; unknown keys are ignored, missing ones raise FileFormatError."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise FileFormatError(f"calibration is missing {', '.join(missing)}")
        try:
            return cls(
                device=str(data["device"]),
                dtype=str(data["dtype"]),
                peak_macs_per_s=float(data["peak_macs_per_s"]),
                bandwidth_bytes_per_s=float(data["bandwidth_bytes_per_s"]),
                matmul_n=int(data["matmul_n"]),
                copy_bytes=int(data["copy_bytes"]),
                threads=int(data["threads"]),
                device_name=str(data["device_name"]),
            )
        except (TypeError, ValueError) as exc:
            raise FileFormatError(f"calibration has a malformed value: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically: a temporary file, then a rename)."""
        text = json.dumps({"format": FORMAT, **self.to_dict()}, indent=2)
        write_text(Path(path), text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return load(path)


def load(path: str | Path) -> Calibration:
    """Read a file written by `Calibration.save`; FileFormatError when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileFormatError(f"cannot read calibration {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path} is not a latprof calibration (not JSON)") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not a latprof calibration (format {FORMAT!r})")
    return Calibration.from_dict(data)


def default_sizes(device: str) -> tuple[int, int]:
    """(matmul n, copy MiB): 1024 and 64 on CPU, 4096 and 256 on CUDA."""
    return _DEFAULTS["cpu" if device == "cpu" else "cuda"]


def _median_s(
    fn: Callable[[], Any], clock: Clock, repeats: int, warmup: int, sync: Callable[[], None]
) -> float:
    for _ in range(warmup):
        fn()
    sync()
    samples = [time_plain(fn, clock) for _ in range(repeats)]
    return summarize(samples).median * 1e-6


def _matmul_s(
    n: int,
    device: str,
    dtype: torch.dtype,
    clock: Clock,
    repeats: int,
    warmup: int,
    sync: Callable[[], None],
) -> float:
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    c = torch.empty(n, n, device=device, dtype=dtype)
    return _median_s(lambda: torch.mm(a, b, out=c), clock, repeats, warmup, sync)


def _copy_s(
    numel: int,
    device: str,
    dtype: torch.dtype,
    clock: Clock,
    repeats: int,
    warmup: int,
    sync: Callable[[], None],
) -> float:
    src = torch.ones(numel, device=device, dtype=dtype)
    dst = torch.zeros(numel, device=device, dtype=dtype)
    return _median_s(lambda: dst.copy_(src), clock, repeats, warmup, sync)


def measure(
    device: str = "cpu",
    dtype: str = "float32",
    clock: Clock | None = None,
    matmul_n: int | None = None,
    copy_mb: float | None = None,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> Calibration:
    """Measure sustained MAC/s and copy bandwidth on `device` in `dtype`.

    * MAC/s: ``torch.mm(a, b, out=c)`` on n × n matrices, n³ MACs per call
      (n = `matmul_n`, default 1024 on CPU, 4096 on CUDA).
    * Bandwidth: ``dst.copy_(src)`` of `copy_mb` MiB (default 64 on CPU, 256 on CUDA), counted
      as 2 × its size (read + write).

    Each is timed `repeats` times after `warmup` untimed calls, one call per timed pass
    (`time_plain`: on CUDA two events and one synchronisation per pass); the rate is from the
    **median** time. `clock` defaults to `clock_for(device)`; `threads` sets torch's intra-op
    threads for the measurement (restored afterwards). About 0.5 s on a 2-core CPU.
    """
    from latprof.measure.device import DTYPES, check_device
    from latprof.measure.device import threads as threads_for

    if dtype not in DTYPES:
        raise UsageError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if repeats < 1 or warmup < 0:
        raise UsageError(f"repeats must be ≥ 1 and warmup ≥ 0, got {repeats} and {warmup}")
    check_device(device)
    if device != "cpu" and not device.startswith("cuda"):
        raise DeviceError(f"cannot calibrate device {device!r}; use cpu or cuda[:N]")
    n_default, mb_default = default_sizes(device)
    n = int(matmul_n or n_default)
    mb = float(copy_mb or mb_default)
    if n < 1 or mb <= 0:
        raise UsageError(f"matmul_n and copy_mb must be positive, got {n} and {mb}")
    torch_dtype = DTYPES[dtype]
    cuda = device.startswith("cuda")
    clock = clock or clock_for(device)
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    element = torch.empty((), dtype=torch_dtype).element_size()
    numel = max(int(mb * MIB) // element, 1)

    on_device = torch.cuda.device(device) if cuda else nullcontext()
    with threads_for(threads), on_device, torch.inference_mode():
        used_threads = torch.get_num_threads()
        mm_s = _matmul_s(n, device, torch_dtype, clock, repeats, warmup, sync)
        copy_s = _copy_s(numel, device, torch_dtype, clock, repeats, warmup, sync)
    name = torch.cuda.get_device_name(device) if cuda else cpu_name()

    return Calibration(
        device=device,
        dtype=dtype,
        peak_macs_per_s=n**3 / mm_s if mm_s > 0 else float("inf"),
        bandwidth_bytes_per_s=2 * numel * element / copy_s if copy_s > 0 else float("inf"),
        matmul_n=n,
        copy_bytes=numel * element,
        threads=used_threads,
        device_name=name,
    )


def environment_rows(device: str, dtype: str | None, save: Path | None = None) -> dict[str, Any]:
    """`latprof env`'s key -> value pairs: the environment, plus a calibration measured now
    when `dtype` is given (saved to `save` when given)."""
    from latprof.env import capture
    from latprof.measure import allocator

    data = capture(device).to_dict()
    # the condition profile and build-lut name (system / steady) beside glibc's setting
    data = {k: v for k, v in data.items() if k != "glibc"} | {
        "allocator_condition": allocator.condition(),
        "glibc": data.get("glibc"),
    }
    cuda = data.pop("cuda")
    data.update({f"cuda.{k}": v for k, v in cuda.items()})
    if dtype is None:
        return data
    result = measure(device, dtype)
    data.update(
        {
            "calibration.dtype": dtype,
            "calibration.peak_macs_per_s": result.peak_macs_per_s,
            "calibration.bandwidth_bytes_per_s": result.bandwidth_bytes_per_s,
            "calibration.ridge_point_macs_per_byte": result.ridge_point,
            "calibration.matmul_n": result.matmul_n,
            "calibration.copy_bytes": result.copy_bytes,
        }
    )
    if save is not None:
        result.save(save)
    return data
