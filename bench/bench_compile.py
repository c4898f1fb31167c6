"""Benchmark: `nebula compile` against its floor and against `kubectl kustomize`.

Run: `python bench/bench_compile.py` (or `make bench`). For N = 10, 100 and 1,000
generated deployments (10 per project, two environments), in one run:

- compile: what `nebula compile` does in process, read and validate, then lower
  and emit both environments, and separately the time to write the trees to
  disk (median of several runs);
- peak memory of that compile, in a fresh process;
- the floor: a C-accelerated load of the input (`CSafeLoader`) plus a
  C-accelerated dump (`CSafeDumper`) of the Kubernetes objects the compile emits,
  both with the garbage collector paused, as the compile runs;
- `kubectl kustomize` of the emitted prod folder (one of the two environments the
  compile writes, which favours kustomize; stopped after 300 s).

Targets at N = 1,000: compile within 3x the floor, faster than kustomize's build
of the same output, and N = 1,000 no more than 12x N = 100. The table is printed
and written into docs/benchmarks.md between the `bench:compile` markers.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_validate import write_docs  # noqa: E402
from generate import generate  # noqa: E402
from plot import line_chart  # noqa: E402

from nebula_compile.api import compile_path  # noqa: E402
from nebula_compile.output import write_tree  # noqa: E402

START, END = "<!-- bench:compile:start -->", "<!-- bench:compile:end -->"
KUSTOMIZE_TIMEOUT = 300
KUBECTL = shutil.which("kubectl", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

PEAK = """
import resource, sys
sys.path.insert(0, {root!r})
from nebula_compile.api import compile_path
from nebula_compile.output import write_tree
c = compile_path({config!r}, revision=None)
for env, bundle in c.outputs.items():
    write_tree({out!r} + "/" + env, bundle.files)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def compile_once(config: str, out: str) -> tuple[int, float, float]:
    """(Kubernetes objects, seconds to compile in memory, seconds to write the trees)."""
    started = time.perf_counter()
    compilation = compile_path(config, revision=None)
    assert compilation.ok, compilation.diagnostics[:3]
    compiled = time.perf_counter()
    for environment, bundle in compilation.outputs.items():
        write_tree(os.path.join(out, environment), bundle.files)
    written = time.perf_counter()
    objects = sum(len(b.objects) for b in compilation.outputs.values())
    return objects, compiled - started, written - compiled


def measure(deployments: int, repeat: int, folder: str) -> dict[str, Any]:
    config = os.path.join(folder, f"n{deployments}.yaml")
    Path(config).write_text(generate(deployments=deployments), encoding="utf-8")
    out = os.path.join(folder, f"out{deployments}")
    objects, _, _ = compile_once(config, out)
    runs = [compile_once(config, out) for _ in range(repeat)]
    compile_s = statistics.median(r[1] for r in runs)
    write_s = statistics.median(r[2] for r in runs)

    emitted = [
        obj
        for path in sorted(Path(out).glob("*/kubernetes/*/*.yaml"))
        for obj in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
    ]
    text = Path(config).read_text(encoding="utf-8")
    floors = []
    for _ in range(repeat):
        gc.disable()
        try:
            started = time.perf_counter()
            yaml.load(text, Loader=yaml.CSafeLoader)
            for obj in emitted:
                yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=False)
            floors.append(time.perf_counter() - started)
        finally:
            gc.enable()
    floor_s = statistics.median(floors)

    # one environment only, against a compile of all of them: the comparison favours kustomize
    started = time.perf_counter()
    try:
        subprocess.run(
            [KUBECTL or "kubectl", "kustomize", os.path.join(out, "prod", "kubernetes")],
            check=True,
            capture_output=True,
            timeout=KUSTOMIZE_TIMEOUT,
        )
        kustomize_s = time.perf_counter() - started
        kustomize_done = True
    except subprocess.TimeoutExpired:
        kustomize_s, kustomize_done = float(KUSTOMIZE_TIMEOUT), False

    peak = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK.format(root=str(ROOT), config=config, out=os.path.join(folder, f"peak{deployments}")),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        "deployments": deployments,
        "objects": objects,
        "compile": compile_s,
        "write": write_s,
        "floor": floor_s,
        "kustomize": kustomize_s,
        "kustomize_done": kustomize_done,
        "peak_mib": int(peak.stdout.strip()) / 1024,
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| deployments | Kubernetes objects | compile (in memory) | objects/s | write files | peak memory"
        " | floor: C load + C dump | compile / floor | kubectl kustomize, prod only | compile + write / kustomize |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        total = r["compile"] + r["write"]
        kustomize = (
            f"{r['kustomize'] * 1000:,.0f} ms | {total / r['kustomize']:.2f}x"
            if r["kustomize_done"]
            else f"over {KUSTOMIZE_TIMEOUT} s (stopped) | under {total / r['kustomize']:.3f}x"
        )
        out.append(
            f"| {r['deployments']:,} | {r['objects']:,} | {r['compile'] * 1000:,.0f} ms | {r['objects'] / r['compile']:,.0f}"
            f" | {r['write'] * 1000:,.0f} ms | {r['peak_mib']:,.0f} MiB | {r['floor'] * 1000:,.0f} ms"
            f" | {r['compile'] / r['floor']:.2f}x | {kustomize} |"
        )
    by_n = {int(r["deployments"]): r for r in rows}
    if 100 in by_n and 1000 in by_n:
        growth = by_n[1000]["compile"] / by_n[100]["compile"]
        writes = by_n[1000]["write"] / by_n[100]["write"]
        out.append("")
        out.append(
            f"Growth from 100 to 1,000 deployments: compile {growth:.1f}x (linear is 10x; the target is at most 12x);"
            f" writing the files {writes:.1f}x."
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark nebula compile.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(n, args.repeat, folder) for n in args.sizes]
    result = (
        f"{table(rows)}\n\nMedian of {args.repeat} runs; CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs."
        "\n\n![compile time against the floor and kustomize](bench-compile.svg)"
    )
    print(result)
    if not args.no_write:
        write_docs(result, START, END)
        xs = [float(r["deployments"]) for r in rows]
        line_chart(
            "nebula compile: seconds by size (log-log; kustomize stopped at 300 s)",
            xs,
            {
                "kubectl kustomize": [r["kustomize"] for r in rows],
                "floor (C load + dump)": [r["floor"] for r in rows],
                "nebula compile": [r["compile"] for r in rows],
                "writing the files": [r["write"] for r in rows],
            },
            ROOT / "docs" / "bench-compile.svg",
        )


if __name__ == "__main__":
    main()
