"""MODEL spec -> (nn.Module, example inputs): path/model.py[:NAME], zoo:NAME, torchvision:NAME."""

from __future__ import annotations

import importlib.util
import inspect
import operator
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from latprof.errors import ModelLoadError, UsageError, is_out_of_memory, out_of_memory

FACTORY = "build_model"


@dataclass
class LoadedModel:
    """A model ready to profile: the module, its inputs and a display name."""

    name: str
    module: Any  # nn.Module
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def load_model(
    spec: str,
    input_shapes: Sequence[tuple[int, ...]] | None = None,
    batch_size: int | None = None,
) -> LoadedModel:
    """Resolve a MODEL spec; `input_shapes` override the model's own inputs."""
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if spec.startswith("zoo:"):
        from latprof.zoo import get_entry

        entry = get_entry(spec[4:])
        module, shapes, example = entry.build(), [entry.input_shape], None
    elif spec.startswith("torchvision:"):
        module = _from_torchvision(spec[len("torchvision:") :])
        shapes, example = [(1, 3, 224, 224)], None
    else:
        module, shapes, example = _from_file(spec)
    try:
        args, kwargs = _inputs(spec, input_shapes, shapes, example, batch_size)
    except (MemoryError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise out_of_memory(exc, f"making the inputs of {spec}") from exc
        raise
    return LoadedModel(spec, module, args, kwargs)


def _inputs(
    spec: str,
    input_shapes: Sequence[tuple[int, ...]] | None,
    shapes: Any,
    example: Any,
    batch_size: int | None,
) -> tuple[tuple, dict[str, Any]]:
    from latprof.measure.device import random_input

    if input_shapes:
        args: tuple = tuple(random_input(*s) for s in input_shapes)
        kwargs: dict[str, Any] = {}
    elif example is not None:
        args, kwargs = _split_example(example, spec)
    elif shapes is not None:
        args, kwargs = tuple(random_input(*s) for s in file_shapes(shapes, spec)), {}
    else:
        raise UsageError(
            f"no input for {spec}: define input_shape = (1, 3, 224, 224) or example_input "
            "in the model file (profile also takes --input-shape 1,3,224,224)"
        )
    if batch_size is not None:
        args = tuple(_rebatch(a, batch_size) for a in args)
        kwargs = {k: _rebatch(v, batch_size) for k, v in kwargs.items()}
    return args, kwargs


def _rebatch(value: Any, batch: int) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] != batch:
        return value[torch.arange(batch) % value.shape[0]].clone()
    return value


def _split_example(example: Any, spec: str) -> tuple[tuple, dict[str, Any]]:
    import torch

    if isinstance(example, torch.Tensor):
        return (example,), {}
    if isinstance(example, dict):
        return (), dict(example)
    if isinstance(example, (tuple, list)):
        return tuple(example), {}
    raise ModelLoadError(
        f"{spec}: example_input must be a tensor, a tuple of tensors or a dict of keyword "
        f"inputs, got {type(example).__name__}"
    )


def _from_torchvision(name: str) -> Any:
    try:
        import torchvision
    except ImportError:
        raise ModelLoadError(
            f"torchvision:{name} needs torchvision, which is not installed; install a "
            "torchvision that matches your torch (see docs/cli.md, 'torchvision models')"
        ) from None
    try:
        return torchvision.models.get_model(name, weights=None)
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models())[:8])
        raise ModelLoadError(
            f"torchvision has no model {name!r}; e.g. {known}, ... "
            "(torchvision.models.list_models() lists all)"
        ) from None


def _import_file(path: Path) -> ModuleType:
    module_name = f"latprof_user_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ModelLoadError(
            f"{path}:{exc.lineno}: syntax error while importing: {exc.msg}"
        ) from exc
    except BaseException as exc:  # a model file may raise anything, even SystemExit
        raise ModelLoadError(
            f"{_where(exc, path)}: {type(exc).__name__} while importing: {exc}"
        ) from exc
    finally:
        sys.path.remove(str(path.parent))
    return module


