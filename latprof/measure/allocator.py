"""A steady host allocator for measurements (glibc).

By default glibc hands tensors above its (dynamic) mmap threshold fresh pages from the kernel
and returns memory at the top of the heap when more than the trim threshold is free. A forward
pass then page-faults on some of its activations on every pass, depending on what ran before:
on zoo:tfnas-a (1 thread, this project's CPU) one 1x83x112x112 block took 10.3-13.5 ms inside
the network and 2.3-3.2 ms once the thresholds were fixed, and the network 40-53 ms vs 33-35.
latprof fixes both thresholds before measuring so that a block measured alone and the same
block inside a network run under the same allocator. The setting is recorded in every file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 2**30
ENV_VAR = "LATPROF_ALLOCATOR"  # "default" leaves the allocator alone

_state = {"setting": ""}


def steady() -> str:
    """Fix glibc's mmap and trim thresholds (once per process); return what was done."""
    if _state["setting"]:
        return _state["setting"]
    if os.environ.get(ENV_VAR, "").lower() == "default":
        _state["setting"] = f"default ({ENV_VAR}=default)"
        return _state["setting"]
    if not sys.platform.startswith("linux"):
        _state["setting"] = "default (not glibc)"
        return _state["setting"]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(
            M_TRIM_THRESHOLD, TRIM_THRESHOLD
        )
    except (OSError, AttributeError):
        ok = 0
    _state["setting"] = (
        f"glibc mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
        if ok
        else "default (mallopt unavailable)"
    )
    return _state["setting"]


def setting() -> str:
    """What `steady` did in this process ('default' if it was not called)."""
    return _state["setting"] or "default"
