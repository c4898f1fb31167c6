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
