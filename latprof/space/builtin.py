"""Built-in search spaces (mbv2, tfnas, uboost) and the registry of spaces by name.

Every space is a chain of slots from the input image to the classifier: fixed parts (stem,
fixed blocks, head conv, ``pool_fc``) are slots with one candidate, so a whole network's
latency is a sum of entries. See ``docs/spaces.md`` for each space and the choices made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from latprof.errors import SpaceError
from latprof.space.model import Candidate, SearchSpace
from latprof.space.stages import Stage, build_space

__all__ = [
    "BUILTIN",
    "DEFAULT_WIDTH_STEP",
    "DEFAULT_WIDTH_STEPS",
    "default_width_step",
    "describe",
    "get_space",
    "mbv2",
    "tfnas",
    "uboost",
]

DEFAULT_SPACE = "mbv2"
"""The space build-lut measures without --space or --models (TF-NAS's MobileNetV2 space)."""
DEFAULT_WIDTH_STEP = 8
"""Mid-width step (channels) for spaces without their own entry in DEFAULT_WIDTH_STEPS."""


# --- candidate shorthands ---------------------------------------------------------------


def _conv(k: int) -> Candidate:
    return Candidate("conv", kernel=k)


def _mb(k: int, lo: float, hi: float, se: str = "none") -> Candidate:
    return Candidate("mbinvres", kernel=k, expansion=(lo, hi), se=se)


_POOL_FC = Candidate("pool_fc")


# --- mbv2: seed 004, Table 5 --------------------------------------------------------------

MBV2_OPS = (_mb(3, 2, 4), _mb(5, 2, 4), _mb(3, 4, 8), _mb(5, 4, 8))
"""Table 5 (right): k3_e3, k5_e3 (expansion [2, 4]), k3_e6, k5_e6 ([4, 8]); no SE."""


def mbv2() -> SearchSpace:
    """TF-NAS's MobileNetV2-based space (seed 004, Table 5), ImageNet 224x224."""
    a = "relu6"
    stages = [
        Stage("stem", 32, (_conv(3),), stride=2, act=a),  # stage 1
        Stage("stage2", 16, (_mb(3, 1, 1),), act=a),  # fixed MBInvRes k3 e1
        Stage("stage3", 24, MBV2_OPS, stride=2, layers=(1, 2), act=a),
        Stage("stage4", 32, MBV2_OPS, stride=2, layers=(1, 3), act=a),
        Stage("stage5", 64, MBV2_OPS, stride=2, layers=(1, 4), act=a),
        Stage("stage6", 96, MBV2_OPS, stride=1, layers=(1, 4), act=a),
        Stage("stage7", 160, MBV2_OPS, stride=2, layers=(1, 4), act=a),
        Stage("stage8", 320, MBV2_OPS, stride=1, act=a),
        Stage("head", 1280, (_conv(1),), act=a),  # stage 9
        Stage("pool_fc", 1000, (_POOL_FC,), act="none"),  # stages 10 + 11
    ]
    notes = (
        "seed 004 Table 5: stages 1-2 and 9-11 fixed, 3-8 searched; strides from the Input "
        "column (112-56-28-14-14-7-7); layers past the first of a stage are skippable",
        "k3_e3 and k3_e6 (k5 likewise) share the width 4 x c_in: that entry is measured once",
    )
    return build_space(
        "mbv2",
        "TF-NAS MobileNetV2-based space (seed 004 Table 5): MBInvRes k3/k5, e [2,4] or [4,8], "
        "ReLU6, ImageNet 224",
        (3, 224, 224),
        stages,
        notes,
    )


# --- tfnas: seed 004, Tables 9-18 ---------------------------------------------------------

TFNAS_OPS = (
    _mb(3, 2, 4),
    _mb(3, 4, 8),
    _mb(5, 2, 4),
    _mb(5, 4, 8),
    _mb(3, 2, 4, "c_in"),
    _mb(3, 4, 8, "2c_in"),
    _mb(5, 2, 4, "c_in"),
    _mb(5, 4, 8, "2c_in"),
)
"""MBInvRes k3/k5 x e3 ([2, 4]) / e6 ([4, 8]) x without / with SE; SE width c_in for e3 ops
and 2 x c_in for e6 ops, which is what every e_se entry of Tables 9-18 shows."""


def tfnas() -> SearchSpace:
    """The TF-NAS macro space as seed 004's Tables 9-18 (TF-NAS-A..D, -woSE, CPU-A/B) show it."""
    ops = TFNAS_OPS
    stages = [
        Stage("stem", 32, (_conv(3),), stride=2, act="relu"),
        # fixed MBInvRes k3 32 -> 16, mid 32: SE 8 (= mid / 4) in the SE nets, none in -woSE
        Stage("stage2", 16, (_mb(3, 1, 1, "quarter"), _mb(3, 1, 1)), act="relu"),
        Stage("stage3", 24, ops, stride=2, layers=(1, 2), act="relu"),
        Stage("stage4", 40, ops, stride=2, layers=(1, 3), act="swish"),
        Stage("stage5", 80, ops, stride=2, layers=(1, 4), act="swish"),
        Stage("stage6", 112, ops, stride=1, layers=(1, 4), act="swish"),
        Stage("stage7", 192, ops, stride=2, layers=(1, 4), act="swish"),
        Stage("stage8", 320, ops, stride=1, act="swish"),
        Stage("head", 1280, (_conv(1),), act="swish"),
        Stage("pool_fc", 1000, (_POOL_FC,), act="none"),
    ]
    notes = (
        "layer counts are the most any of Tables 9-18 uses per stage (2, 3, 4, 4, 4, 1); "
        "layers past the first are skippable (Table 11 has 1 layer in stage 3, Table 12 in "
        "stage 7, Table 18 in stage 6)",
        "mid widths in Tables 9-18 all lie in [2, 8] x c_in: e3 ops cover [2, 4], e6 ops [4, 8]",
        "SE width: c_in for e3 ops, 2 x c_in for e6 ops (SE rules 'c_in' and '2c_in')",
        "stage 2 has two candidates (SE 8 and no SE) so that the -woSE nets are covered",
        "ReLU up to stage 3 (24 channels), Swish from stage 4 on, as in the tables",
    )
    return build_space(
        "tfnas",
        "TF-NAS macro space (seed 004 Tables 9-18): MBInvRes k3/k5, e [2,4] or [4,8], with or "
        "without SE, ReLU then Swish, ImageNet 224",
        (3, 224, 224),
        stages,
        notes,
    )


# --- uboost: seed 002, Table 2 ------------------------------------------------------------

UBOOST_OPS = (
    Candidate("conv", kernel=3),
    Candidate("conv", kernel=5),
    Candidate("sep_conv", kernel=3),
    Candidate("sep_conv", kernel=5),
    Candidate("dil_conv", kernel=3, dilation=2),
    Candidate("dil_conv", kernel=5, dilation=2),
    Candidate("identity"),
    Candidate("zero"),
)
"""Table 2: conv2d 3x3/5x5, dws 3x3/5x5, dil 3x3/5x5 (dilation 2), identity, zero; ReLU."""


def uboost() -> SearchSpace:
    """U-Boost's micro space (seed 002, Table 2) on CIFAR-10 (32x32), DARTS-like layout."""
    ops = UBOOST_OPS
    stages = [
        Stage("stem", 16, (_conv(3),), act="relu"),
        Stage("cells1", 16, ops, layers=(2, 2), act="relu"),
        Stage("cells2", 32, ops, stride=2, layers=(3, 3), act="relu"),  # .0 = reduction
        Stage("cells3", 64, ops, stride=2, layers=(3, 3), act="relu"),  # .0 = reduction
        Stage("pool_fc", 10, (_POOL_FC,), act="none"),
    ]
    notes = (
        "seed 002 gives the ops (Table 2), ReLU only, CIFAR-10 and an FC classifier, not the "
        "macro layout: the DARTS search network is used (C = 16; 8 cells, reductions at 1/3 "
        "and 2/3 doubling channels: 32x32x16, 16x16x32, 8x8x64)",
        "a slot is one edge of a cell: every edge of a normal cell has the slot's shape, the "
        "first slot of cells2/cells3 is the stride-2 edge of a reduction cell",
        "identity at stride 2 or with a channel change is a 1x1 conv projection (blocks.identity)",
        "depth is not searched (identity and zero do that inside a cell): no skippable slots",
    )
    return build_space(
        "uboost",
        "U-Boost micro space (seed 002 Table 2): conv, dws and dilated 3x3/5x5, identity, zero; "
        "CIFAR-10 32x32, C = 16/32/64",
        (3, 32, 32),
        stages,
        notes,
    )


# --- registry -------------------------------------------------------------------------------

BUILTIN: dict[str, Callable[[], SearchSpace]] = {"mbv2": mbv2, "tfnas": tfnas, "uboost": uboost}
"""Built-in spaces by name; each value builds the space when called."""

DEFAULT_WIDTH_STEPS: dict[str, int] = {"mbv2": 8, "tfnas": 8, "uboost": 8}
"""Mid-width step (channels) a lookup table uses by default for each built-in space. uboost has
no width search, so its step changes nothing."""


def default_width_step(name: str) -> int:
    """The default width step for a built-in name, else DEFAULT_WIDTH_STEP."""
    return DEFAULT_WIDTH_STEPS.get(name, DEFAULT_WIDTH_STEP)


def get_space(name_or_path: str | Path) -> SearchSpace:
    """A built-in space by name, or a user space from a ``.toml`` file; validated."""
    text = str(name_or_path)
    if text in BUILTIN:
        return BUILTIN[text]().validate()
    if isinstance(name_or_path, Path) or text.endswith(".toml") or _is_file(text):
        from latprof.space.toml_file import load_toml_space

        return load_toml_space(text)
    known = ", ".join(BUILTIN)
    raise SpaceError(f"unknown space {text!r}; known: {known} (or a path to a .toml file)")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long or with a NUL is no file
        return False


def space_of_table(meta: dict[str, Any]) -> SearchSpace:
    """The search space a lookup table (by its metadata) was built for."""
    if meta.get("source") != "space":
        raise SpaceError("this table was built from models (--models), not a search space")
    return get_space(meta.get("space_file") or meta["space"])


def describe() -> list[dict[str, Any]]:
    """One row per built-in space, for ``latprof spaces``."""
    rows = []
    for name, factory in BUILTIN.items():
        space = factory()
        step = default_width_step(name)
        rows.append(
            {
                "name": name,
                "slots": len(space.slots),
                "entries_step1": len(space.entries(1)),
                "width_step": step,
                "entries_default": len(space.entries(step)),
                "description": space.description,
            }
        )
    return rows
