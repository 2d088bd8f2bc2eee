"""Architectures: one chosen op per slot of a search space, as data (JSON/TOML/Python).

An :class:`Arch` names its space and lists ``Choice`` objects in slot order; a skippable slot
may be chosen as ``skip`` or left out. :func:`resolve` checks every choice against the
slot's candidates and turns the arch into the lookup-table entries it is the sum of.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from latprof.errors import ModelLoadError, SpaceError, UsageError
from latprof.space.model import SE_RULES, Candidate, Entry, SearchSpace, Slot
from latprof.space.ops import OP_KINDS

if TYPE_CHECKING:
    from torch import nn

SKIP = "skip"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Choice:
    """The op chosen for one slot; ``op == "skip"`` leaves a skippable slot out."""

    slot: str
    op: str
    kernel: int = 1
    mid: int = 0
    se: int = 0
    dilation: int = 1
    act: str = ""  # empty: the candidate's (or the slot's) activation

    def label(self) -> str:
        if self.op == SKIP:
            return SKIP
        parts = [self.op, f"k{self.kernel}"]
        if self.mid:
            parts.append(f"m{self.mid}")
        if self.se:
            parts.append(f"se{self.se}")
        if self.dilation != 1:
            parts.append(f"d{self.dilation}")
        return "_".join(parts)


@dataclass(frozen=True)
class Arch:
    """A path through a search space: ``space`` is a built-in name or a TOML path."""

    name: str
    space: str
    choices: tuple[Choice, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(Choice)}
        blocks = [
            {k: v for k, v in asdict(c).items() if k in ("slot", "op") or v != defaults[k]}
            for c in self.choices
        ]
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "space": self.space,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        out["blocks"] = blocks
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_toml(self) -> str:
        d = self.to_dict()
        lines = [f"format_version = {FORMAT_VERSION}", f"name = {json.dumps(d['name'])}"]
        lines.append(f"space = {json.dumps(d['space'])}")
        if self.notes:
            lines.append(f"notes = {json.dumps(list(self.notes))}")
        for block in d["blocks"]:
            lines += ["", "[[blocks]]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in block.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = "architecture") -> Arch:
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a table/object with name, space and blocks")
        for key in ("space", "blocks"):
            if key not in data:
                raise UsageError(f"{where}: missing field {key!r}")
        if not isinstance(data["blocks"], list) or not data["blocks"]:
            raise UsageError(f"{where}: 'blocks' must be a non-empty list")
        known = {f.name: f.type for f in fields(Choice)}
        choices = []
        for i, block in enumerate(data["blocks"]):
            at = f"{where}, block {i}"
            if not isinstance(block, dict):
                raise UsageError(f"{at}: expected an object like {{slot: ..., op: ...}}")
            unknown = sorted(set(block) - set(known))
            if unknown:
                raise UsageError(f"{at}: unknown field {unknown[0]!r}; known: {', '.join(known)}")
            for key in ("slot", "op"):
                if not isinstance(block.get(key), str):
                    raise UsageError(f"{at}: field {key!r} must be a string")
            for key in ("kernel", "mid", "se", "dilation"):
                if key in block and (
                    not isinstance(block[key], int) or isinstance(block[key], bool)
                ):
                    raise UsageError(f"{at} ({block['slot']}): {key} must be an integer")
            choices.append(Choice(**block))
        notes = data.get("notes", [])
        return cls(
            name=str(data.get("name", "arch")),
            space=str(data["space"]),
            choices=tuple(choices),
            notes=tuple(str(n) for n in notes) if isinstance(notes, list) else (str(notes),),
        )


@dataclass(frozen=True)
class Block:
    """A resolved slot: its entry (None when skipped) and the candidate it came from."""

    slot: Slot
    entry: Entry | None
    candidate: Candidate | None


# ---------------------------------------------------------------------- resolve


def _mid_range(cand: Candidate, c_in: int) -> tuple[int, int]:
    mids = cand.mids(c_in, 1)
    return mids[0], mids[-1]


def _why_not(choice: Choice, cand: Candidate, slot: Slot) -> str | None:
    """None when `choice` is an instance of `cand` at `slot`, else the first reason not."""
    if choice.op != cand.op:
        return "op"
    if choice.kernel != cand.kernel:
        return f"kernel {cand.kernel}"
    if choice.dilation != cand.dilation:
        return f"dilation {cand.dilation}"
    act = cand.act or slot.act
    if choice.act and choice.act != act:
        return f"act {act}"
    mid = 0
    if OP_KINDS.get(cand.op):
        lo, hi = _mid_range(cand, slot.c_in)
        if not lo <= choice.mid <= hi:
            return f"mid in [{lo}, {hi}]"
        mid = choice.mid
    elif choice.mid:
        return "no mid width"
    se = SE_RULES[cand.se](slot.c_in, mid or slot.c_in)
    if choice.se != se:
        return f"se {se}"
    return None


def _entry(choice: Choice, cand: Candidate, slot: Slot) -> Entry:
    return Entry(
        op=cand.op,
        kernel=cand.kernel,
        stride=slot.stride,
        mid=choice.mid if OP_KINDS.get(cand.op) else 0,
        se=choice.se,
        act=cand.act or slot.act,
        dilation=cand.dilation,
        c_in=slot.c_in,
        c_out=slot.c_out,
        h=slot.h,
        w=slot.w,
    )


def resolve_choice(choice: Choice, slot: Slot, where: str) -> Block:
    """The block for one choice; SpaceError saying why it does not fit the slot."""
    if choice.op == SKIP:
        if not slot.skippable:
            raise SpaceError(f"{where}: slot {slot.name} can't be skipped (its stage needs it)")
        return Block(slot, None, None)
    reasons = []
    for cand in slot.candidates:
        why = _why_not(choice, cand, slot)
        if why is None:
            return Block(slot, _entry(choice, cand, slot), cand)
        if why != "op":
            reasons.append(f"{cand.label()} needs {why}")
    if not reasons:
        ops = sorted({c.op for c in slot.candidates})
        raise SpaceError(
            f"{where}: slot {slot.name} has no op {choice.op!r}; its ops: {', '.join(ops)}"
        )
    raise SpaceError(
        f"{where}: {choice.label()} does not fit slot {slot.name} "
        f"({slot.c_in}->{slot.c_out}, {slot.h}x{slot.w}, stride {slot.stride}): "
        + "; ".join(reasons)
    )


def resolve(arch: Arch, space: SearchSpace) -> list[Block]:
    """One block per slot of `space`, in order; raises SpaceError naming the slot at fault."""
    where = f"arch {arch.name!r}"
    by_name = {s.name: i for i, s in enumerate(space.slots)}
    chosen: dict[str, Choice] = {}
    last = -1
    for choice in arch.choices:
        if choice.slot not in by_name:
            raise SpaceError(
                f"{where}: space {space.name!r} has no slot {choice.slot!r} "
                f"(slots: {space.slots[0].name} ... {space.slots[-1].name})"
            )
        if choice.slot in chosen:
            raise SpaceError(f"{where}: slot {choice.slot} is chosen twice")
        if by_name[choice.slot] < last:
            raise SpaceError(f"{where}: slot {choice.slot} is out of order")
        last = by_name[choice.slot]
        chosen[choice.slot] = choice
    blocks = []
    for slot in space.slots:
        choice = chosen.get(slot.name)
        if choice is None:
            if not slot.skippable:
                raise SpaceError(f"{where}: no op chosen for slot {slot.name}")
            choice = Choice(slot.name, SKIP)
        blocks.append(resolve_choice(choice, slot, where))
    return blocks


def block_rows(blocks: list[Block]) -> list[dict[str, Any]]:
    """One row per block, for `latprof arch`."""
    return [
        {
            "slot": b.slot.name,
            "op": "skip" if b.entry is None else b.entry.op,
            "kernel": b.entry.kernel if b.entry else None,
            "mid": b.entry.mid if b.entry else None,
            "se": b.entry.se if b.entry else None,
            "act": b.entry.act if b.entry else None,
            "c_in": b.slot.c_in,
            "c_out": b.slot.c_out,
            "input": f"{b.slot.h}x{b.slot.w}",
            "stride": b.slot.stride,
        }
        for b in blocks
    ]


def entries(arch: Arch, space: SearchSpace) -> list[tuple[str, Entry]]:
    """(slot name, entry) for every slot that is not skipped."""
    return [(b.slot.name, b.entry) for b in resolve(arch, space) if b.entry is not None]


def space_of(arch: Arch, space: SearchSpace | None = None) -> SearchSpace:
    """The arch's space: `space` if given (same name, or same TOML space), else looked up."""
    from latprof.space.builtin import get_space

    if space is None:
        return get_space(arch.space)
    if arch.space in (space.name, ""):
        return space
    if arch.space.endswith(".toml") and get_space(arch.space).hash() == space.hash():
        return space
    raise SpaceError(f"arch {arch.name!r} is for space {arch.space!r}, not {space.name!r}")


