"""Run every benchmark module in bench/ that defines a top-level `main()`.

Each module runs in a fresh interpreter (so one module's torch thread settings or imports
cannot change another's numbers) and prints plain text. Benchmarks never assert: they print
their numbers and whether each goal is met. This script exits non-zero only when a module
crashed or ran past its time limit.

    .venv/bin/python bench/run_all.py            # all modules
    .venv/bin/python bench/run_all.py profile    # only modules whose name contains "profile"
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TIMEOUT_S = 1500  # per module; accuracy_bench.py (two full tables in context) takes ~20 min
BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('bench_module', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules['bench_module'] = module\n"
    "spec.loader.exec_module(module)\n"
    "module.main()\n"
)


def defines_main(path: Path) -> bool:
    """True when the file has a top-level `def main(...)` (checked without importing it)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError:
        return True  # let it run and fail loudly rather than be skipped silently
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def bench_modules(selectors: list[str]) -> list[Path]:
    """bench/*.py with a main(), except this file and private `_*.py` helpers, sorted."""
    found = [
        p
        for p in sorted(BENCH_DIR.glob("*.py"))
        if p.name != Path(__file__).name and not p.name.startswith("_") and defines_main(p)
    ]
    if selectors:
        found = [p for p in found if any(s in p.stem for s in selectors)]
    return found


def run_module(path: Path) -> tuple[str, float]:
    """Run one module's main() in a child interpreter; output goes straight through."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BOOTSTRAP, str(path)],
            cwd=BENCH_DIR.parent,
            timeout=TIMEOUT_S,
            check=False,
        )
        status = "ok" if proc.returncode == 0 else f"FAILED (exit code {proc.returncode})"
    except subprocess.TimeoutExpired:
        status = f"FAILED (timed out after {TIMEOUT_S} s)"
    return status, time.perf_counter() - start


def main() -> int:
    """Run the selected bench modules one after another and print a summary."""
    modules = bench_modules(sys.argv[1:])
    if not modules:
        print("no bench modules with a main() found", flush=True)
        return 1
    print(f"latprof benchmarks: {', '.join(p.name for p in modules)}", flush=True)
    results: list[tuple[str, str, float]] = []
    for path in modules:
        print(f"\n{'=' * 78}\n{path.name}\n{'=' * 78}", flush=True)
        status, seconds = run_module(path)
        results.append((path.name, status, seconds))
    print(f"\n{'=' * 78}\nsummary", flush=True)
    for name, status, seconds in results:
        print(f"  {name:<28} {status:<28} {seconds:7.1f} s")
    print(f"  {'total':<28} {'':<28} {sum(s for _, _, s in results):7.1f} s", flush=True)
    return 0 if all(status == "ok" for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
