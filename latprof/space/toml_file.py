"""User search spaces from TOML files (format: docs/spaces.md, example: tables/space-example.toml).

A file lists stages; they chain from ``input`` (each stage's c_in, h, w come from the previous
one), so shapes are consistent by construction. Errors are SpaceError naming the file, the
stage (1-based, in file order) and the field.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from latprof.errors import SpaceError
from latprof.space.model import ACTS, SE_RULES, Candidate, SearchSpace
from latprof.space.ops import OP_KINDS, OPS
from latprof.space.stages import Stage, build_space, stage_slots, stages_of

__all__ = ["dump_toml", "load_toml_space", "loads_toml_space", "parse_op", "space_from_dict"]

TOP_FIELDS = ("name", "description", "input", "notes", "defaults", "stage")
DEFAULT_FIELDS = ("act", "se")
STAGE_FIELDS = ("name", "c_out", "stride", "layers", "act", "ops", "c_in", "h", "w")
OP_FIELDS = ("op", "kernel", "expansion", "mid", "se", "dilation", "act")
NO_KERNEL_OPS = tuple(name for name, op in OPS.items() if not op.has_kernel)  # kernel: 1

_NUM = r"\d+(?:\.\d+)?"
_SHORTHAND = re.compile(
    rf"""^(?P<op>[a-z][a-z0-9_]*?)
    (?:_k(?P<kernel>\d+))?
    (?:_(?:e(?P<lo>{_NUM})(?:-(?P<hi>{_NUM}))?|m(?P<mid>\d+)))?
    (?:_se-(?P<se>[A-Za-z0-9_]+?))?
    (?:_d(?P<dilation>\d+))?
    (?:_(?P<act>{"|".join(sorted(ACTS, key=len, reverse=True))}))?$""",
    re.VERBOSE,
)


# --- loading --------------------------------------------------------------------------------


def load_toml_space(path: str | os.PathLike[str]) -> SearchSpace:
    """Read, check and validate a TOML space file."""
    where = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpaceError(f"{where}: no such file") from None
    except OSError as exc:
        raise SpaceError(f"{where}: can't read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpaceError(f"{where}: not valid TOML: not UTF-8 text ({exc.reason})") from None
    return loads_toml_space(text, where)


def loads_toml_space(text: str, source: str = "<string>") -> SearchSpace:
    """Like load_toml_space, from a string; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{source}: not valid TOML: {_toml_error(exc)}") from None
    return space_from_dict(data, source)


def _toml_error(exc: Exception) -> str:
    """'<msg> (line N, column M)' from tomllib's '<msg> (at line N, column M)'."""
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
    if m:
        return f"{msg[: m.start()]} (line {m.group(1)}, column {m.group(2)})"
    m = re.search(r"\s*\(at end of document\)$", msg)
    if m:
        return f"{msg[: m.start()]} (at the end of the file)"
    return msg


def space_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> SearchSpace:
    """Build and validate a space from parsed TOML (a dict of the file's tables)."""
    if not isinstance(data, Mapping):
        raise SpaceError(f"{source}: a space is a table of name, input and [[stage]] tables")
    _no_unknown(data, TOP_FIELDS, source)
    name = _str(data, "name", source, required=True)
    if not name.strip():
        raise SpaceError(f"{source}: name must not be empty")
    description = _str(data, "description", source, default="")
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise SpaceError(f"{source}: notes must be a list of strings")
    chw = _input(data, source)

    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpaceError(f"{source}: defaults must be a table: write [defaults]")
    _no_unknown(defaults, DEFAULT_FIELDS, f"{source}: defaults")
    default_act = _act(_str(defaults, "act", f"{source}: defaults", default="relu"), source)
    default_se = _se(_str(defaults, "se", f"{source}: defaults", default="none"), source)

    raw_stages = data.get("stage")
    if raw_stages is None:
        raise SpaceError(f"{source}: no stages: add at least one [[stage]] table")
    if not isinstance(raw_stages, list) or not all(isinstance(s, dict) for s in raw_stages):
        raise SpaceError(f"{source}: stage must be an array of tables: write [[stage]]")
    if not raw_stages:
        raise SpaceError(f"{source}: no stages: add at least one [[stage]] table")

    stages: list[Stage] = []
    c, h, w = chw
    for index, raw in enumerate(raw_stages, start=1):
        where = f"{source}: stage {index}"
        stage = _stage(raw, index, where, default_act, default_se)
        _check_chain(raw, stage, (c, h, w), index, where)
        if any(op.op == "pool_fc" for op in stage.ops) and index != len(raw_stages):
            raise SpaceError(f"{where}: pool_fc must be the last stage (its output is flat)")
        stages.append(stage)
        c = stage.c_out
        h, w = stage_slots(stage, c, h, w)[-1].out_hw
    space = build_space(name, description, chw, stages, notes)
    try:
        return space.validate()
    except SpaceError as exc:
        raise SpaceError(f"{source}: {exc}") from None