# ---------------------------------------------------------------------- build


def build_module(arch: Arch, space: SearchSpace | None = None, seed: int = 0) -> nn.Module:
    """The arch as an ``nn.Sequential`` of the very blocks the lookup table measures,
    one child per non-skipped slot (named after the slot, ``.`` -> ``_``), in eval mode."""
    from torch import nn

    from latprof.blocks import seeded

    blocks = entries(arch, space_of(arch, space))

    def make() -> nn.Module:
        net = nn.Sequential()
        for slot, entry in blocks:
            net.add_module(slot.replace(".", "_"), entry.build())
        return net

    return seeded(make, seed).eval()


def input_shape(arch: Arch, space: SearchSpace | None, batch: int) -> tuple[int, ...]:
    first = space_of(arch, space).slots[0]
    return (batch, first.c_in, first.h, first.w)


# ---------------------------------------------------------------------- from layer rows


def from_layers(
    name: str, space: SearchSpace, layers: Sequence[Any], notes: Sequence[str] = ()
) -> Arch:
    """An arch from a paper-style layer list (objects with op, kernel, c_in, mid, se, c_out,
    stride): each layer takes the next slot with its c_in, c_out and stride; skippable slots
    passed over are skipped."""
    choices: list[Choice] = []
    i = 0
    for n, layer in enumerate(layers):
        while i < len(space.slots):
            slot = space.slots[i]
            fits = (slot.c_in, slot.c_out, slot.stride) == (layer.c_in, layer.c_out, layer.stride)
            if fits:
                break
            if not slot.skippable:
                raise SpaceError(
                    f"arch {name!r}, layer {n} ({layer.c_in}->{layer.c_out} stride "
                    f"{layer.stride}) does not fit slot {slot.name} ({slot.c_in}->"
                    f"{slot.c_out} stride {slot.stride})"
                )
            choices.append(Choice(slot.name, SKIP))
            i += 1
        else:
            raise SpaceError(f"arch {name!r}: layer {n} is past the last slot of {space.name}")
        choices.append(
            Choice(
                space.slots[i].name,
                layer.op,
                kernel=layer.kernel,
                mid=layer.mid,
                se=layer.se,
            )
        )
        i += 1
    for slot in space.slots[i:]:
        if slot.skippable:
            choices.append(Choice(slot.name, SKIP))
        elif all(c.op == "pool_fc" for c in slot.candidates):
            choices.append(Choice(slot.name, "pool_fc"))
        else:
            raise SpaceError(f"arch {name!r}: no layer for slot {slot.name}")
    arch = Arch(name, space.name, tuple(choices), tuple(notes))
    resolve(arch, space)
    return arch


