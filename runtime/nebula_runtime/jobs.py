"""Job entry points: `python -m nebula_runtime.jobs STAGE --manifest PATH --project P [--dataset D | --step S | --model M]`.

What the compiled Kubernetes Jobs and CronJobs and the DVC stages run. Stages:
ingest, validate, preprocess, train, evaluate, register (one object each);
pipeline (everything one model needs, then its registration: the training Job);
retrain (pipeline, unless the model trained within `retraining.min_interval`:
the schedule's CronJob; with `--trigger drift`, only when a deployment serving the
model has drifted: the drift check's CronJob). Exit status: 0 done, 1 the stage failed
(bad data, failed gates: the message says which), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from nebula_compile.spec.types import duration_seconds
from nebula_compile.state.schema import TrainingRun
from nebula_runtime.ml import pipeline, retrain
from nebula_runtime.ml.workspace import StageError, Workspace, load_manifest, opened

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "register", "pipeline", "retrain")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nebula_runtime.jobs", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--manifest", required=True, help="the compiled manifest (build/<env>/manifest.json)")
    p.add_argument("--project", required=True)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--dataset")
    target.add_argument("--step")
    target.add_argument("--model")
    p.add_argument("--workdir", type=Path, default=Path.cwd(), help="where DVC's stage outputs are written")
    p.add_argument("--root", type=Path, default=None, help="repository root for local data (default: the workdir)")
    p.add_argument("--data", type=Path, default=None, help="ingest: this file becomes the dataset's next version")
    p.add_argument("--trigger", default=None, help="retrain: why (schedule, drift); recorded with the run")
    return p


def _need(args: argparse.Namespace, what: str) -> str:
    value = getattr(args, what)
    if not value:
        parser().error(f"the {args.stage} stage needs --{what}")  # usage: exit status 2
    return str(value)


def _recent(ws: Workspace, project: str, model: str) -> datetime | None:
    with ws.store.sessions() as session:
        started = session.scalar(
            select(TrainingRun.started_at)
            .where(
                TrainingRun.environment == ws.environment,
                TrainingRun.project == project,
                TrainingRun.model == model,
                TrainingRun.status == "succeeded",
            )
            .order_by(TrainingRun.started_at.desc())
            .limit(1)
        )
    if started is None:
        return None
    return started if started.tzinfo else started.replace(tzinfo=UTC)


def run_stage(ws: Workspace, args: argparse.Namespace) -> int:
    stage, project, workdir = args.stage, args.project, args.workdir
    if stage == "ingest":
        pipeline.ingest(ws, project, _need(args, "dataset"), workdir, args.data)
    elif stage == "validate":
        pipeline.validate(ws, project, _need(args, "dataset"), workdir)
    elif stage == "preprocess":
        pipeline.prepare(ws, project, _need(args, "step"), workdir)
    elif stage == "train":
        pipeline.train(ws, project, _need(args, "model"), workdir)
    elif stage == "evaluate":
        pipeline.evaluate(ws, project, _need(args, "model"), workdir)
    elif stage == "register":
        pipeline.register(ws, project, _need(args, "model"), workdir)
    else:
        model = _need(args, "model")
        trigger = args.trigger or ("schedule" if stage == "retrain" else "manual")
        if stage == "retrain" and trigger == "drift":
            waiting = retrain.awaiting_promotion(ws, project, model)
            if waiting is not None:
                ws.say(
                    f"{model}: version {waiting} is registered and not yet served; promote it (or not) before "
                    "another retraining"
                )
                return 0
            found = retrain.drifted(ws, project, model)
            if not found:
                ws.say(f"{model}: no deployment serving it has drifted; nothing to do")
                return 0
            for item in found:
                ws.say(
                    f"{model}: {item['deployment']}/{item['variant']} (version {item['version']}) drifted on "
                    f"{', '.join(item['features'])} over {item['samples']} inputs"
                )
        if stage == "retrain":
            interval = (ws.spec("model", project, model).get("retraining") or {}).get("min_interval")
            last = _recent(ws, project, model)
            if interval and last is not None:
                age = (datetime.now(UTC) - last).total_seconds()
                if age < duration_seconds(interval):
                    ws.say(f"{model}: trained {age / 60:.0f} min ago, within min_interval {interval}; nothing to do")
                    return 0
        summary = pipeline.run_project(ws, project, [model], workdir=workdir, trigger=trigger)
        return 0 if summary.ok else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
        with opened(manifest, root=args.root or args.workdir, say=lambda m: print(m, flush=True)) as ws:
            return run_stage(ws, args)
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
