"""The host allocator condition of a measurement: `system` (the process as the user runs it,
untouched) or `steady` (glibc's trim threshold fixed high and mmap off).

By default glibc hands tensors above its (dynamic) mmap threshold fresh pages from the kernel
and returns memory at the top of the heap when more than the trim threshold is free. A forward
pass then page-faults on some of its activations on every pass, depending on what ran before:
on zoo:tfnas-a (1 thread, this project's CPU) one 1x83x112x112 block took 10.3-13.5 ms inside
the network and 2.3-3.2 ms once the thresholds were fixed, and the network 40-53 ms vs 33-35.
Fixing the mmap threshold is not enough for tensors above 32 MiB (its largest allowed value):
glibc still maps and unmaps each of them, so at batch 8 mbv2 archs with wide 112x112 blocks
page-faulted 27,000-50,000 times per pass and ran 40-100 % slower (129-185 ms vs 88-103 ms);
`steady` therefore also turns mmap off (M_MMAP_MAX = 0): every tensor comes from the heap,
which the trim threshold keeps.

`latprof profile` measures the `system` condition unless asked (`--allocator steady`); lookup
tables are built `steady` so that a block measured alone and inside a network run under the
same allocator. glibc cannot return to its dynamic thresholds once `mallopt` has set them, so
the other condition is measured in a child process started with (or without) the equivalent
environment variables (`child_env`). The condition is recorded in every file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys

from latprof.errors import UsageError

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 2**30
MMAP_MAX = 0  # no mmap at all: larger tensors than any threshold come from the heap too
ENV_VAR = "LATPROF_ALLOCATOR"  # "default" leaves the allocator alone, even for tables
CONDITIONS = ("system", "steady")
GLIBC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    "MALLOC_MMAP_MAX_": str(MMAP_MAX),
}
"""glibc's environment variables that set the same thresholds as `steady` (in deployment)."""
DEPLOY_HINT = (
    " ".join(f"{k}={v}" for k, v in GLIBC_ENV.items())
    + " before the process starts (glibc), or preload jemalloc/tcmalloc (LD_PRELOAD)"
)

_state = {"setting": ""}


def glibc_version() -> str | None:
    """glibc's version, or None when the C library is not glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_char_p
    return fn().decode()


def check_condition(name: str) -> str:
    """`name` if it is a condition this process can measure; UsageError (exit 2) otherwise."""
    if name not in CONDITIONS:
        raise UsageError(f"--allocator {name!r} is unknown; use system or steady")
    if name == "steady" and glibc_version() is None:
        raise UsageError(
            "--allocator steady needs glibc (its mmap/trim thresholds); this C library is "
            "not glibc (macOS, musl): use --allocator system"
        )
    return name


STEADY_SETTING = (
    f"glibc mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD} mmap_max={MMAP_MAX}"
)


def planned() -> str:
    """What `steady` would record in this process, without changing anything."""
    if _state["setting"]:
        return _state["setting"]
    if os.environ.get(ENV_VAR, "").lower() == "default":
        return f"default ({ENV_VAR}=default)"
    if glibc_version() is None:
        return "default (not glibc)"
    return STEADY_SETTING


def steady() -> str:
    """Fix glibc's mmap and trim thresholds and turn mmap off (once per process;
    irreversible); return what was done. Only an explicit request may call this: it
    changes the whole process."""
    if _state["setting"]:
        return _state["setting"]
    will = planned()
    if will.startswith("default"):
        _state["setting"] = will
        return will
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    calls = {
        "mmap_threshold": (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        "trim_threshold": (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        "mmap_max": (M_MMAP_MAX, MMAP_MAX),
    }
    refused = [name for name, (param, value) in calls.items() if not libc.mallopt(param, value)]
    _state["setting"] = (
        STEADY_SETTING if not refused else f"partial (mallopt refused {', '.join(refused)})"
    )
    return _state["setting"]


def setting() -> str:
    """What `steady` did in this process ('default' if it was not called); a process started
    with glibc's MALLOC_* variables reports them ('glibc env ...' only when all of steady's
    are there with steady's values, else 'partial env ...')."""
    if _state["setting"]:
        return _state["setting"]
    fixed = {k: os.environ[k] for k in GLIBC_ENV if k in os.environ}
    if not fixed:
        return "default"
    listed = " ".join(f"{k}={v}" for k, v in fixed.items())
    return ("glibc env " if fixed == GLIBC_ENV else "partial env ") + listed


def condition() -> str:
    """The condition this process is in now: steady once thresholds are fixed, else system."""
    s = setting()
    return "steady" if s.startswith("glibc") else "system"


def apply(name: str) -> str:
    """Put the process in condition `name` ('system' changes nothing); the setting."""
    if check_condition(name) == "steady":
        return steady()
    return setting()


def child_env(name: str) -> dict[str, str]:
    """The environment of a child process that measures condition `name`."""
    env = {k: v for k, v in os.environ.items() if k not in GLIBC_ENV and k != ENV_VAR}
    if name == "steady":
        env.update(GLIBC_ENV)
    return env


def minor_faults() -> int:
    """Minor page faults of this process so far (getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
