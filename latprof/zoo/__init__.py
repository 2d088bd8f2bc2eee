"""Built-in models (``zoo:NAME``) and the seed papers' candidate blocks.

Importing this package does not import torch: entries name their factory as
``"module:function"`` and :meth:`ZooEntry.build` imports it on demand, so listing the zoo
is instant. The blocks live in :mod:`latprof.blocks`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from latprof.errors import ModelLoadError
from latprof.space.paper_archs import PAPER_ARCHS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ZOO", "ZooEntry", "get_entry"]


@dataclass(frozen=True)
class ZooEntry:
    """A built-in model: its name, default input (batch included) and lazy factory."""

    name: str
    input_shape: tuple[int, ...]
    description: str
    factory_path: str
    arg: str = ""  # passed to the factory when set (one factory, several models)

    def build(self) -> nn.Module:
        """Import ``factory_path`` (``"package.module:function"``) and call it (with ``arg``
        when set)."""
        module_name, _, attr = self.factory_path.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelLoadError(
                f"zoo model '{self.name}': cannot import {self.factory_path} ({exc})"
            ) from exc
        return factory(self.arg) if self.arg else factory()


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            name="cnn",
            input_shape=(1, 3, 32, 32),
            description="seed-000 CNN: conv-BN-ReLU stages, max/avg pooling, 3 linear layers",
            factory_path="latprof.zoo.cnn:build",
        ),
        ZooEntry(
            name="dscnn",
            input_shape=(1, 3, 64, 64),
            description="seed-000 DSCNN: MobileNetV2-like, stride-2 stem, 9 MBInvRes ReLU blocks",
            factory_path="latprof.zoo.dscnn:build",
        ),
        ZooEntry(
            name="vit",
            input_shape=(1, 3, 32, 32),
            description="torchvision-like ViT: 4x4 patches, 4 fused-MHA encoder blocks, D=64",
            factory_path="latprof.zoo.vit:build",
        ),
        ZooEntry(
            name="swin",
            input_shape=(1, 3, 64, 64),
            description="torchvision-like Swin v1: 2 stages, functional shifted-window attention",
            factory_path="latprof.zoo.swin:build",
        ),
        ZooEntry(
            name="densenet",
            input_shape=(1, 3, 32, 32),
            description="torchvision-like DenseNet-BC: growth 8, 2 dense blocks of 2 layers",
            factory_path="latprof.zoo.densenet:build",
        ),
    )
}

for _paper in PAPER_ARCHS.values():
    ZOO[_paper.name] = ZooEntry(
        name=_paper.name,
        input_shape=(1, 3, 224, 224),
        description=f"{_paper.title} (seed 004 Table {_paper.table}), a path through the "
        f"{_paper.space} space",
        factory_path="latprof.zoo.tfnas:build",
        arg=_paper.name,
    )


def get_entry(name: str) -> ZooEntry:
    """Return the zoo entry called ``name``; ``ModelLoadError`` listing known names if none."""
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(sorted(ZOO))
        raise ModelLoadError(f"unknown zoo model {name!r}; known: {known}") from None


def describe() -> list[dict[str, Any]]:
    """One row per zoo model, for ``latprof zoo``."""
    return [
        {
            "name": f"zoo:{e.name}",
            "input_shape": ",".join(map(str, e.input_shape)),
            "description": e.description,
        }
        for e in ZOO.values()
    ]
