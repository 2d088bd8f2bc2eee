"""``zoo:tfnas-*``: the TF-NAS architectures of seed 004 (Tables 9-20) as paths through the
built-in ``tfnas`` / ``mbv2`` spaces, built from the same blocks the lookup tables measure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from latprof.errors import ModelLoadError

if TYPE_CHECKING:
    from torch import nn

    from latprof.lut.arch import Arch

INPUT_SHAPE: tuple[int, ...] = (1, 3, 224, 224)


def paper_arch(name: str) -> Arch:
    """The arch of a paper table (``tfnas-a``, ``tfnas-mbv2-b``, ...)."""
    from latprof.lut.arch import from_layers
    from latprof.lut.spaces import get_space
    from latprof.zoo.tfnas_archs import PAPER_ARCHS

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


def build(name: str) -> nn.Module:
    """The network of a paper table, seeded weights, eval mode."""
    from latprof.lut.arch import build_module

    return build_module(paper_arch(name))
