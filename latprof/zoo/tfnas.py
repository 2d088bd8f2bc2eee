"""``zoo:tfnas-*``: the TF-NAS architectures of seed 004 (Tables 9-20) as paths through the
built-in ``tfnas`` / ``mbv2`` spaces, built from the same blocks the lookup tables measure."""

from __future__ import annotations

from torch import nn

from latprof.space.arch import build_module, paper_arch

INPUT_SHAPE: tuple[int, ...] = (1, 3, 224, 224)


def build(name: str) -> nn.Module:
    """The network of a paper table, seeded weights, eval mode."""
    return build_module(paper_arch(name))
