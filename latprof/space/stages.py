"""Stages: runs of layers with one output width, chained into a space's slots, and back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from latprof.space.model import Candidate, SearchSpace, Slot


@dataclass(frozen=True)
class Stage:
    """A run of 1..L layers with one output width; only the first layer has the stride.

    ``layers = (min, max)``: ``max`` slots are made and those past the first ``min`` are
    skippable (depth search). Slots are named ``name`` (one layer) or ``name.0``, ``name.1``...
    """

    name: str
    c_out: int
    ops: tuple[Candidate, ...]
    stride: int = 1
    layers: tuple[int, int] = (1, 1)
    act: str = "relu"


def stage_slots(stage: Stage, c_in: int, h: int, w: int) -> list[Slot]:
    """The slots of one stage, given the stage's input shape."""
    lo, hi = stage.layers
    slots = []
    for i in range(hi):
        slots.append(
            Slot(
                name=stage.name if hi == 1 else f"{stage.name}.{i}",
                c_in=c_in if i == 0 else stage.c_out,
                c_out=stage.c_out,
                h=h,
                w=w,
                stride=stage.stride if i == 0 else 1,
                act=stage.act,
                candidates=tuple(stage.ops),
                skippable=i >= lo,
            )
        )
        h, w = slots[-1].out_hw
    return slots


def build_space(
    name: str,
    description: str,
    input_chw: Sequence[int],
    stages: Sequence[Stage],
    notes: Sequence[str] = (),
) -> SearchSpace:
    """Chain stages from an input shape ``(C, H, W)``: each stage's c_in, h, w come from the
    previous one. Not validated; call ``.validate()``."""
    c, h, w = input_chw
    slots: list[Slot] = []
    for stage in stages:
        new = stage_slots(stage, c, h, w)
        slots.extend(new)
        c = stage.c_out
        h, w = new[-1].out_hw
    return SearchSpace(name, description, tuple(slots), tuple(notes))


def stages_of(space: SearchSpace) -> list[Stage]:
    """The stages a space was chained from (single-slot stages where no run fits)."""
    slots = space.slots
    stages: list[Stage] = []
    i = 0
    while i < len(slots):
        s = slots[i]
        stage = None
        if s.name.endswith(".0"):
            base = s.name[:-2]
            j = i + 1
            while j < len(slots) and slots[j].name == f"{base}.{j - i}":
                j += 1
            n = j - i
            lo = next((k for k in range(n) if slots[i + k].skippable), n)
            cand = Stage(base, s.c_out, s.candidates, s.stride, (lo, n), s.act)
            if n > 1 and stage_slots(cand, s.c_in, s.h, s.w) == list(slots[i:j]):
                stage = cand
                i = j
        if stage is None:
            layers = (0 if s.skippable else 1, 1)
            stage = Stage(s.name, s.c_out, s.candidates, s.stride, layers, s.act)
            i += 1
        stages.append(stage)
    return stages
