"""Search spaces: slots (positions in a network) x candidate ops -> entries to measure."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from latprof.errors import SpaceError
from latprof.space.ops import OP_KINDS, build_entry

ACTS = ("relu", "relu6", "swish", "hswish", "sigmoid", "none")

SE_RULES: dict[str, Callable[[int, int], int]] = {
    "none": lambda c_in, mid: 0,
    "quarter": lambda c_in, mid: max(1, mid // 4),  # SE width = mid / 4
    "half": lambda c_in, mid: max(1, mid // 2),
    # TF-NAS (seed 004, Tables 9-18): the SE width is fixed by the op, not by the mid width:
    # e3-type ops (mid in [2, 4] x c_in) have SE c_in, e6-type ops (mid in [4, 8] x c_in) 2 x c_in
    "c_in": lambda c_in, mid: c_in,
    "2c_in": lambda c_in, mid: 2 * c_in,
}


@dataclass(frozen=True)
class Candidate:
    """A candidate op of a slot: kind and hyper-parameters, independent of shapes.

    `expansion` is a (low, high) range of mid-channel width as a multiple of c_in (equal ends
    for a fixed width); `mid` fixes the width in channels instead.
    """

    op: str
    kernel: int = 1
    expansion: tuple[float, float] = (1.0, 1.0)
    mid: int = 0
    se: str = "none"
    dilation: int = 1
    act: str = ""  # empty: the slot's activation

    def __post_init__(self) -> None:
        # floats, so that equal candidates hash (SearchSpace.hash) the same: (2, 4) == (2.0, 4.0)
        lo, hi = self.expansion
        object.__setattr__(self, "expansion", (float(lo), float(hi)))

    def label(self) -> str:
        parts = [self.op, f"k{self.kernel}"]
        if OP_KINDS.get(self.op):
            lo, hi = self.expansion
            parts.append(
                f"m{self.mid}" if self.mid else (f"e{lo:g}" if lo == hi else f"e{lo:g}-{hi:g}")
            )
        if self.se != "none":
            parts.append(f"se-{self.se}")
        if self.dilation != 1:
            parts.append(f"d{self.dilation}")
        if self.act:
            parts.append(self.act)
        return "_".join(parts)

    def mids(self, c_in: int, width_step: int = 1) -> list[int]:
        """Mid-channel widths to measure: every `width_step`-th one, both ends included."""
        if not OP_KINDS.get(self.op):
            return [0]
        if self.mid:
            return [self.mid]
        lo = max(1, math.ceil(self.expansion[0] * c_in - 1e-9))
        hi = max(lo, math.floor(self.expansion[1] * c_in + 1e-9))
        widths = list(range(lo, hi + 1, max(1, width_step)))
        return widths if widths[-1] == hi else [*widths, hi]


@dataclass(frozen=True)
class Entry:
    """One thing to measure: a block at an input shape (batch and dtype come with a build)."""

    op: str
    kernel: int
    stride: int
    mid: int
    se: int
    act: str
    dilation: int
    c_in: int
    c_out: int
    h: int
    w: int

    def key(self, batch: int, dtype: str) -> str:
        return (
            f"{self.op}|k{self.kernel}|s{self.stride}|m{self.mid}|se{self.se}|{self.act}"
            f"|d{self.dilation}|{self.c_in}>{self.c_out}|{self.h}x{self.w}|b{batch}|{dtype}"
        )

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.c_in, self.h, self.w)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build(self) -> Any:
        """The nn.Module this entry measures."""
        return build_entry(self)


@dataclass(frozen=True)
class Slot:
    """A position in the network: input shape, output channels, stride, candidates."""

    name: str
    c_in: int
    c_out: int
    h: int
    w: int
    stride: int
    act: str
    candidates: tuple[Candidate, ...]
    skippable: bool = False  # depth search: the layer may be left out

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.candidates and all(c.op == "pool_fc" for c in self.candidates):
            return (1, 1)
        return (math.ceil(self.h / self.stride), math.ceil(self.w / self.stride))

    def entries(self, width_step: int = 1) -> list[Entry]:
        out = []
        for cand in self.candidates:
            act = cand.act or self.act
            for mid in cand.mids(self.c_in, width_step):
                se = SE_RULES[cand.se](self.c_in, mid or self.c_in)
                out.append(
                    Entry(
                        cand.op,
                        cand.kernel,
                        self.stride,
                        mid,
                        se,
                        act,
                        cand.dilation,
                        self.c_in,
                        self.c_out,
                        self.h,
                        self.w,
                    )
                )
        return out


@dataclass(frozen=True)
class SearchSpace:
    """A named list of slots; `entries()` is what a lookup table must hold."""

    name: str
    description: str
    slots: tuple[Slot, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def entries(self, width_step: int = 1) -> list[Entry]:
        """Every distinct (op, shape) entry, in slot order, without duplicates."""
        return list(dict.fromkeys(e for s in self.slots for e in s.entries(width_step)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "slots": [asdict(s) for s in self.slots],
        }

    def hash(self) -> str:
        """Stable digest of the slots (not the name): same hash, same entries."""
        text = json.dumps([asdict(s) for s in self.slots], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def validate(self) -> SearchSpace:
        """Raise SpaceError naming the slot and field that is wrong."""
        if not self.slots:
            raise SpaceError(f"space {self.name!r} has no slots")
        for i, slot in enumerate(self.slots):
            where = f"space {self.name!r}, slot {i} ({slot.name})"
            for fname in ("c_in", "c_out", "h", "w"):
                if getattr(slot, fname) < 1:
                    raise SpaceError(f"{where}: {fname} must be positive")
            if slot.stride not in (1, 2):
                raise SpaceError(f"{where}: stride must be 1 or 2, got {slot.stride}")
            if slot.act not in ACTS:
                raise SpaceError(f"{where}: unknown act {slot.act!r}; known: {', '.join(ACTS)}")
            if not slot.candidates:
                raise SpaceError(f"{where}: no candidate ops")
            for cand in slot.candidates:
                _check_candidate(cand, slot, where)
            if i + 1 < len(self.slots):
                nxt = self.slots[i + 1]
                if nxt.c_in != slot.c_out:
                    raise SpaceError(
                        f"{where}: channels don't chain: c_out {slot.c_out} but the next slot "
                        f"({nxt.name}) has c_in {nxt.c_in}"
                    )
                if (nxt.h, nxt.w) != slot.out_hw:
                    raise SpaceError(
                        f"{where}: spatial size doesn't chain: {slot.h}x{slot.w} at stride "
                        f"{slot.stride} gives {slot.out_hw[0]}x{slot.out_hw[1]}, but the next "
                        f"slot ({nxt.name}) expects {nxt.h}x{nxt.w}"
                    )
        return self


def _check_candidate(cand: Candidate, slot: Slot, where: str) -> None:
    if cand.op not in OP_KINDS:
        raise SpaceError(f"{where}: unknown op {cand.op!r}; known: {', '.join(OP_KINDS)}")
    if cand.kernel < 1 or cand.kernel % 2 == 0:
        raise SpaceError(
            f"{where}: op {cand.op}: kernel must be odd and positive, got {cand.kernel}"
        )
    if cand.se not in SE_RULES:
        raise SpaceError(
            f"{where}: op {cand.op}: unknown se rule {cand.se!r}; known: {', '.join(SE_RULES)}"
        )
    if cand.act and cand.act not in ACTS:
        raise SpaceError(f"{where}: op {cand.op}: unknown act {cand.act!r}")
    lo, hi = cand.expansion
    if not 0 < lo <= hi:
        raise SpaceError(f"{where}: op {cand.op}: expansion range [{lo}, {hi}] is empty")
    if cand.op == "identity" and slot.stride != 1 and slot.c_in == slot.c_out:
        pass  # a 1x1 conv projection stands in (blocks.identity)
    if cand.op == "pool_fc" and slot.stride != 1:
        raise SpaceError(f"{where}: pool_fc can't have a stride (it pools globally)")


def with_slots(space: SearchSpace, slots: list[Slot]) -> SearchSpace:
    return replace(space, slots=tuple(slots))
