"""Nebula's runtime: the REST and GraphQL API over the reconciled state, data uploads, auth.

`create_app(settings)` builds the Flask app; `nebula serve` runs it under gunicorn.
Imports are lazy: `nebula serve` must set up multiprocess metrics before
prometheus_client is first imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from nebula_runtime.app import create_app

        return create_app
    if name == "Settings":
        from nebula_runtime.settings import Settings

        return Settings
    raise AttributeError(name)
