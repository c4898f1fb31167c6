"""Benchmark: `nebula plan` with one deployment changed, against one compile of the same config.

Run: `python bench/bench_plan.py` (or `make bench`). A generated config of 1,000
deployments is committed in a temporary git repository; the working tree then
changes one deployment's traffic split. In one run it times (median of several):

- one compile of the head config (read, validate, lower, emit; in memory);
- the plan: the base read from git without a checkout, both sides compiled, the
  resource graphs and rendered files diffed, the policies checked.

Target: plan within 2.5x of one compile. The figures are written into
docs/benchmarks.md between the `bench:plan` markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_validate import write_docs  # noqa: E402
from generate import generate  # noqa: E402

from nebula_compile.api import compile_path, plan_config  # noqa: E402

START, END = "<!-- bench:plan:start -->", "<!-- bench:plan:end -->"


def median(action: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(deployments: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        text = generate(deployments=deployments)
        config = os.path.join(folder, "nebula.yaml")
        Path(config).write_text(text, encoding="utf-8")
        with git.Repo.init(folder) as repo:
            repo.index.add(["nebula.yaml"])
            actor = git.Actor("bench", "bench@example.com")
            repo.index.commit("base", author=actor, committer=actor)
        changed = text.replace(
            "      api-000:\n        variants:\n          champion: {model: baseline, traffic: 90}\n"
            "          challenger: {model: boosted, version: challenger, traffic: 10}",
            "      api-000:\n        variants:\n          champion: {model: baseline, traffic: 50}\n"
            "          challenger: {model: boosted, version: challenger, traffic: 50}",
            1,
        )
        assert changed != text
        Path(config).write_text(changed, encoding="utf-8")

        result = plan_config(config, "HEAD")
        assert result.plan is not None, result.diagnostics[:3]
        updated = sorted({c.id for e in result.plan.environments for c in e.resources})
        assert updated == ["deployment.proj-00000.api-000"], updated

        compile_s = median(lambda: compile_path(config, revision=None), repeat)
        plan_s = median(lambda: plan_config(config, "HEAD"), repeat)
    return {"deployments": deployments, "compile": compile_s, "plan": plan_s}


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark nebula plan.")
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    r = measure(args.deployments, args.repeat)
    result = (
        "| deployments | one compile | plan (one deployment changed) | plan / compile |\n"
        "|---:|---:|---:|---:|\n"
        f"| {r['deployments']:,} | {r['compile'] * 1000:,.0f} ms | {r['plan'] * 1000:,.0f} ms | {r['plan'] / r['compile']:.2f}x |\n"
        f"\nMedian of {args.repeat} runs; CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs."
    )
    print(result)
    if not args.no_write:
        write_docs(result, START, END)


if __name__ == "__main__":
    main()