def _input(data: Mapping[str, Any], source: str) -> tuple[int, int, int]:
    if "input" not in data:
        raise SpaceError(f"{source}: missing required field 'input' ([C, H, W])")
    value = data["input"]
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(_is_int(v) and v >= 1 for v in value)
    ):
        raise SpaceError(f"{source}: input must be [C, H, W], positive integers; got {value!r}")
    return (value[0], value[1], value[2])


def _stage(raw: dict[str, Any], index: int, where: str, default_act: str, default_se: str) -> Stage:
    _no_unknown(raw, STAGE_FIELDS, where)
    name = _str(raw, "name", where, default=f"stage{index}")
    if not name.strip():
        raise SpaceError(f"{where}: name must not be empty")
    c_out = _int(raw, "c_out", where, required=True)
    stride = _int(raw, "stride", where, default=1)
    if stride not in (1, 2):
        raise SpaceError(f"{where}: stride must be 1 or 2, got {stride}")
    layers = _layers(raw.get("layers", 1), where)
    act = _act(_str(raw, "act", where, default=default_act), where)
    if "ops" not in raw:
        raise SpaceError(f"{where}: missing required field 'ops'")
    ops_raw = raw["ops"]
    if not isinstance(ops_raw, list) or not ops_raw:
        raise SpaceError(f"{where}: ops must be a non-empty list of ops")
    ops = tuple(parse_op(op, where, default_se) for op in ops_raw)
    if len(set(ops)) != len(ops):
        dup = next(op for op in ops if ops.count(op) > 1)
        raise SpaceError(f"{where}: op {dup.label()!r} is listed twice")
    kinds = {op.op for op in ops}
    if "pool_fc" in kinds:
        if kinds != {"pool_fc"}:
            raise SpaceError(f"{where}: pool_fc can't be mixed with other ops in a stage")
        if stride != 1 or layers != (1, 1):
            raise SpaceError(f"{where}: a pool_fc stage has stride 1 and one layer")
    return Stage(name, c_out, ops, stride, layers, act)


def _check_chain(
    raw: dict[str, Any], stage: Stage, chw: tuple[int, int, int], index: int, where: str
) -> None:
    """Explicit c_in / h / w must match what the previous stage (or the input) gives."""
    c, h, w = chw
    prev = "the previous stage's" if index > 1 else "the input's"
    if "c_in" in raw:
        c_in = _int(raw, "c_in", where)
        if c_in != c:
            what = f"c_out {c}" if index > 1 else f"{c} channels"
            raise SpaceError(f"{where}: c_in {c_in} doesn't chain with {prev} {what}")
    for fname, expected in (("h", h), ("w", w)):
        if fname in raw:
            got = _int(raw, fname, where)
            if got != expected:
                size = "output" if index > 1 else "size"
                raise SpaceError(f"{where}: {fname} {got} doesn't chain with {prev} {size} {h}x{w}")
    if stage.layers[0] == 0 and (stage.stride != 1 or c != stage.c_out):
        raise SpaceError(
            f"{where}: layers [0, {stage.layers[1]}] lets the whole stage be skipped, which "
            f"needs stride 1 and c_in == c_out (got stride {stage.stride}, {c} -> {stage.c_out})"
        )


MAX_LAYERS = 1024
"""Layers per stage: a slot is made for each, so a typo like 10**9 must not run away."""


