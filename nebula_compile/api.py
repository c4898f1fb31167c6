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
from typing import Any

from nebula_compile.diagnostics import Diagnostic, did_you_mean, has_errors, one_of
from nebula_compile.emit import EMITTERS, Bundle, EmitContext
from nebula_compile.gitops import current_revision
from nebula_compile.gitops.reader import GitTree, RevisionError
from nebula_compile.ir import ResourceGraph, lower
from nebula_compile.plan.plan import Plan, Side, make_plan
from nebula_compile.policy import PolicyReport, check_policies
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
    validation: Validation,
    environments: Sequence[str] | None = None,
    revision: str | None = None,
    cache: dict[tuple[str, ...], Any] | None = None,
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
            context = EmitContext(name, cache)
            bundle = Bundle.merge(emitter(graph, context) for emitter in EMITTERS)
            found.extend(bundle.diagnostics)
            graphs[name] = graph
            outputs[name] = Bundle({**bundle.files, "manifest.json": graph.dumps()}, bundle.diagnostics, bundle.objects)
    return Compilation(validation, graphs, outputs, tuple(found))


def compile_path(path: str, environments: Sequence[str] | None = None, revision: str | None = None) -> Compilation:
    return compile_validation(validate_path(path), environments, revision)


def check_compilation_policies(compilation: Compilation) -> PolicyReport:
    """Every policy over every compiled environment (`nebula policy check`, and inside validate and plan)."""
    validation = compilation.validation
    if validation.resolved is None or not compilation.graphs:
        return PolicyReport(())
    objects = {env: bundle.objects for env, bundle in compilation.outputs.items()}
    root = os.path.dirname(os.path.abspath(validation.document.root))
    return check_policies(validation.resolved.spec, validation.document.sourcemap, compilation.graphs, objects, root)


@dataclass(frozen=True)
class PlanResult:
    plan: Plan | None
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.plan is not None and not has_errors(self.diagnostics)


def _compile_revision(
    path: str, revision: str | None, environments: Sequence[str] | None, cache: dict[tuple[str, ...], Any]
) -> tuple[Compilation | None, str | None]:
    """The config at `revision` (None: the working tree), compiled; None when the file did not exist there."""
    with _gc_paused():
        if revision is None:
            document = load(path)
            commit = current_revision(path)
        else:
            with GitTree.at(path, revision) as tree:
                document = load(path, read=tree.read, glob=tree.glob)
                commit = tree.commit
            if document.value is None and any(d.code == "NEB100" and d.span is None for d in document.diagnostics):
                return None, commit  # the configuration did not exist yet at that revision
        validation = check(document)
    # no commit in the outputs: it would differ in every file and hide the real changes
    return compile_validation(validation, environments, None, cache), commit


def plan_config(path: str, base: str, head: str | None = None, environments: Sequence[str] | None = None) -> PlanResult:
    """Compile the config at `base` and at `head` (the working tree by default) and diff them."""
    try:
        # both sides share emitted output wherever a project did not change
        cache: dict[tuple[str, ...], Any] = {}
        head_compilation, head_commit = _compile_revision(path, head, environments, cache)
        base_compilation, base_commit = _compile_revision(path, base, environments, cache)
    except RevisionError as err:
        return PlanResult(
            None, (Diagnostic("NEB601", str(err), None, "pass a commit, branch or tag of this repository"),), {}
        )
    assert head_compilation is not None or head is not None
    if head_compilation is None:
        return PlanResult(None, (Diagnostic("NEB602", f"{path} does not exist at {head}"),), {})
    sources = dict(head_compilation.validation.document.sources)
    found = list(head_compilation.diagnostics)
    if base_compilation is not None and not base_compilation.ok:
        found.append(
            Diagnostic(
                "NEB603",
                f"the configuration at the base revision {base} does not compile",
                None,
                "plan against a revision whose configuration is valid",
            )
        )
    if has_errors(found) or not head_compilation.ok:
        return PlanResult(None, tuple(found), sources)
    policy = check_compilation_policies(head_compilation).diagnostics
    base_side: Side = (
        (base_compilation.graphs, {e: b.files for e, b in base_compilation.outputs.items()})
        if base_compilation is not None
        else ({}, {})
    )
    head_side: Side = (head_compilation.graphs, {e: b.files for e, b in head_compilation.outputs.items()})
    plan = make_plan(
        base_side, head_side, policy, base_revision=base_commit, head_revision=head_commit if head else None
    )
    return PlanResult(plan, tuple(found) + policy, sources)
