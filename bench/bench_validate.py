"""Benchmark: `nebula validate` against a plain C-accelerated YAML load of the same file.

Run: `python bench/bench_validate.py` (or `make bench`). For N = 10, 100 and 1,000
generated projects it times, in one process and one run:

- `yaml.load(text, Loader=yaml.CSafeLoader)`: PyYAML's libyaml loader, as most
  tools call it (garbage collector on);
- the same load with the garbage collector paused, as Nebula runs its passes
  (the fairer floor: it shows the cost of the work, not of the collector);
- `nebula validate` in-process (`validate_path`): read, parse with positions,
  schema, references and rules.

Each figure is the median of several runs. The table is printed and written into
docs/benchmarks.md between the `bench:validate` markers.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate import generate  # noqa: E402

from nebula_compile.api import validate_path  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:validate:start -->", "<!-- bench:validate:end -->"


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def paused(action: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        gc.disable()
        try:
            return action()
        finally:
            gc.enable()

    return run


def measure(projects: int, repeat: int) -> dict[str, float]:
    text = generate(projects=projects)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "nebula.yaml")
        Path(path).write_text(text, encoding="utf-8")

        def c_load() -> object:
            with open(path, encoding="utf-8") as handle:
                return yaml.load(handle.read(), Loader=yaml.CSafeLoader)

        def nebula() -> object:
            validation = validate_path(path)
            assert validation.ok, validation.diagnostics[:3]
            return validation

        nebula()  # warm imports and caches once
        c = median_seconds(c_load, repeat)
        c_paused = median_seconds(paused(c_load), repeat)
        n = median_seconds(nebula, repeat)
        spec = nebula().spec
        assert spec is not None
        objects = sum(
            1 + len(p.datasets) + len(p.preprocessing) + len(p.models) + len(p.deployments) + len(p.notebooks)
            for p in spec.projects.values()
        )
    return {
        "projects": projects,
        "objects": objects,
        "lines": text.count("\n"),
        "bytes": len(text.encode()),
        "c_load": c,
        "c_load_paused": c_paused,
        "validate": n,
    }


def table(rows: list[dict[str, float]]) -> str:
    out = [
        "| projects | objects | lines | CSafeLoader load | CSafeLoader, GC paused | nebula validate | validate / load | validate / load (GC paused) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['projects']:,} | {r['objects']:,} | {r['lines']:,} | {r['c_load'] * 1000:,.0f} ms"
            f" | {r['c_load_paused'] * 1000:,.0f} ms | {r['validate'] * 1000:,.0f} ms"
            f" | {r['validate'] / r['c_load']:.2f}x | {r['validate'] / r['c_load_paused']:.2f}x |"
        )
    return "\n".join(out)


def write_docs(text: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the `start` and `end` markers of docs/benchmarks.md."""
    current = DOCS.read_text(encoding="utf-8")
    if start not in current or end not in current:
        raise SystemExit(f"{DOCS} lacks the {start} / {end} markers")
    head, rest = current.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark nebula validate against a C YAML load.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rows = [measure(n, args.repeat) for n in args.sizes]
    machine = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, PyYAML {yaml.__version__} (libyaml {'yes' if yaml.__with_libyaml__ else 'no'})"
    result = f"{table(rows)}\n\nMedian of {args.repeat} runs; {machine}."
    print(result)
    if not args.no_write:
        write_docs(result)


if __name__ == "__main__":
    main()