def _layers(value: Any, where: str) -> tuple[int, int]:
    if _is_int(value):
        if value < 1:
            raise SpaceError(f"{where}: layers must be >= 1, got {value}")
        lo, hi = value, value
    elif isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value):
        lo, hi = value
        if not 0 <= lo <= hi or hi < 1:
            raise SpaceError(
                f"{where}: layers [min, max] needs 0 <= min <= max and max >= 1, got {value}"
            )
    else:
        raise SpaceError(f"{where}: layers must be an integer or [min, max], got {value!r}")
    if hi > MAX_LAYERS:
        raise SpaceError(f"{where}: layers {hi} is more than {MAX_LAYERS} per stage; split it")
    return (lo, hi)


def parse_op(value: Any, where: str = "op", default_se: str = "none") -> Candidate:
    """A candidate from a shorthand string ("mbinvres_k3_e2-4_se-c_in") or an inline table
    ({op = "mbinvres", kernel = 3, expansion = [2, 4], se = "c_in"})."""
    if isinstance(value, str):
        fields = _parse_shorthand(value, where)
        shown = repr(value)
    elif isinstance(value, dict):
        _no_unknown(value, OP_FIELDS, f"{where}: op {_inline(value)}")
        fields = dict(value)
        shown = _inline(value)
        if "op" not in fields:
            raise SpaceError(f"{where}: op {shown}: missing required field 'op'")
    else:
        raise SpaceError(
            f"{where}: an op is a string like 'mbinvres_k3_e2-4' or an inline table "
            f"{{op = ..., kernel = ...}}, got {value!r}"
        )
    op = fields["op"]
    if not isinstance(op, str) or op not in OP_KINDS:
        raise SpaceError(f"{where}: unknown op {op!r}; known: {', '.join(OP_KINDS)}")
    has_mid = OP_KINDS[op]
    ctx = f"{where}: op {shown}"

    if "kernel" in fields:
        kernel = _int(fields, "kernel", ctx)
    elif op in NO_KERNEL_OPS:
        kernel = 1
    else:
        raise SpaceError(f"{ctx}: missing kernel (e.g. kernel = 3, or '{op}_k3')")
    if kernel % 2 == 0:
        raise SpaceError(f"{ctx}: kernel must be odd, got {kernel}")

    expansion: tuple[float, float] = (1.0, 1.0)
    mid = 0
    if not has_mid:
        for fname in ("expansion", "mid", "se"):
            if fname in fields and not (fname == "se" and fields[fname] == "none"):
                raise SpaceError(
                    f"{ctx}: {op} has no mid width, so no {fname}; only "
                    f"{', '.join(k for k, v in OP_KINDS.items() if v)} do"
                )
    elif "expansion" in fields and "mid" in fields:
        raise SpaceError(f"{ctx}: give expansion or mid, not both")
    elif "expansion" in fields:
        expansion = _expansion(fields["expansion"], ctx)
    elif "mid" in fields:
        mid = _int(fields, "mid", ctx)
    else:
        raise SpaceError(f"{ctx}: missing expansion (e.g. expansion = [2, 4]) or mid")

    se = _se(_str(fields, "se", ctx, default=default_se if has_mid else "none"), ctx)
    dilation = _int(fields, "dilation", ctx, default=2 if op == "dil_conv" else 1)
    act = fields.get("act", "")
    if act != "":
        act = _act(_str(fields, "act", ctx), ctx)
    return Candidate(op, kernel, expansion, mid, se, dilation, act)


def _parse_shorthand(text: str, where: str) -> dict[str, Any]:
    m = _SHORTHAND.match(text)
    if not m:
        raise SpaceError(
            f"{where}: can't read op {text!r}; write e.g. 'conv_k3', 'mbinvres_k3_e2-4', "
            f"'mbinvres_k5_m96_se-quarter' or an inline table {{op = ..., kernel = ...}}"
        )
    g = m.groupdict()
    fields: dict[str, Any] = {"op": g["op"]}
    if g["kernel"]:
        fields["kernel"] = int(g["kernel"])
    if g["lo"]:
        lo = float(g["lo"])
        fields["expansion"] = [lo, float(g["hi"]) if g["hi"] else lo]
    if g["mid"]:
        fields["mid"] = int(g["mid"])
    if g["se"]:
        fields["se"] = g["se"]
    if g["dilation"]:
        fields["dilation"] = int(g["dilation"])
    if g["act"]:
        fields["act"] = g["act"]
    return fields


