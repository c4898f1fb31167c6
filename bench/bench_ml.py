"""Benchmark: serving through the runtime against the model in-process, and training through Nebula against a
direct scikit-learn fit.

Run: `python bench/bench_ml.py`. In one run:

- the churn example is applied and its baseline model (churn-lr: preprocessing and
  logistic regression) trained on the shipped data; the runtime serves it under
  gunicorn (`nebula_runtime.wsgi:app`, SQLite state);
- serving: one client on a kept-alive connection sends single-row predictions to
  `POST /v1/projects/churn/deployments/churn-api/predict` (p50/p99 latency), then
  several clients at once (predictions per second); the same rows go through the
  loaded model in-process (the same pipeline object the server calls). The serving
  overhead is the difference of the p50s;
- training: 100,000 rows (examples/churn/make_data.py) trained through Nebula's train
  stage (split, fit, evaluation, drift profile, artifacts, run tracking) against the
  same scikit-learn pipeline fitted and evaluated directly (the same metrics from one
  predict_proba), for churn-lr and for gradient boosting.

Targets: serving overhead under 3 ms at p50; training overhead under 10%. Figures go to
docs/benchmarks.md between the `bench:ml` markers.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "examples" / "churn"))

from bench_runtime import free_port, gunicorn  # noqa: E402
from bench_validate import write_docs  # noqa: E402

START, END = "<!-- bench:ml:start -->", "<!-- bench:ml:end -->"
CONFIG = """\
version: 1
platform: {{name: bench, state: "sqlite:///{folder}/state.db", artifacts: "{folder}/artifacts"}}
roles:
  client: [predictions:predict, deployments:read]
projects:
  churn:
    datasets:
      customers:
        source: {{path: customers.csv}}
        format: csv
        columns:
          customer_id: {{type: string, unique: true}}
          email: {{type: string, missing: 0.05}}
          tenure_months: {{type: integer, min: 0}}
          monthly_charges: {{type: float, min: 0}}
          total_charges: {{type: float, min: 0, missing: 0.01}}
          contract: {{type: category, values: [month-to-month, one-year, two-year]}}
          payment_method: {{type: category, values: [card, bank-transfer, check]}}
          support_calls: {{type: integer, min: 0}}
          churned: boolean
    preprocessing:
      features:
        input: customers
        clean:
          drop_columns: [customer_id, email]
          missing: {{strategy: median, columns: [total_charges]}}
        features:
          charges_per_month: total_charges / (tenure_months + 1)
        transform:
          scale: [tenure_months, monthly_charges, total_charges, charges_per_month, support_calls]
          one_hot: [contract, payment_method]
    models:
      churn-lr:
        algorithm: logistic_regression
        dataset: features
        target: churned
        params: {{max_iter: 500}}
      churn-gb:
        task: classification
        algorithm: gradient_boosting
        dataset: features
        target: churned
        params: {{n_estimators: 100, max_depth: 3}}
    deployments:
      churn-api:
        model: churn-lr
        version: latest
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prepare(folder: Path, rows: int) -> tuple[Any, dict[str, Any]]:
    import make_data

    from nebula_compile.api import compile_path
    from nebula_compile.state import Store
    from nebula_runtime.ml import pipeline
    from nebula_runtime.ml.workspace import opened

    make_data.write(folder / "customers.csv", rows)
    (folder / "nebula.yaml").write_text(CONFIG.format(folder=folder))
    compilation = compile_path(str(folder / "nebula.yaml"))
    assert compilation.ok, compilation.diagnostics
    store = Store.open(f"sqlite:///{folder}/state.db")
    store.apply_graphs(list(compilation.graphs.values()), commit="bench", author="bench")
    store.close()
    manifest = compilation.graphs["dev"].to_json()
    with opened(manifest, root=folder) as ws:
        for stage, name in pipeline.plan(ws, "churn"):
            if stage == "ingest":
                pipeline.ingest(ws, "churn", name)
    return store, manifest