# ---------------------------------------------------------------------- sampling


def sample(space: SearchSpace, rng: random.Random, name: str = "sample") -> Arch:
    """A uniformly random arch: per slot a random candidate and mid width, and for each
    stage a random depth (skippable slots are skipped from the end of their stage)."""
    choices = []
    depth: dict[str, int] = {}
    for slot in space.slots:
        stage = slot.name.rsplit(".", 1)[0]
        if stage not in depth:
            group = [s for s in space.slots if s.name.rsplit(".", 1)[0] == stage]
            lo = sum(not s.skippable for s in group)
            depth[stage] = rng.randint(lo, len(group))
        index = int(slot.name.rsplit(".", 1)[1]) if "." in slot.name else 0
        if slot.skippable and index >= depth[stage]:
            choices.append(Choice(slot.name, SKIP))
            continue
        cand = rng.choice(slot.candidates)
        mid = 0
        if OP_KINDS.get(cand.op):
            lo_mid, hi_mid = _mid_range(cand, slot.c_in)
            mid = rng.randint(lo_mid, hi_mid)
        choices.append(
            Choice(
                slot.name,
                cand.op,
                kernel=cand.kernel,
                mid=mid,
                se=SE_RULES[cand.se](slot.c_in, mid or slot.c_in),
                dilation=cand.dilation,
            )
        )
    return Arch(name, space.name, tuple(choices))


# ---------------------------------------------------------------------- files


def sample_archs(space: SearchSpace, samples: int, seed: int) -> list[Arch]:
    """`samples` random archs named sample-SEED-I, reproducible from `seed`."""
    rng = random.Random(seed)
    return [sample(space, rng, f"sample-{seed}-{i}") for i in range(samples)]


def load_file(path: Path) -> Arch:
    """An arch from a .json or .toml file."""
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: invalid TOML: {exc}") from None
    else:
        raise UsageError(f"{path}: an architecture file is .json or .toml")
    arch = Arch.from_dict(data, where=str(path))
    beside = path.parent / arch.space
    if arch.space.endswith(".toml") and not _exists(Path(arch.space)) and _exists(beside):
        arch = replace(arch, space=str(beside))  # a relative space path: next to the file
    return arch


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long or with a NUL is no file
        return False


def is_arch_spec(spec: str) -> bool:
    """True for `zoo:NAME` of a paper arch and for .json/.toml files; False for models."""
    if spec.startswith("zoo:"):
        from latprof.space.paper_archs import PAPER_ARCHS

        return spec[4:] in PAPER_ARCHS
    return Path(spec).suffix in (".json", ".toml")


def paper_arch(name: str) -> Arch:
    """The arch of a TF-NAS paper table (``tfnas-a``, ``tfnas-mbv2-b``, ...)."""
    from latprof.space.builtin import get_space
    from latprof.space.paper_archs import PAPER_ARCHS

    paper = PAPER_ARCHS.get(name)
    if paper is None:
        raise ModelLoadError(
            f"unknown TF-NAS architecture {name!r}; known: {', '.join(PAPER_ARCHS)}"
        )
    note = (
        f"{paper.title}, seed 004 Table {paper.table}; paper: {paper.flops_m} M FLOPs, "
        f"top-1 {paper.top1} %"
    )
    return from_layers(name, get_space(paper.space), paper.layers, notes=(note,))


def load(spec: str) -> Arch:
    """An arch from `zoo:NAME` (a seed paper arch) or a JSON/TOML file."""
    if spec.startswith("zoo:"):
        return paper_arch(spec[4:])
    return load_file(Path(spec))
