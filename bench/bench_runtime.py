"""Benchmark: the runtime's API against a hello-world Flask route, and a 1 GiB upload against sha256sum.

Run: `python bench/bench_runtime.py` (needs `wrk`: `apt-get install wrk`). In one run:

- the runtime (`nebula_runtime.wsgi:app`, a SQLite state with a project applied, an
  API key of a viewer role) and a hello-world Flask app are served by gunicorn with
  the same settings (gthread, same workers and threads);
- `wrk` loads `GET /v1/projects/{id}`, the GraphQL project query and the hello-world
  route in turn: requests per second and p50/p99 latency;
- a 1 GiB CSV (checked against its 5 declared columns) is uploaded with curl;
  its throughput is compared with `sha256sum` on the same file, and the peak memory
  (VmHWM) of every server process is read from /proc.

Targets: REST >= 60% and GraphQL >= 40% of hello-world throughput; the upload >= 40% of
sha256sum's throughput with the server under 150 MB. Figures go to docs/benchmarks.md
between the `bench:runtime` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_validate import write_docs  # noqa: E402

START, END = "<!-- bench:runtime:start -->", "<!-- bench:runtime:end -->"
CONFIG = """\
platform: {name: bench, state: "sqlite:///state.db"}
environments: {dev: {}}
roles:
  viewer: [projects:read, datasets:read]
  uploader: [projects:read, datasets:read, data:upload]
projects:
  churn:
    description: Predict which customers will cancel
    datasets:
      events:
        format: csv
        columns:
          id: integer
          amount: {type: float, min: 0}
          score: float
          kind: {type: category, values: [a, b, c]}
          ok: boolean
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn(
    app: str, port: int, env: dict[str, str], workers: int, threads: int, cwd: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--log-level",
        "warning",
        "--timeout",
        "600",
        "--reuse-port",
    ]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.5)
                return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{app} did not start")


def wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: Path | None = None, repeat: int = 3
) -> dict[str, float]:
    """The run with the median throughput of `repeat` runs (how wrk's connections land on workers varies)."""
    runs = sorted((wrk_once(url, seconds, connections, headers, script) for _ in range(repeat)), key=lambda r: r["rps"])
    return runs[len(runs) // 2]


def wrk_once(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: Path | None
) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx.group(1)} failed responses\n{output}")

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", output, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": percentile("50"), "p99": percentile("99")}


def peak_rss_mb(master: int) -> float:
    pids = [
        master,
        *map(int, subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()),
    ]
    peaks = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)  # type: ignore[union-attr]
    return max(peaks)