def _where(exc: BaseException, path: Path) -> str:
    """'file:line' of the deepest frame of the traceback inside `path`."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def split_file_spec(spec: str) -> tuple[Path, str]:
    """'path/model.py[:NAME]' -> (path, NAME or ''); a ':' not followed by an identifier
    is part of the path."""
    text, sep, name = spec.rpartition(":")
    if not sep or not name.isidentifier():
        text, name = spec, ""
    return Path(text), name


def _from_file(spec: str) -> tuple[Any, Any, Any]:
    """(model, the file's input_shape as written, its example_input)."""
    path, name = split_file_spec(spec)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        exists = False
    if not exists:
        raise ModelLoadError(
            f"model file {path} does not exist; give a path to a .py file, zoo:NAME "
            "(see `latprof zoo`) or torchvision:NAME"
        )
    if path.is_dir() or path.suffix != ".py":
        raise ModelLoadError(
            f"{path} is not a Python file; MODEL must be a .py file, zoo:NAME or torchvision:NAME"
        )
    module = _import_file(path)
    model = _pick_model(module, path, name)
    shapes = getattr(module, "input_shape", None)
    return model, shapes, getattr(module, "example_input", None)


def file_shapes(value: Any, where: str) -> list[tuple[int, ...]]:
    """A model file's `input_shape`: one shape (a tuple of positive ints) or a list of them;
    ModelLoadError otherwise."""

    def dim(d: Any) -> int | None:
        if isinstance(d, bool):
            return None
        try:
            n = operator.index(d)  # int, numpy and torch integers
        except TypeError:
            return None
        return n if n > 0 else None

    def shape(v: Any) -> tuple[int, ...] | None:
        dims = [dim(d) for d in v] if isinstance(v, (tuple, list)) and v else [None]
        return tuple(d for d in dims if d is not None) if None not in dims else None

    one = shape(value)
    if one is not None:
        return [one]
    many = [shape(v) for v in value] if isinstance(value, (tuple, list)) and value else [None]
    if all(s is not None for s in many):
        return [s for s in many if s is not None]
    raise ModelLoadError(
        f"{where}: input_shape must be a tuple of positive ints, e.g. (1, 3, 224, 224), or a "
        f"list of them for several inputs; got {value!r}"
    )


def _pick_model(module: ModuleType, path: Path, name: str) -> Any:
    from torch import nn

    if name:
        if not hasattr(module, name):
            raise ModelLoadError(f"{path} has no attribute {name!r}; {_candidates(module, path)}")
        return _instantiate(getattr(module, name), f"{path}:{name}", path)
    if hasattr(module, FACTORY):
        return _instantiate(getattr(module, FACTORY), f"{path}:{FACTORY}", path)
    instances = {
        k: v for k, v in vars(module).items() if isinstance(v, nn.Module) and not k.startswith("_")
    }
    if "model" in instances:
        return instances["model"]
    if len(instances) == 1:
        return next(iter(instances.values()))
    classes = _local_classes(module)
    if not instances and len(classes) == 1:
        return _instantiate(next(iter(classes.values())), f"{path}:{next(iter(classes))}", path)
    if not instances and not classes:
        raise ModelLoadError(
            f"no model found in {path}: define build_model() returning an nn.Module, a "
            "module-level nn.Module instance, or name one with MODEL.py:NAME"
        )
    raise ModelLoadError(f"{path} is ambiguous: {_candidates(module, path)}")


def _local_classes(module: ModuleType) -> dict[str, type]:
    from torch import nn

    return {
        k: v
        for k, v in vars(module).items()
        if inspect.isclass(v) and issubclass(v, nn.Module) and v.__module__ == module.__name__
    }


def _candidates(module: ModuleType, path: Path) -> str:
    from torch import nn

    found = [
        f"{k} (instance)"
        for k, v in vars(module).items()
        if isinstance(v, nn.Module) and not k.startswith("_")
    ]
    found += [f"{k} (class)" for k in _local_classes(module)]
    found += [
        f"{k} (function)"
        for k, v in vars(module).items()
        if inspect.isfunction(v) and v.__module__ == module.__name__
    ]
    listed = ", ".join(found) if found else "nothing usable"
    return f"found {listed}; pick one with {path}:NAME"


def _instantiate(obj: Any, label: str, path: Path) -> Any:
    from torch import nn

    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise ModelLoadError(f"{label} is a {type(obj).__name__}, not an nn.Module or a factory")
    try:
        result = obj()
    except TypeError as exc:
        if "required positional argument" in str(exc) or "missing" in str(exc):
            raise ModelLoadError(
                f"{label} needs arguments ({exc}); latprof calls factories with none — "
                "wrap it in a zero-argument build_model()"
            ) from exc
        raise ModelLoadError(f"{_where(exc, path)}: {label}() raised TypeError: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{_where(exc, path)}: {label}() raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, nn.Module):
        raise ModelLoadError(f"{label}() returned {type(result).__name__}, not an nn.Module")
    return result
