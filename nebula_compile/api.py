"""The in-process API: what the CLI calls, and what tests and tools call directly.

The pipeline is the ordered tuple of passes below. Each pass reports all of its
diagnostics; the pipeline stops after the first pass that found an error.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from nebula_compile.diagnostics import Diagnostic, did_you_mean, has_errors, one_of
from nebula_compile.emit import EMITTERS, Bundle, EmitContext
from nebula_compile.ir import ResourceGraph, lower
from nebula_compile.resolve import Resolved, check_rules, resolve
from nebula_compile.source import Document, load, load_text
from nebula_compile.spec import Spec, validate


@dataclass(frozen=True)
class Validation:
    """The outcome of `nebula validate`: the resolved spec when it is valid."""

    document: Document
    resolved: Resolved | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.resolved is not None and not has_errors(self.diagnostics)

    @property
    def spec(self) -> Spec | None:
        return self.resolved.spec if self.resolved else None


def check(document: Document) -> Validation:
    """schema -> references -> rules, stopping after the first pass with errors."""
    found: list[Diagnostic] = list(document.diagnostics)
    if has_errors(found) or document.value is None:
        return Validation(document, None, tuple(found))
    spec, schema_diagnostics = validate(document)
    found.extend(schema_diagnostics)
    if spec is None or has_errors(found):
        return Validation(document, None, tuple(found))
    resolved, reference_diagnostics = resolve(spec, document.sourcemap)
    found.extend(reference_diagnostics)
    if has_errors(found):
        return Validation(document, None, tuple(found))
    found.extend(check_rules(resolved, document.sourcemap, document.value))
    return Validation(document, resolved if not has_errors(found) else None, tuple(found))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a config is loaded and checked.

    The passes allocate many small objects that all stay alive until the end, so
    a collection meanwhile finds nothing and, for a large config, costs a third of
    the time. On the way out the survivors are promoted to the oldest generation
    (freeze, then unfreeze) as a collection would have done, without the young
    collection that would otherwise scan all of them once more. Reference counting
    frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def validate_path(path: str) -> Validation:
    with _gc_paused():
        return check(load(path))


def validate_text(text: str, file: str = "nebula.yaml") -> Validation:
    with _gc_paused():
        return check(load_text(text, file))


@dataclass(frozen=True)
class Compilation:
    """The outcome of `nebula compile`: per environment, its graph and its files."""

    validation: Validation
    graphs: dict[str, ResourceGraph]
    outputs: dict[str, Bundle]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.validation.ok and not has_errors(self.diagnostics)


def compile_validation(
    validation: Validation, environments: Sequence[str] | None = None, revision: str | None = None
) -> Compilation:
    """validate -> lower -> emit, for the given environments (all when None)."""
    found = list(validation.diagnostics)
    if not validation.ok or validation.resolved is None:
        return Compilation(validation, {}, {}, tuple(found))
    spec = validation.resolved.spec
    chosen = list(environments) if environments else list(spec.environments)
    for name in chosen:
        if name not in spec.environments:
            hint = did_you_mean(name, spec.environments) or f"environments: {one_of(list(spec.environments))}"
            found.append(Diagnostic("NEB506", f"unknown environment '{name}'", None, hint))
    if has_errors(found):
        return Compilation(validation, {}, {}, tuple(found))
    root_dir = os.path.dirname(validation.document.root)
    graphs: dict[str, ResourceGraph] = {}
    outputs: dict[str, Bundle] = {}
    with _gc_paused():
        for name in chosen:
            graph, lowered = lower(
                validation.resolved, name, validation.document.sourcemap, root_dir=root_dir, revision=revision
            )
            found.extend(lowered)
            context = EmitContext(name)
            bundle = Bundle.merge(emitter(graph, context) for emitter in EMITTERS)
            found.extend(bundle.diagnostics)
            graphs[name] = graph
            outputs[name] = Bundle({**bundle.files, "manifest.json": graph.dumps()}, bundle.diagnostics, bundle.objects)
    return Compilation(validation, graphs, outputs, tuple(found))


def compile_path(path: str, environments: Sequence[str] | None = None, revision: str | None = None) -> Compilation:
    return compile_validation(validate_path(path), environments, revision)
