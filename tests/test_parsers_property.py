"""Property tests: every parser of user input returns a result or raises a LatprofError (a
one-line message and an exit code), never another exception, whatever the input."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latprof.config import parse_device, parse_shape
from latprof.errors import LatprofError
from latprof.loading import load_model, split_file_spec
from latprof.lut.jobs import parse_shard
from latprof.space import arch as archmod
from latprof.space.arch import Arch
from latprof.space.toml_file import loads_toml_space, space_from_dict

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SPACES = Path(__file__).parent / "spaces"
TINY_SPACE = tomllib.loads((SPACES / "tiny.toml").read_text())
TINY_ARCH = json.loads((SPACES / "tiny-arch.json").read_text())
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON/TOML-like values: what a parsed file can hold
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["conv_k3", "mbinvres", "pool_fc", "c_in", "none", "relu", "stem", "body"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def strings(data: Any) -> list[str]:
    """Every string inside `data` (keys too)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in (*strings(k), *strings(v))]
    if isinstance(data, (list, tuple)):
        return [s for v in data for s in strings(v)]
    return []


def line_breaks(data: Any) -> int:
    return sum(len(f"x{s}x".splitlines()) - 1 for s in strings(data))


def returns_or_latprof_error(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), or None where it raised a LatprofError whose message is one line (unless
    it quotes line breaks of the input itself)."""
    try:
        return fn(*args)
    except LatprofError as exc:
        message = str(exc).strip()
        assert message
        assert len(message.splitlines()) <= 1 + line_breaks(list(args)), repr(message)
        return None


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys/indexes) to a value inside nested dicts and lists."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> Any:
    """A valid document with a few values replaced by anything, or deleted."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(data)))
        if not where:
            return draw(values)
        parent = data
        for step in where[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(values)
        if not paths(data)[1:]:
            break
    return data


# ------------------------------------------------------------------------ flags


@FAST
@given(st.text() | st.from_regex(r"\s*-?\d{0,12}(\s*[,x×]\s*-?\d{0,12}){0,5}\s*", fullmatch=True))
def test_parse_shape(text: str) -> None:
    shape = returns_or_latprof_error(parse_shape, text)
    if shape is not None:
        assert shape and all(isinstance(d, int) and d >= 1 for d in shape)


@FAST
@given(st.text() | st.from_regex(r"\s*(cpu|cuda|CUDA|gpu)(:-?\d{0,25})?\s*", fullmatch=True))
def test_parse_device(text: str) -> None:
    device = returns_or_latprof_error(parse_device, text)
    if device is not None:
        assert device == "cpu" or device.startswith("cuda")


@FAST
@given(
    st.none()
    | st.text()
    | st.builds(lambda i, n: f"{i}/{n}", st.integers(-5, 10**20), st.integers(-5, 10**20))
)
def test_parse_shard(text: str | None) -> None:
    shard = returns_or_latprof_error(parse_shard, text)
    if shard is not None:
        index, count = shard
        assert 0 <= index < count


# ------------------------------------------------------------------------ spaces


@FAST
@given(st.text())
def test_toml_space_from_any_text(text: str) -> None:
    returns_or_latprof_error(loads_toml_space, text)


@FAST
@given(mutated(TINY_SPACE))
def test_toml_space_from_a_damaged_space(data: Any) -> None:
    returns_or_latprof_error(space_from_dict, data)


@FAST
@given(values)
def test_toml_space_from_any_structure(data: Any) -> None:
    returns_or_latprof_error(space_from_dict, data)


# ------------------------------------------------------------------------ architectures


@FAST
@given(mutated(TINY_ARCH) | values)
def test_arch_from_dict(data: Any) -> None:
    returns_or_latprof_error(Arch.from_dict, data)


@FAST
@given(
    st.sampled_from([".json", ".toml", ".txt"]),
    st.text() | st.binary().map(lambda b: b.decode("latin-1")) | mutated(TINY_ARCH).map(json.dumps),
    st.booleans(),
)
def test_arch_file(suffix: str, text: str, raw: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"arch{suffix}"
        if raw:
            path.write_bytes(text.encode("latin-1", errors="replace"))
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        arch = returns_or_latprof_error(archmod.load, str(path))
        if arch is not None:  # an arch that loads resolves or fails with a LatprofError
            returns_or_latprof_error(lambda a: archmod.resolve(a, archmod.space_of(a)), arch)


# ------------------------------------------------------------------------ MODEL specs


@FAST
@given(st.text())
def test_split_file_spec(spec: str) -> None:
    path, name = split_file_spec(spec)
    assert name == "" or name.isidentifier()
    assert path == Path(spec) or spec == f"{path}:{name}" or spec.endswith(f":{name}")


@FAST
@given(
    st.text().filter(lambda s: not s.startswith(("zoo:", "torchvision:")))
    | st.builds(lambda s: f"zoo:{s}", st.text(max_size=12))
)
def test_model_specs_that_name_no_file(spec: str) -> None:
    # paths that do not exist (or are folders, or not .py): never imported, never a crash
    if not spec.startswith("zoo:"):
        try:
            path, _ = split_file_spec(spec)
            if path.is_file() and path.suffix == ".py":
                return
        except (ValueError, OSError):
            pass
    returns_or_latprof_error(load_model, spec)
