"""Bundle: what an emitter produces, files by relative path, plus its diagnostics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nebula_compile.diagnostics import Diagnostic, Severity
from nebula_compile.ir.graph import Resource


@dataclass(frozen=True)
class Bundle:
    files: Mapping[str, str] = field(default_factory=dict)
    diagnostics: tuple[Diagnostic, ...] = ()
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The Kubernetes objects behind `files`, by path, for policies that check them."""

    @staticmethod
    def merge(bundles: Iterable[Bundle]) -> Bundle:
        files: dict[str, str] = {}
        objects: dict[str, Mapping[str, Any]] = {}
        diagnostics: list[Diagnostic] = []
        for bundle in bundles:
            for path, text in bundle.files.items():
                if path in files:
                    raise ValueError(f"two emitters write {path}")  # a bug, not a user error
                files[path] = text
            objects.update(bundle.objects)
            diagnostics.extend(bundle.diagnostics)
        return Bundle(dict(sorted(files.items())), tuple(diagnostics), objects)


def problem(
    resource: Resource, code: str, message: str, hint: str | None = None, *, warning: bool = False
) -> Diagnostic:
    """A diagnostic found while emitting, pointing at the line the resource came from."""
    severity = Severity.WARNING if warning else Severity.ERROR
    return Diagnostic(code, message, resource.span, hint, severity, path=tuple(resource.id.split(".")))
