"""The profile file schema (JSON and Parquet), in one place.

Parquet: one row per leaf layer with its raw samples (`kind` "leaf"), then one row per module
with timed children (`kind` "parent": its self time in the time columns, `total_us` its
total), each with `parent` and `depth` in the module tree; everything else (config,
environment, end-to-end samples, notices, the parents' raw samples) as JSON in the schema
metadata under key `latprof`. Readers build leaves from the leaf rows and parents from the
metadata. JSON: the same metadata object plus `layers` (the leaf rows) and derived tables
(`categories`, `module_tree`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from latprof.config import ProfileConfig
from latprof.env import Environment
from latprof.errors import FileFormatError
from latprof.io.atomic import write_text, write_with
from latprof.records import LayerRecord, ModuleRecord, Notice, Profile, time_columns

KIND = "profile"
FORMAT_VERSION = 1
META_KEY = b"latprof"

LAYER_SCHEMA = pa.schema(
    [
        ("layer", pa.string()),
        ("category", pa.string()),
        ("macs", pa.float64()),
        ("params", pa.int64()),
        ("input_shape", pa.string()),
        ("output_shape", pa.string()),
        ("samples_us", pa.list_(pa.float64())),
        ("call_samples", pa.list_(pa.int64())),
        # derived, for readers that don't load latprof
        ("calls", pa.float64()),
        ("time_us", pa.float64()),
        ("time_us_median", pa.float64()),
        ("time_us_std", pa.float64()),
        ("time_us_min", pa.float64()),
        ("time_us_iqr", pa.float64()),
        ("n", pa.int64()),
        ("outliers", pa.int64()),
        ("page_faults", pa.int64()),
        ("macs_by", pa.string()),
        ("kind", pa.string()),  # leaf, or parent (a module with timed children)
        ("parent", pa.string()),
        ("depth", pa.int64()),
        ("total_us", pa.float64()),
    ]
)
_STORED = (
    "layer",
    "category",
    "macs",
    "params",
    "input_shape",
    "output_shape",
    "samples_us",
    "call_samples",
)


def _meta(p: Profile) -> dict[str, Any]:
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "model": p.model,
        "input_shapes": p.input_shapes,
        "config": p.config.to_dict(),
        "environment": p.environment.to_dict(),
        "e2e_us": p.e2e_us,
        "hooked_us": p.hooked_us,
        "bias_us": p.bias_us,
        "notices": [n.to_dict() for n in p.notices],
        "allocator_check": p.allocator_check,
        "nest_us": p.nest_us,
        "nest_identity_us": p.nest_identity_us,
        "nest_in_model_us": p.nest_in_model_us,
        "modules": [_module_dict(m) for m in p.modules],
        "ops": p.ops,
        "edges": p.edges,
        "e2e_faults_per_pass": p.e2e_faults_per_pass,
    }


def _module_dict(m: ModuleRecord) -> dict[str, Any]:
    """A module with timed children as stored in the metadata (raw samples included)."""
    return {
        "module": m.name,
        "category": m.category,
        "macs": m.macs,
        "macs_by": m.macs_by,
        "params": m.params,
        "samples_us": m.samples_us,
        "total_samples_us": m.total_samples_us,
        "call_samples": m.call_samples,
        "children": m.children,
    }


def _module_record(d: dict[str, Any]) -> ModuleRecord:
    return ModuleRecord(
        name=d["module"],
        category=d["category"],
        macs=None if d["macs"] is None else float(d["macs"]),
        params=int(d["params"]),
        samples_us=[float(x) for x in d["samples_us"]],
        total_samples_us=[float(x) for x in d["total_samples_us"]],
        call_samples=[int(x) for x in d["call_samples"]],
        macs_by=d.get("macs_by", "aten"),
        children=list(d.get("children", [])),
    )


def _layer_dicts(p: Profile) -> list[dict[str, Any]]:
    """The leaf rows (JSON `layers`)."""
    rows = []
    for layer, derived in zip(p.layers, p.layer_rows(), strict=True):
        row = {k: derived[k] for k in LAYER_SCHEMA.names if k in derived}
        row.update(layer=layer.name, samples_us=layer.samples_us, call_samples=layer.call_samples)
        rows.append(row)
    return rows


def _parquet_rows(p: Profile) -> list[dict[str, Any]]:
    """Leaf rows, then parent rows, each with its place in the module tree."""
    tree: dict[str, dict[str, Any]] = {}
    for place in p.module_rows():  # a module called by several parents: its first place
        tree.setdefault(place["module"], place)
    rows = []
    for row in _layer_dicts(p):
        place = tree[row["layer"]]
        rows.append(
            {**row, "kind": "leaf", "parent": place["parent"], "depth": place["depth"],
             "total_us": row["time_us"]}
        )  # fmt: skip
    for m in p.modules:
        st, place = m.stats, tree[m.name]
        rows.append(
            {
                "layer": m.name,
                "category": m.category,
                "macs": m.macs,
                "params": m.params,
                "input_shape": "",
                "output_shape": "",
                "samples_us": m.samples_us,
                "call_samples": m.call_samples,
                "calls": m.calls,
                **time_columns(st),
                "page_faults": None,
                "macs_by": m.macs_by,
                "kind": "parent",
                "parent": place["parent"],
                "depth": place["depth"],
                "total_us": m.total_stats.mean,
            }
        )
    return rows


def check_format_version(meta: dict[str, Any], newest: int, source: str) -> None:
    """FileFormatError when a file was written in a newer format than this latprof reads."""
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FileFormatError(f"{source}: unknown format_version {version!r} in its metadata")
    if version > newest:
        raise FileFormatError(
            f"{source} has format_version {version!r}, newer than this latprof reads "
            f"({newest}); upgrade latprof to read it"
        )


def _from_parts(meta: dict[str, Any], rows: list[dict[str, Any]], source: str) -> Profile:
    if meta.get("kind") != KIND:
        if "kind" not in meta:
            raise FileFormatError(
                f"{source} is not a latprof file (no 'kind' in it); `report` reads the profiles "
                "and tables latprof saves (`profile -o FILE.json`, `.parquet`, `build-lut`)"
            )
        raise FileFormatError(f"{source} holds a latprof {meta['kind']!r} file, not a profile")
    check_format_version(meta, FORMAT_VERSION, source)
    try:
        layers = [
            LayerRecord(
                name=r["layer"],
                category=r["category"],
                macs=None if r["macs"] is None or r["macs"] != r["macs"] else float(r["macs"]),
                params=int(r["params"]),
                input_shape=r["input_shape"],
                output_shape=r["output_shape"],
                samples_us=[float(x) for x in r["samples_us"]],
                call_samples=[int(x) for x in r["call_samples"]],
                page_faults=None if r.get("page_faults") is None else int(r["page_faults"]),
                macs_by=r.get("macs_by") or "",
            )
            for r in rows
        ]
        return Profile(
            model=meta["model"],
            input_shapes=list(meta["input_shapes"]),
            # files from before every module was timed have no scope: they timed leaves
            config=ProfileConfig.from_dict({"scope": "leaves", **meta["config"]}),
            environment=Environment.from_dict(meta["environment"]),
            layers=layers,
            e2e_us=[float(x) for x in meta["e2e_us"]],
            hooked_us=[float(x) for x in meta["hooked_us"]],
            bias_us=float(meta["bias_us"]),
            notices=[Notice(**n) for n in meta.get("notices", [])],
            allocator_check=meta.get("allocator_check"),
            modules=[_module_record(d) for d in meta.get("modules", [])],
            nest_us=float(meta.get("nest_us", 0.0)),
            # until 2026-12-07 the subtracted nest was always nn.Identity's
            nest_identity_us=_float_or_none(meta.get("nest_identity_us", meta.get("nest_us"))),
            nest_in_model_us=_float_or_none(meta.get("nest_in_model_us")),
            ops=meta.get("ops"),
            edges=[list(e) for e in meta.get("edges", [])],
            e2e_faults_per_pass=_float_or_none(meta.get("e2e_faults_per_pass")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{source} is not a valid latprof profile (missing {exc})") from exc


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def to_json_dict(p: Profile) -> dict[str, Any]:
    s = p.summary
    return {
        **_meta(p),
        "summary": {
            "e2e_us": s.e2e.to_dict(),
            "e2e_faults_per_pass": p.e2e_faults_per_pass,
            "leaf_sum_us": s.leaf_sum_us,
            "self_sum_us": s.self_sum_us,
            "nest_us": p.nest_us,
            "unattributed_us": s.unattributed_us,
            "hook_overhead_us": s.overhead_us,
            "hook_overhead_per_call_us": s.overhead_per_call_us,
            "calls_per_pass": s.calls_per_pass,
        },
        "categories": p.category_rows(),
        "layers": _layer_dicts(p),
        "module_tree": p.module_rows(),
    }


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def dumps_json(p: Profile) -> str:
    return json.dumps(_nan_to_none(to_json_dict(p)), indent=2, ensure_ascii=False) + "\n"


def save_json(p: Profile, path: Path) -> None:
    write_text(path, dumps_json(p))


def save_parquet(p: Profile, path: Path) -> None:
    table = pa.Table.from_pylist(_parquet_rows(p), schema=LAYER_SCHEMA)
    table = table.replace_schema_metadata({META_KEY: json.dumps(_meta(p)).encode()})
    write_with(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet_meta(path: Path) -> dict[str, Any]:
    """The `latprof` metadata object of any latprof Parquet file."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileFormatError(f"{path} is not a readable Parquet file ({exc})") from exc
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise FileFormatError(
            f"{path} is a Parquet file but not a latprof one (no 'latprof' metadata)"
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: the 'latprof' metadata is corrupt ({exc})") from exc


def load(path: Path) -> Profile:
    """Load a profile saved as .parquet or .json."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path} is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise FileFormatError(f"{path} is not a latprof profile")
        return _from_parts(data, data.get("layers", []), str(path))
    if path.suffix == ".parquet":
        meta = read_parquet_meta(path)
        present = set(pq.read_schema(path).names)
        optional = ("page_faults", "macs_by", "kind")  # older files have none
        columns = [c for c in (*_STORED, *optional) if c in present]
        rows = pq.read_table(path, columns=columns).to_pylist()
        leaves = [r for r in rows if r.get("kind", "leaf") == "leaf"]  # parents: metadata
        return _from_parts(meta, leaves, str(path))
    raise FileFormatError(f"{path}: unknown extension {path.suffix!r}; expected .parquet or .json")
