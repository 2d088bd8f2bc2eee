"""The package's shape: no import circles, the public API from the top, Python 3.10 imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import latprof

ROOT = Path(latprof.__file__).parent


def imports_of(path: Path, module: str) -> set[str]:
    """latprof modules `module` imports anywhere (inside functions and TYPE_CHECKING too)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {t for t in out if t.startswith("latprof")}


def module_graph() -> dict[str, set[str]]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        targets = set()
        for t in imports_of(f, name):
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                targets.add(t)
        graph[name] = targets
    return graph


def test_no_module_imports_another_in_a_circle() -> None:
    graph = module_graph()
    seen: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            assert seen.get(nxt) != 1, "import circle: " + " -> ".join([*path, node, nxt])
            if nxt not in seen:
                visit(nxt, [*path, node])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])


def test_no_private_name_is_imported_across_modules() -> None:
    for f in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latprof"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [n for n in private if n != "__version__"]
                assert not private, f"{f.relative_to(ROOT)} imports {private} from {node.module}"


def test_public_api_from_the_top_without_torch() -> None:
    code = (
        "import sys, latprof; names = sorted(latprof.__all__); "
        "print('torch' in sys.modules); "
        "from latprof import profile, LatencyTable, expected_latency, predict, latency_model; "
        "print(all(callable(x) for x in (profile, LatencyTable, expected_latency, predict)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_imports_work_without_tomllib_as_on_python_3_10() -> None:
    """Python 3.10 has no tomllib: every module must fall back to tomli."""
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['tomllib'] = None  # import tomllib now raises ModuleNotFoundError\n"
        "import tomli\n"
        "import latprof\n"
        "for m in pkgutil.walk_packages(latprof.__path__, 'latprof.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "from latprof.space import arch\n"
        "from latprof.space.toml_file import loads_toml_space\n"
        "assert arch.tomllib is tomli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_no_cli_function_is_long() -> None:
    """Each command parses, calls the library and renders: about 60 lines at most."""
    for f in (ROOT / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 62, f"{f.name}:{node.name} has {length} lines"


def test_every_bench_main_runs_without_arguments() -> None:
    """`make bench` (bench/run_all.py) calls each module's main() with no arguments."""
    bench = ROOT.parent / "bench"
    mains = {}
    for path in sorted(bench.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                a = node.args
                required = len(a.posonlyargs) + len(a.args) - len(a.defaults)
                required += sum(d is None for d in a.kw_defaults)
                mains[path.name] = required
    assert {"allocator_bench.py", "module_bench.py", "run_all.py"} <= set(mains)
    assert {name: n for name, n in mains.items() if n} == {}
