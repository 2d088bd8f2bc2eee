"""Differentiable expected latency from a lookup table (FBNet / ProxylessNAS / TF-NAS style).

E[latency] = sum over slots of P(slot kept) * softmax(alpha_slot) . t_slot, where t_slot holds
the table's time of every choice of the slot (each candidate op at each measured mid width)
and P(slot kept) comes from optional per-stage depth logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from latprof.errors import LookupMissError, SpaceError, UsageError
from latprof.lut.table import scale_of
from latprof.space.arch import SKIP, Arch, Choice
from latprof.space.model import Entry, SearchSpace, Slot

if TYPE_CHECKING:
    from latprof.lut.table import LatencyTable


def stage_of(slot: Slot) -> str:
    return slot.name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class DepthStage:
    """Slots sharing a name prefix (``stage4.0``, ``stage4.1``...) and their depth range."""

    name: str
    slots: tuple[str, ...]
    min_layers: int

    @property
    def depths(self) -> list[int]:
        return list(range(self.min_layers, len(self.slots) + 1))


class LatencyModel:
    """A table's latencies arranged per slot, for expected latency and arch derivation."""

    def __init__(self, table: LatencyTable, space: SearchSpace) -> None:
        if table.meta.get("source") != "space":
            raise SpaceError("expected latency needs a table built from a search space")
        if not table.is_for_space(space):
            raise SpaceError(
                f"the lookup table is for space {table.meta.get('space')!r}, not {space.name!r}"
            )
        step = int(table.meta.get("width_step") or 1)
        batch, dtype = int(table.meta["batch"]), str(table.meta["dtype"])
        self.space = space
        self.meta = table.meta  # read at each expected(): a later refit or recalibration applies
        self.choices: dict[str, list[Entry]] = {}
        self.times: dict[str, Tensor] = {}
        self.macs: dict[str, Tensor] = {}
        for slot in space.slots:
            entries = slot.entries(step)
            values = []
            macs = []
            for e in entries:
                key = e.key(batch, dtype)
                t = table.get(key)
                row = table.rows.get(key)
                macs.append(float((row or {}).get("macs") or 0.0))
                if t is None:
                    raise LookupMissError(
                        f"slot {slot.name}: no entry for {e.key(batch, dtype)}; "
                        "the table must hold the whole space (build-lut without --shard, "
                        "or merge the shards)"
                    )
                values.append(t)
            self.choices[slot.name] = entries
            self.times[slot.name] = torch.tensor(values, dtype=torch.float64)
            self.macs[slot.name] = torch.tensor(macs, dtype=torch.float64)
        self.stages: list[DepthStage] = []
        for slot in space.slots:
            if self.stages and self.stages[-1].name == stage_of(slot):
                continue
            group = [s for s in space.slots if stage_of(s) == stage_of(slot)]
            self.stages.append(
                DepthStage(
                    stage_of(slot),
                    tuple(s.name for s in group),
                    sum(not s.skippable for s in group),
                )
            )

    @property
    def correction(self) -> dict[str, Any] | None:
        """The table's fitted correction now (a refit of the same table object applies)."""
        return self.meta.get("correction")

    def num_choices(self) -> dict[str, int]:
        """Length each slot's alpha must have."""
        return {name: len(entries) for name, entries in self.choices.items()}

    def depth_choices(self) -> dict[str, list[int]]:
        """Stages with a depth choice and the depths their depth logits stand for."""
        return {s.name: s.depths for s in self.stages if len(s.depths) > 1}

    def init_alpha(self, requires_grad: bool = True) -> dict[str, Tensor]:
        """Zero logits (uniform choice) for every slot with more than one choice."""
        return {
            name: torch.zeros(n, dtype=torch.float64, requires_grad=requires_grad)
            for name, n in self.num_choices().items()
            if n > 1
        }

    def init_depth(self, requires_grad: bool = True) -> dict[str, Tensor]:
        return {
            name: torch.zeros(len(d), dtype=torch.float64, requires_grad=requires_grad)
            for name, d in self.depth_choices().items()
        }

    def keep_probabilities(self, depth: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        """P(slot is kept): 1 for a stage's first min_layers slots, else P(depth > index)."""
        out: dict[str, Tensor] = {}
        for stage in self.stages:
            logits = (depth or {}).get(stage.name)
            for i, name in enumerate(stage.slots):
                if i < stage.min_layers or logits is None:
                    out[name] = torch.tensor(1.0, dtype=torch.float64)
                else:
                    self._check(stage.name, logits, len(stage.depths), "depth")
                    p = torch.softmax(logits.to(torch.float64), dim=0)
                    out[name] = p[i - stage.min_layers + 1 :].sum()
        return out

    def expected(
        self,
        alpha: Mapping[str, Tensor],
        depth: Mapping[str, Tensor] | None = None,
        of: str = "time",
    ) -> Tensor:
        """E[latency] in µs as a float64 scalar with gradients w.r.t. alpha (and depth);
        ``of="macs"`` gives E[MACs] the same way, ``of="sum"`` the raw E[Σ entries]. When
        the table carries a fitted correction a·Σ + b·blocks + c, E[latency] is
        a·E[Σ] + b·E[blocks] + c (E[blocks] = Σ_slots P(kept)), still differentiable."""
        unknown = sorted(set(alpha) - set(self.choices))
        if unknown:
            raise UsageError(f"alpha for unknown slot {unknown[0]!r}")
        if depth is not None:
            bad = sorted(set(depth) - set(self.depth_choices()))
            if bad:
                raise UsageError(f"depth logits for {bad[0]!r}, which has no depth choice")
        keep = self.keep_probabilities(depth)
        total = torch.zeros((), dtype=torch.float64)
        values = {"time": self.times, "sum": self.times, "macs": self.macs}.get(of)
        if values is None:
            raise UsageError(f"expected value of {of!r}: use 'time', 'sum' or 'macs'")
        for name, times in values.items():
            logits = alpha.get(name)
            if logits is None:
                if len(times) > 1:
                    raise UsageError(f"no alpha for slot {name} ({len(times)} choices)")
                slot_time = times[0]
            else:
                self._check(name, logits, len(times), "alpha")
                slot_time = torch.softmax(logits.to(torch.float64), dim=0) @ times
            total = total + keep[name] * slot_time
        if of == "time" and self.correction is not None:
            from latprof.lut.table import corrected

            blocks = sum(keep.values(), torch.zeros((), dtype=torch.float64))
            total = corrected(self.correction, total, blocks)
        return scale_of(self.meta) * total if of == "time" else total

    @staticmethod
    def _check(name: str, logits: Tensor, n: int, what: str) -> None:
        if logits.shape != (n,):
            raise UsageError(f"{what} for {name}: expected shape ({n},), got {tuple(logits.shape)}")

    def derive(
        self,
        alpha: Mapping[str, Tensor],
        depth: Mapping[str, Tensor] | None = None,
        name: str = "derived",
    ) -> Arch:
        """The most likely arch: argmax choice per slot, argmax depth per stage."""
        choices = []
        for stage in self.stages:
            logits = (depth or {}).get(stage.name)
            keep = (
                len(stage.slots)
                if logits is None
                else stage.depths[int(torch.argmax(logits).item())]
            )
            for i, slot_name in enumerate(stage.slots):
                if i >= keep:
                    choices.append(Choice(slot_name, SKIP))
                    continue
                entries = self.choices[slot_name]
                logit = alpha.get(slot_name)
                e = entries[int(torch.argmax(logit).item()) if logit is not None else 0]
                choices.append(
                    Choice(
                        slot_name, e.op, kernel=e.kernel, mid=e.mid, se=e.se, dilation=e.dilation
                    )
                )
        return Arch(name, self.space.name, tuple(choices))


def latency_model(table: LatencyTable, space: SearchSpace | None = None) -> LatencyModel:
    """A :class:`LatencyModel` of `table` over its space (or `space`)."""
    from latprof.space.builtin import space_of_table

    return LatencyModel(table, space or space_of_table(table.meta))


def expected_latency(
    table: LatencyTable,
    alpha: Mapping[str, Tensor],
    depth: Mapping[str, Tensor] | None = None,
    space: SearchSpace | None = None,
) -> Tensor:
    """E[latency] (µs) = Σ_slots softmax(alpha[slot]) · times[slot], a torch scalar with
    gradients; the table's :func:`latency_model` is cached on it."""
    cached = table.__dict__.get("_latency_model")
    if cached is None or (space is not None and cached.space is not space):
        cached = latency_model(table, space)
        table.__dict__["_latency_model"] = cached
    return cached.expected(alpha, depth)