def _expansion(value: Any, ctx: str) -> tuple[float, float]:
    if _is_num(value):
        lo = hi = float(value)
    elif isinstance(value, list) and len(value) == 2 and all(_is_num(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise SpaceError(f"{ctx}: expansion must be a number or [low, high], got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise SpaceError(f"{ctx}: expansion needs 0 < low <= high, got [{lo:g}, {hi:g}]")
    return (lo, hi)


# --- small field helpers ----------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_MISSING: Any = object()


def _int(
    table: Mapping[str, Any], key: str, where: str, default: Any = _MISSING, required: bool = False
) -> int:
    if key not in table:
        if required or default is _MISSING:
            raise SpaceError(f"{where}: missing required field {key!r}")
        return int(default)
    value = table[key]
    if not _is_int(value):
        raise SpaceError(f"{where}: {key} must be an integer, got {value!r}")
    if value < 1:
        raise SpaceError(f"{where}: {key} must be positive, got {value}")
    return value


def _str(
    table: Mapping[str, Any], key: str, where: str, default: Any = _MISSING, required: bool = False
) -> str:
    if key not in table:
        if required or default is _MISSING:
            raise SpaceError(f"{where}: missing required field {key!r}")
        return str(default)
    value = table[key]
    if not isinstance(value, str):
        raise SpaceError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _act(name: str, where: str) -> str:
    if name not in ACTS:
        raise SpaceError(f"{where}: unknown act {name!r}; known: {', '.join(ACTS)}")
    return name


def _se(name: str, where: str) -> str:
    if name not in SE_RULES:
        raise SpaceError(f"{where}: unknown se rule {name!r}; known: {', '.join(SE_RULES)}")
    return name


def _no_unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise SpaceError(f"{where}: unknown field {key!r}; known: {', '.join(known)}")


def _inline(table: Mapping[str, Any]) -> str:
    """An inline TOML table; nested tables and values TOML cannot hold (in messages about
    a user's input) are shown too, never raised on."""
    return "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in table.items()) + "}"


def _shown(v: Any) -> str:
    if isinstance(v, Mapping):
        return _inline(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_shown(x) for x in v) + "]"
    try:
        return _value(v)
    except TypeError:
        return repr(v)


# --- dumping --------------------------------------------------------------------------------


def dump_toml(space: SearchSpace) -> str:
    """TOML text that load_toml_space reads back into an equal space.

    Runs of slots named ``x.0``, ``x.1``... that a stage reproduces exactly become one
    ``[[stage]]``; any other slot becomes a one-layer stage of its own.
    """
    space.validate()
    first = space.slots[0]
    lines = [
        f"name = {_value(space.name)}",
        f"description = {_value(space.description)}",
        f"input = {_value([first.c_in, first.h, first.w])}",
    ]
    if space.notes:
        lines.append("notes = [")
        lines.extend(f"    {_value(n)}," for n in space.notes)
        lines.append("]")
    for stage in stages_of(space):
        lines += ["", "[[stage]]", f"name = {_value(stage.name)}", f"c_out = {stage.c_out}"]
        if stage.stride != 1:
            lines.append(f"stride = {stage.stride}")
        lo, hi = stage.layers
        if (lo, hi) != (1, 1):
            lines.append(f"layers = {hi}" if lo == hi else f"layers = [{lo}, {hi}]")
        lines.append(f"act = {_value(stage.act)}")
        if len(stage.ops) == 1:
            lines.append(f"ops = [{_op_text(stage.ops[0])}]")
        else:
            lines.append("ops = [")
            lines.extend(f"    {_op_text(op)}," for op in stage.ops)
            lines.append("]")
    return "\n".join(lines) + "\n"


def _op_text(op: Candidate) -> str:
    label = op.label()
    if op.op in NO_KERNEL_OPS and op.kernel == 1:
        label = label.replace("_k1", "", 1)
    try:
        if parse_op(label) == op:
            return _value(label)
    except SpaceError:
        pass
    fields: dict[str, Any] = {"op": op.op, "kernel": op.kernel}
    if OP_KINDS.get(op.op):
        if op.mid:
            fields["mid"] = op.mid
        else:
            fields["expansion"] = list(op.expansion)
    fields["se"] = op.se
    fields["dilation"] = op.dilation
    if op.act:
        fields["act"] = op.act
    return _inline(fields)


def _value(v: Any) -> str:
    """A TOML literal for a str, int, float or list of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        out = []
        for ch in v:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\t":
                out.append("\\t")
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"can't write {v!r} as TOML")