def make_csv(path: Path, size: int) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(7)
    rows = 0
    with pcsv.CSVWriter(
        path,
        pa.schema(
            [
                ("id", pa.int64()),
                ("amount", pa.float64()),
                ("score", pa.float64()),
                ("kind", pa.string()),
                ("ok", pa.bool_()),
            ]
        ),
    ) as writer:
        while path.stat().st_size < size:
            n = 500_000
            table = pa.table(
                {
                    "id": np.arange(rows, rows + n),
                    "amount": np.round(rng.exponential(50.0, n), 2),
                    "score": np.round(rng.normal(0, 1, n), 4),
                    "kind": pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, n)]),
                    "ok": rng.integers(0, 2, n).astype(bool),
                }
            )
            writer.write_table(table)
            rows += n
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the runtime API and uploads.")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    from nebula_compile.api import compile_path
    from nebula_compile.state import Store
    from nebula_runtime.services import create_key

    with tempfile.TemporaryDirectory(prefix="nebula-bench-") as folder:
        work = Path(folder)
        (work / "nebula.yaml").write_text(CONFIG)
        store = Store.open(f"sqlite:///{work}/state.db")
        store.apply_graphs(list(compile_path(str(work / "nebula.yaml")).graphs.values()), commit=None, author=None)
        viewer = create_key(store, role="viewer", name="bench", projects=None, created_by="bench").key
        uploader = create_key(store, role="uploader", name="bench-upload", projects=None, created_by="bench").key
        store.close()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{work}/state.db",
            "NEBULA_ARTIFACTS": str(work / "artifacts"),
            "NEBULA_ENVIRONMENT": "dev",
            "NEBULA_MAX_UPLOAD": "4G",
            "PYTHONPATH": f"{ROOT / 'bench'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        results: dict[str, dict[str, float]] = {}
        graphql = work / "graphql.lua"
        body = json.dumps({"query": '{ project(id: "churn") { id name description } }'})
        graphql.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        port = free_port()
        hello = gunicorn("hello_app:app", port, env, args.workers, args.threads, work)
        try:
            results["hello"] = wrk(f"http://127.0.0.1:{port}/hello/churn", args.seconds, args.connections, {})
        finally:
            hello.terminate()
            hello.wait()
        port = free_port()
        runtime = gunicorn("nebula_runtime.wsgi:app", port, env, args.workers, args.threads, work)
        try:
            headers = {"X-API-Key": viewer}
            results["rest"] = wrk(f"http://127.0.0.1:{port}/v1/projects/churn", args.seconds, args.connections, headers)
            results["idle"] = {"memory": peak_rss_mb(runtime.pid)}
            results["graphql"] = wrk(
                f"http://127.0.0.1:{port}/graphql", args.seconds, args.connections, headers, graphql
            )
            if not args.upload_mib:
                print(json.dumps(results, indent=1))
                return
            uploads = []
            for mib in (args.upload_mib // 4, args.upload_mib):  # a smaller file first: memory must not grow with size
                big = work / f"events-{mib}.csv"
                rows = make_csv(big, mib << 20)
                size = big.stat().st_size
                subprocess.run(["sha256sum", str(big)], capture_output=True, check=True)  # warm the page cache
                started = time.perf_counter()
                subprocess.run(["sha256sum", str(big)], capture_output=True, check=True)
                sha_seconds = time.perf_counter() - started
                started = time.perf_counter()
                upload = subprocess.run(
                    [
                        "curl",
                        "-sS",
                        "-H",
                        f"X-API-Key: {uploader}",
                        "-F",
                        f"file=@{big};type=text/csv",
                        f"http://127.0.0.1:{port}/v1/projects/churn/data?dataset=events",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                upload_seconds = time.perf_counter() - started
                stored = json.loads(upload.stdout)
                if stored.get("rows") != rows:
                    raise SystemExit(f"upload failed: {upload.stdout[:500]}")
                uploads.append((size, rows, upload_seconds, sha_seconds, peak_rss_mb(runtime.pid)))
                big.unlink()
        finally:
            runtime.terminate()
            runtime.wait()

    hello_rps = results["hello"]["rps"]
    idle = results["idle"]["memory"]
    lines = [
        "| endpoint | requests/s | p50 | p99 | vs hello-world | target |",
        "|---|---:|---:|---:|---:|---:|",
        f"| hello-world Flask route | {hello_rps:,.0f} | {results['hello']['p50']:.2f} ms | {results['hello']['p99']:.2f} ms | 100% | |",
        f"| `GET /v1/projects/{{id}}` | {results['rest']['rps']:,.0f} | {results['rest']['p50']:.2f} ms | {results['rest']['p99']:.2f} ms "
        f"| {results['rest']['rps'] / hello_rps:.0%} | >= 60% |",
        f"| GraphQL `project(id)` | {results['graphql']['rps']:,.0f} | {results['graphql']['p50']:.2f} ms | {results['graphql']['p99']:.2f} ms "
        f"| {results['graphql']['rps'] / hello_rps:.0%} | >= 40% |",
        "",
        "| CSV upload, 5 checked columns | rows | time | throughput | sha256sum | ratio | server peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {size / 2**20:,.0f} MiB | {rows:,} | {seconds:.1f} s | {size / seconds / 2**20:,.0f} MiB/s "
            f"| {size / sha / 2**20:,.0f} MiB/s | {sha / seconds:.0%} | {memory:.0f} MB |"
            for size, rows, seconds, sha, memory in uploads
        ),
        "",
        "Targets, for the 1 GiB upload: a ratio of at least 40% and a server peak under 150 MB; the smaller "
        "upload shows that memory does not grow with the file.",
        "",
        f"gunicorn gthread, {args.workers} workers x {args.threads} threads, SO_REUSEPORT, for both apps; wrk 1 thread, "
        f"{args.connections} connections, the median of 3 runs of {args.seconds} s per endpoint, on the same machine; "
        f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs; SQLite state; request logs on (JSON, INFO). "
        f"Server peak memory is the largest VmHWM of the gunicorn processes; after the REST load alone it was {idle:.0f} MB.",
    ]
    result = "\n".join(lines)
    print(result)
    if not args.no_write:
        write_docs(result, START, END)


if __name__ == "__main__":
    main()
