"""Environment: everything about the machine and software that a number depends on."""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from latprof._version import __version__


@dataclass(frozen=True)
class Environment:
    """The measuring environment, embedded in every machine-readable output."""

    latprof: str
    torch: str
    thop: str
    python: str
    platform: str
    hostname: str
    cpu: str
    device: str
    device_name: str
    intra_op_threads: int
    inter_op_threads: int
    omp_num_threads: str | None
    mkl_num_threads: str | None
    flush_denormal: bool
    timestamp: str
    cuda: dict[str, Any] = field(default_factory=dict)
    allocator: str = "default"  # latprof.measure.allocator: the host allocator setting
    glibc: str | None = None  # glibc's version: the steady allocator needs it
    cpu_capability: str | None = None  # ATen's vector instruction set (AVX512, AVX2, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _flushes_denormals(torch: Any) -> bool:
    # torch has no getter: a denormal product comes out as 0 when flushing is on
    return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0)


def _cpu_capability(torch: Any) -> str | None:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


def cuda_info(torch: Any, device: str) -> dict[str, Any]:
    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    try:
        driver = torch._C._cuda_getDriverVersion()
    except (AttributeError, RuntimeError):
        driver = None
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "driver_version": driver,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }


def capture(device: str = "cpu") -> Environment:
    """Read the environment now (threads as currently set in torch)."""
    import torch

    from latprof.measure import allocator

    cuda = cuda_info(torch, device) if device.startswith("cuda") else {}
    return Environment(
        latprof=__version__,
        torch=torch.__version__,
        thop=_version_of("thop"),
        python=platform.python_version(),
        platform=platform.platform(),
        hostname=socket.gethostname(),
        cpu=cpu_name(),
        device=device,
        device_name=cuda.get("name", cpu_name()),
        intra_op_threads=torch.get_num_threads(),
        inter_op_threads=torch.get_num_interop_threads(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        mkl_num_threads=os.environ.get("MKL_NUM_THREADS"),
        flush_denormal=_flushes_denormals(torch),
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        cuda=cuda,
        allocator=allocator.setting(),
        glibc=allocator.glibc_version(),
        cpu_capability=_cpu_capability(torch),
    )
