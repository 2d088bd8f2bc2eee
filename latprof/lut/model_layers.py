"""Layer-level jobs: every distinct leaf layer (class, hyper-parameters, input shape) of models."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latprof.loading import load_model
from latprof.lut.jobs import Job, layer_job
from latprof.measure.device import eval_mode
from latprof.measure.hooks import find_leaves, hooked

Shapes = list[tuple[tuple[int, ...], torch.dtype]]


def leaf_calls(model: nn.Module, args: tuple, kwargs: dict) -> list[tuple[nn.Module, Shapes]]:
    """(leaf, tensor input shapes) for every leaf call of one forward pass."""
    calls: list[tuple[nn.Module, Shapes]] = []

    def pre(module: nn.Module, a: Any, k: Any) -> None:
        tensors = [t for t in (*a, *k.values()) if isinstance(t, torch.Tensor)]
        calls.append((module, [(tuple(t.shape), t.dtype) for t in tensors]))

    def post(*_: Any) -> None:
        pass

    with (
        eval_mode(model),
        hooked([(m, pre, post) for _, m in find_leaves(model)]),
        torch.inference_mode(),
    ):
        model(*args, **kwargs)
    return calls


def model_jobs(specs: list[str], batch: int, dtype: str) -> tuple[list[Job], dict[str, list[str]]]:
    """Distinct leaf-layer jobs across models, and each model's keys in call order."""
    jobs: dict[str, Job] = {}
    per_model: dict[str, list[str]] = {}
    for spec in specs:
        loaded = load_model(spec, batch_size=batch)
        keys = []
        for module, shapes in leaf_calls(loaded.module, loaded.args, loaded.kwargs):
            job = layer_job(module, shapes, batch, dtype)
            jobs.setdefault(job.key, job)
            keys.append(job.key)
        per_model[spec] = keys
    return list(jobs.values()), per_model
