"""`nebula serve` and `nebula keys`: the runtime's commands (the compiler's CLI hands them over)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

EXIT_OK, EXIT_USER = 0, 1


def _settings(defaults: Mapping[str, str], env: str | None) -> Any:
    from nebula_runtime.settings import Settings

    settings = Settings.from_env(defaults=defaults)  # nebula.yaml, then .env, then the environment
    if env:
        settings = settings.with_values({"NEBULA_ENVIRONMENT": env})
    return settings


def serve(args: argparse.Namespace, defaults: Mapping[str, str]) -> int:
    """Run the runtime under gunicorn (gthread workers); the app is built once first, so bad settings fail here."""
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # workers share metrics through files; this must be set before prometheus_client is imported
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nebula-metrics-")
    from gunicorn.app.base import BaseApplication

    from nebula_runtime.app import create_app
    from nebula_runtime.settings import SettingsError

    try:
        settings = _settings(defaults, args.env)
        probe = create_app(settings)
    except SettingsError as err:
        sys.stderr.write(f"nebula serve: {err}\n")
        return EXIT_USER
    probe.extensions["nebula"].store.close()
    if not settings.api_key:
        sys.stderr.write("nebula serve: no NEBULA_API_KEY is set; only keys from `nebula keys create` are accepted\n")

    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread",
        "timeout": 300,
        "graceful_timeout": 30,
        "keepalive": 5,
        "reuse_port": True,  # the kernel spreads connections over the workers
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "nebula-runtime",
    }

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            return create_app(settings)

    sys.stderr.write(
        f"nebula: serving {settings.environment or 'the applied environment'} on http://{args.host}:{args.port} "
        f"({args.workers} workers x {args.threads} threads); API docs at /docs\n"
    )
    Server().run()
    return EXIT_OK


def keys(args: argparse.Namespace, defaults: Mapping[str, str], roles: Sequence[str] | None) -> int:
    import getpass

    from nebula_compile.state.store import StateError, Store
    from nebula_runtime import services
    from nebula_runtime.errors import ApiError

    settings = _settings(defaults, getattr(args, "env", None))
    try:
        store = Store.open(settings.database_url)
    except StateError as err:
        sys.stderr.write(f"nebula keys: {err}\n")
        return EXIT_USER
    try:
        if args.keys_command == "create":
            try:
                created = services.create_key(
                    store,
                    role=args.role,
                    name=args.name,
                    projects=args.project,
                    created_by=f"cli:{getpass.getuser()}",
                    expires_in_days=args.expires_in_days,
                    known_roles=roles,
                    environment=settings.environment,
                )
            except ApiError as err:
                sys.stderr.write(f"nebula keys create: {err.message}\n")
                return EXIT_USER
            scope = ", ".join(created.projects) if created.projects else "all projects"
            sys.stderr.write(f"created key {created.id} ({created.name}) with role {created.role} on {scope}\n")
            sys.stderr.write("store it now: it is shown only this once\n")
            sys.stdout.write(created.key + "\n")
        elif args.keys_command == "list":
            items = services.list_keys(store)
            sys.stdout.write(f"{'ID':<10} {'NAME':<20} {'ROLE':<16} {'PROJECTS':<20} {'CREATED':<20} STATUS\n")
            for key in items:
                status = (
                    "revoked"
                    if key.revoked_at
                    else ("expires " + key.expires_at.date().isoformat() if key.expires_at else "active")
                )
                projects = ",".join(key.projects) if key.projects else "*"
                sys.stdout.write(
                    f"{key.id:<10} {key.name[:20]:<20} {key.role:<16} {projects[:20]:<20} "
                    f"{key.created_at.strftime('%Y-%m-%d %H:%M'):<20} {status}\n"
                )
        else:
            try:
                revoked = services.revoke_key(store, args.key_id, f"cli:{getpass.getuser()}")
            except ApiError as err:
                sys.stderr.write(f"nebula keys revoke: {err.message}\n")
                return EXIT_USER
            sys.stdout.write(f"revoked key {revoked.id} ({revoked.name})\n")
    finally:
        store.close()
    return EXIT_OK


def _commit(path: str) -> str | None:
    """The repository's HEAD commit, with `-dirty` when the config differs from it: what a run records."""
    try:
        import git

        with git.Repo(os.path.dirname(os.path.abspath(path)), search_parent_directories=True) as repo:
            head = repo.head.commit.hexsha
            return f"{head}-dirty" if repo.is_dirty(path=os.path.abspath(path)) else head
    except Exception:  # not a repository, or no commit yet: the run records none
        return None


def _data_files(values: Sequence[str] | None) -> dict[str, Any]:
    from pathlib import Path

    files: dict[str, Any] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data takes DATASET=PATH, not {value!r}")
        files[name] = Path(path)
    return files


def run(args: argparse.Namespace, defaults: Mapping[str, str], render: Callable[[Any], str]) -> int:
    """`nebula run PROJECT`: the project's pipeline on this machine, with a progress bar and a summary."""
    from pathlib import Path

    from tqdm import tqdm

    from nebula_compile.api import compile_path
    from nebula_runtime.ml import pipeline
    from nebula_runtime.ml.workspace import StageError, opened

    try:
        files = _data_files(args.data)
    except ValueError as err:
        sys.stderr.write(f"nebula run: {err}\n")
        return 2
    environment = args.env or defaults.get("NEBULA_ENVIRONMENT")
    compilation = compile_path(args.path, [environment] if environment else None, revision=_commit(args.path))
    if not compilation.ok:
        sys.stderr.write(render(compilation))
        return EXIT_USER
    graph = compilation.graphs[environment] if environment else next(iter(compilation.graphs.values()))
    manifest = graph.to_json()
    root = Path(os.path.dirname(os.path.abspath(args.path)))
    url = os.environ.get("DATABASE_URL") or defaults.get("DATABASE_URL")
    artifacts = os.environ.get("NEBULA_ARTIFACTS") or defaults.get("NEBULA_ARTIFACTS")
    try:
        with opened(
            manifest,
            database_url=url,
            artifacts=artifacts,
            root=root,
            actor=f"nebula-run:{os.getenv('USER') or 'local'}",
        ) as ws:
            steps = pipeline.plan(ws, args.project, args.model) if args.project in ws.projects() else []
            with tqdm(total=len(steps), unit="stage", disable=args.quiet or None, file=sys.stderr) as bar:
                ws.say = (
                    (lambda message: None) if args.quiet else (lambda message: tqdm.write(message, file=sys.stderr))
                )
                summary = pipeline.run_project(ws, args.project, args.model, files, bar=bar, trigger="nebula-run")
    except StageError as err:
        sys.stderr.write(f"nebula run: {err}\n")
        return EXIT_USER
    out = sys.stdout
    out.write(f"\n{args.project} in {graph.environment}:\n")
    for dataset, number in summary.datasets.items():
        out.write(f"  dataset {dataset}: version {number}\n")
    width = max((len(m.model) for m in summary.models), default=5)
    for result in summary.models:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in list(result.metrics.items())[:4])
        if result.version is not None:
            state = f"registered v{result.version}"
        elif result.error == "gates failed":
            state = "gates failed: " + "; ".join(g["gate"] for g in result.gates if not g["passed"])
        else:
            state = f"failed: {result.error}"
        out.write(f"  {result.model:<{width}}  {state}  ({shown}; {result.seconds:.1f}s)\n")
    return EXIT_OK if summary.ok else EXIT_USER