def train_figures(folder: Path, manifest: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from nebula_runtime.ml import data as datastage
    from nebula_runtime.ml import estimators as est
    from nebula_runtime.ml import preprocess
    from nebula_runtime.ml import train as trainstage
    from nebula_runtime.ml.workspace import opened

    results = []
    with opened(manifest, root=folder) as ws:
        for model in ("churn-lr", "churn-gb"):
            spec = ws.spec("model", "churn", model)
            steps = ws.lineage("churn", "features")
            nebula_times, direct_times = [], []

            def nebula(model: str = model) -> float:
                gc.collect()
                started = time.perf_counter()
                trainstage.train(ws, "churn", model)
                return time.perf_counter() - started

            def direct(spec: Any = spec, steps: Any = steps) -> float:
                # the rows as stored, the same pipeline, split and evaluation; no tracking, profile or artifacts
                gc.collect()
                started = time.perf_counter()
                frame, _, _ = datastage.training_frame(ws, "churn", "features")
                frame = preprocess.prepare_rows(frame, steps, "churn")
                y = frame.pop("churned").astype(bool)
                X_train, X_test, y_train, y_test = train_test_split(
                    frame, y, test_size=0.2, random_state=42, stratify=y
                )
                fitted = Pipeline([("prep", preprocess.build(steps, None, None)), ("model", est.estimator(spec))]).fit(
                    X_train, y_train
                )
                proba = fitted.predict_proba(X_test)
                est.classification_metrics(
                    y_test, fitted.classes_[proba.argmax(axis=1)], proba, [False, True], spec["metrics"]
                )
                return time.perf_counter() - started

            runs = repeat * 3 if model == "churn-lr" else repeat  # a 0.4 s fit is noisier: more runs, still quick
            for run in range(runs):  # alternate which goes first, so neither always finds warm caches
                if run % 2:
                    direct_times.append(direct())
                    nebula_times.append(nebula())
                else:
                    nebula_times.append(nebula())
                    direct_times.append(direct())
            nebula_s, direct_s = statistics.median(nebula_times), statistics.median(direct_times)
            # each pair ran back to back: the median of their differences is steadier than a ratio of medians
            paired = statistics.median(n - d for n, d in zip(nebula_times, direct_times, strict=True))
            results.append(
                {
                    "model": model,
                    "rows": len(pd.read_csv(folder / "customers.csv", usecols=["customer_id"])),
                    "nebula_s": nebula_s,
                    "direct_s": direct_s,
                    "overhead": paired / direct_s,
                    "extra_ms": paired * 1000,
                }
            )
    return results


def serve_figures(folder: Path, manifest: dict[str, Any], requests_n: int, clients: int) -> dict[str, Any]:
    from nebula_runtime.ml import pipeline
    from nebula_runtime.ml.artifacts import ArtifactStore
    from nebula_runtime.ml.registry import resolve
    from nebula_runtime.ml.serving import load
    from nebula_runtime.ml.workspace import opened
    from nebula_runtime.services import create_key

    with opened(manifest, root=folder) as ws:
        pipeline.run_project(ws, "churn", ["churn-lr"])
        key = create_key(ws.store, role="client", name="bench", projects=None, created_by="bench").key
    import pandas as pd

    rows = (
        pd.read_csv(folder / "customers.csv")
        .drop(columns=["customer_id", "email", "churned"])
        .dropna()
        .head(requests_n)
        .to_dict("records")
    )
    store = ArtifactStore(str(folder / "artifacts"))
    number, artifact = resolve(store, "dev", "churn", "churn-lr", "latest")
    model = load(store, artifact, "churn", "churn-lr", number)
    for row in rows[:50]:
        model.predict([row])
    in_process = []
    for row in rows:
        started = time.perf_counter()
        model.predict([row])
        in_process.append((time.perf_counter() - started) * 1000)

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder}/state.db",
        "NEBULA_ARTIFACTS": str(folder / "artifacts"),
        "NEBULA_ENVIRONMENT": "dev",
        "NEBULA_LOG_LEVEL": "WARNING",
    }
    server = gunicorn("nebula_runtime.wsgi:app", port, env, workers=2, threads=4, cwd=folder)
    path = "/v1/projects/churn/deployments/churn-api/predict"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    bodies = [json.dumps({"input": row}).encode() for row in rows]
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for body in bodies[:50]:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
        served = []
        for body in bodies:
            started = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            served.append((time.perf_counter() - started) * 1000)
        connection.close()
        done = [0]
        lock = threading.Lock()

        def client(part: list[bytes]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for body in part:
                conn.request("POST", path, body, headers)
                conn.getresponse().read()
                with lock:
                    done[0] += 1
            conn.close()

        threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        throughput = done[0] / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "requests": len(bodies),
        "clients": clients,
        "in_process_p50": percentile(in_process, 0.5),
        "in_process_p99": percentile(in_process, 0.99),
        "in_process_rps": 1000 / statistics.mean(in_process),
        "served_p50": percentile(served, 0.5),
        "served_p99": percentile(served, 0.99),
        "served_rps": throughput,
        "overhead_p50": percentile(served, 0.5) - percentile(in_process, 0.5),
    }


def report(serving: dict[str, Any], training: list[dict[str, Any]]) -> str:
    import platform

    ok = "met" if serving["overhead_p50"] < 3 else "missed"
    lines = [
        "Serving churn-lr (single-row predictions):",
        "",
        "| path | p50 ms | p99 ms | predictions/s |",
        "|---|---:|---:|---:|",
        f"| in-process (`Loaded.predict`) | {serving['in_process_p50']:.2f} | {serving['in_process_p99']:.2f} | "
        f"{serving['in_process_rps']:.0f} (one thread) |",
        f"| through the runtime (HTTP, gunicorn 2x4) | {serving['served_p50']:.2f} | {serving['served_p99']:.2f} | "
        f"{serving['served_rps']:.0f} ({serving['clients']} clients) |",
        "",
        f"Serving overhead at p50: **{serving['overhead_p50']:.2f} ms** (target < 3 ms: {ok}), over "
        f"{serving['requests']:,} requests.",
        "",
        "Training at 100,000 rows (Nebula's train stage against the same pipeline fitted and evaluated directly, "
        "run in interleaved pairs; the overhead is the median paired difference over the direct median):",
        "",
        "| model | rows | direct s | Nebula s | Nebula's extra (paired median) | overhead |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in training:
        lines.append(
            f"| {row['model']} | {row['rows']:,} | {row['direct_s']:.2f} | {row['nebula_s']:.2f} | "
            f"{row['extra_ms']:+.0f} ms | {row['overhead'] * 100:+.1f}% |"
        )
    lines += ["", f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with tempfile.TemporaryDirectory(prefix="nebula-bench-ml-") as temporary:
        folder = Path(temporary)
        _, manifest = prepare(folder, args.rows)
        training = train_figures(folder, manifest, args.repeat)
        serving = serve_figures(folder, manifest, args.requests, args.clients)
    text = report(serving, training)
    print(text)
    if not args.no_write:
        write_docs(text, START, END)


if __name__ == "__main__":
    main()
