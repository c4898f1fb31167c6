"""The in-process API: what the CLI calls, and what tests and tools call directly.

The pipeline is the ordered tuple of passes below. Each pass reports all of its
diagnostics; the pipeline stops after the first pass that found an error.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import git

from nebula_compile.diagnostics import Diagnostic, did_you_mean, has_errors, one_of
from nebula_compile.emit import EMITTERS, Bundle, EmitContext
from nebula_compile.gitops import current_revision
from nebula_compile.gitops.hydrate import HydrateError, hydrate
from nebula_compile.gitops.reader import GitTree, RevisionError
from nebula_compile.ir import ResourceGraph, lower
from nebula_compile.plan.plan import PLAN_VERSION, Plan, Side, make_plan
from nebula_compile.policy import PolicyReport, check_policies
from nebula_compile.resolve import Resolved, check_rules, resolve
from nebula_compile.source import Document, load, load_text
from nebula_compile.spec import Spec, validate
from nebula_compile.state import ApplyResult, StateError, Store


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
    path: str,
    revision: str | None,
    environments: Sequence[str] | None,
    cache: dict[tuple[str, ...], Any],
    *,
    keep_revision: bool = False,
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
    # a plan leaves the commit out of the outputs: it would differ in every file and hide the real changes
    return compile_validation(validation, environments, commit if keep_revision else None, cache), commit


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


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[ApplyResult, ...]
    commit: str | None
    deployed: dict[str, str | None]
    """Environment -> the deploy-branch commit made for it (None: the branch already matched)."""
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def state_url(spec: Spec, config_path: str) -> str:
    """DATABASE_URL when set, else the platform's `state`; a relative SQLite path is relative to the config."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        state = spec.platform.state
        if isinstance(state, str):
            url = state
        elif hasattr(state, "env"):
            url = os.environ.get(state.env)
            if not url:
                raise StateError(f"platform.state reads ${state.env}, which is not set")
        else:
            raise StateError("platform.state is a secret-store reference; set DATABASE_URL to reach it from here")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        relative = url.removeprefix("sqlite:///")
        url = "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(config_path)), relative)
    return url


def _error(code: str, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, None, hint)


def apply_config(
    path: str,
    *,
    ref: str | None = None,
    plan_file: str | None = None,
    environments: Sequence[str] | None = None,
    lock_timeout: float = 60.0,
    hydrate_branch: bool = True,
) -> ApplyReport:
    """Record the config (at `ref`, or as a saved plan says) in the state store, then hydrate the deploy branch."""
    saved: dict[str, Any] | None = None
    if plan_file is not None:
        try:
            with open(plan_file, encoding="utf-8") as handle:
                saved = json.load(handle)
        except (OSError, ValueError) as err:
            return ApplyReport((), None, {}, (_error("NEB604", f"cannot read plan {plan_file}: {err}"),), {})
        if not _is_plan(saved):
            return ApplyReport((), None, {}, (_error("NEB604", f"{plan_file} is not a nebula plan"),), {})
        assert saved is not None
        ref = saved.get("head_revision") or ref
        environments = environments or [e["environment"] for e in saved["environments"] if e["head_hash"]]
    uncommitted = ref is None and _dirty(path)
    try:
        compilation, commit = _compile_revision(path, ref, environments, {}, keep_revision=not uncommitted)
    except RevisionError as err:
        return ApplyReport((), None, {}, (_error("NEB601", str(err)),), {})
    if uncommitted:
        commit = None  # the working tree is not any commit: record it as uncommitted, and keep it off the deploy branch
    if compilation is None:
        return ApplyReport((), None, {}, (_error("NEB602", f"{path} does not exist at {ref}"),), {})
    sources = dict(compilation.validation.document.sources)
    found = list(compilation.diagnostics)
    if compilation.ok:
        found.extend(check_compilation_policies(compilation).diagnostics)
    if has_errors(found) or compilation.validation.resolved is None:
        return ApplyReport((), commit, {}, tuple(found), sources)
    spec = compilation.validation.resolved.spec
    author = _author(path, commit)
    try:
        store = Store.open(state_url(spec, path))
    except StateError as err:
        return ApplyReport((), commit, {}, (*found, _error("NEB605", str(err))), sources)
    try:
        with store.lock(timeout=lock_timeout):
            if saved is not None:
                for entry in saved["environments"]:
                    name = entry["environment"]
                    current = store.current_hash(name)
                    if current != entry["base_hash"] and current != entry["head_hash"]:
                        found.append(
                            _error(
                                "NEB606",
                                f"the plan is stale: {name} changed since it was planned",
                                "run nebula plan again and apply the new plan",
                            )
                        )
                    graph = compilation.graphs.get(name)
                    if graph is not None and graph.hash != entry["head_hash"]:
                        found.append(
                            _error("NEB606", f"the configuration of {name} changed since it was planned", "plan again")
                        )
                if has_errors(found):
                    return ApplyReport((), commit, {}, tuple(found), sources)
            graphs = list(compilation.graphs.values())
            if environments is None:
                # an environment gone from the config is emptied, as the plan showed
                for name in store.environments():
                    if name not in compilation.graphs:
                        graphs.append(ResourceGraph(name, {}, dict(spec.platform.model_dump(mode="json")), ()))
            results = store.apply_graphs(graphs, commit=commit, author=author[0])
    except StateError as err:
        return ApplyReport((), commit, {}, (*found, _error("NEB607", str(err))), sources)
    finally:
        store.close()
    deployed: dict[str, str | None] = {}
    if hydrate_branch and commit is not None:
        repo = _repo_root(path)
        changed = {r.environment for r in results if r.changed}
        outputs = {env: dict(b.files) for env, b in compilation.outputs.items() if env in changed}
        outputs.update({r.environment: {} for r in results if r.changed and r.environment not in compilation.outputs})
        for environment, files in outputs.items():
            message = f"nebula: {environment} from {commit[:12]}\n\nRendered by nebula from {commit} ({author[0]}).\n"
            try:
                deployed[environment] = hydrate(repo, spec.platform.deploy_branch, environment, files, message, author)
            except HydrateError as err:
                found.append(_error("NEB608", f"could not update branch {spec.platform.deploy_branch}: {err}"))
    return ApplyReport(tuple(results), commit, deployed, tuple(found), sources)


def _is_plan(value: object) -> bool:
    if not isinstance(value, dict) or value.get("plan") != PLAN_VERSION:
        return False
    entries = value.get("environments")
    return isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("environment"), str) and {"base_hash", "head_hash"} <= set(e)
        for e in entries
    )


def _dirty(path: str) -> bool:
    """Whether the working tree holds uncommitted changes under the config's folder."""
    try:
        with git.Repo(os.path.dirname(os.path.abspath(path)), search_parent_directories=True) as repo:
            folder = os.path.relpath(os.path.dirname(os.path.abspath(path)), str(repo.working_tree_dir))
            return repo.is_dirty(untracked_files=True, path=folder)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return True


def _repo_root(path: str) -> str:
    with git.Repo(os.path.dirname(os.path.abspath(path)), search_parent_directories=True) as repo:
        return str(repo.working_tree_dir)


def _author(path: str, commit: str | None) -> tuple[str, str]:
    if commit is None:
        return ("nebula", "nebula@localhost")
    try:
        with git.Repo(os.path.dirname(os.path.abspath(path)), search_parent_directories=True) as repo:
            who = repo.commit(commit).author
            return (str(who.name or "nebula"), str(who.email or "nebula@localhost"))
    except (git.InvalidGitRepositoryError, git.BadName, ValueError):
        return ("nebula", "nebula@localhost")


@dataclass(frozen=True)
class Drift:
    environment: str
    missing: tuple[str, ...]
    """In the config, not in the state: not applied yet."""
    changed: tuple[str, ...]
    """In both, different."""
    extra: tuple[str, ...]
    """Applied before, gone from the config."""
    unmanaged: tuple[str, ...]
    """Created through the runtime API, not in git."""
    settings_changed: bool = False
    """The environment's own settings (or the platform's) differ from what was applied."""
    gone: bool = False
    """The state holds an environment the config no longer has."""

    @property
    def drifted(self) -> bool:
        return bool(self.missing or self.changed or self.extra or self.unmanaged or self.settings_changed or self.gone)


def drift_config(
    path: str, ref: str | None = None, environments: Sequence[str] | None = None
) -> tuple[list[Drift], tuple[Diagnostic, ...], dict[str, str]]:
    """Differences between the state store and the config at `ref` (the working tree by default)."""
    try:
        compilation, _commit = _compile_revision(path, ref, environments, {})
    except RevisionError as err:
        return [], (_error("NEB601", str(err)),), {}
    if compilation is None or not compilation.ok or compilation.validation.resolved is None:
        found = (
            compilation.diagnostics
            if compilation is not None
            else (_error("NEB602", f"{path} does not exist at {ref}"),)
        )
        sources = dict(compilation.validation.document.sources) if compilation is not None else {}
        return [], found, sources
    try:
        store = Store.open(state_url(compilation.validation.resolved.spec, path))
    except StateError as err:
        return [], (_error("NEB605", str(err)),), {}
    drifts = []
    try:
        names = sorted(set(compilation.graphs) | (set(store.environments()) if environments is None else set()))
        for name in names:
            graph = compilation.graphs.get(name)
            state = store.resources(name)
            managed = {rid: row for rid, row in state.items() if row.managed}
            wanted = {r.id: r for r in graph} if graph is not None else {}
            applied = store.current_hash(name)
            drifts.append(
                Drift(
                    name,
                    tuple(sorted(rid for rid in wanted if rid not in managed)),
                    tuple(sorted(rid for rid in wanted if rid in managed and managed[rid].hash != wanted[rid].hash)),
                    tuple(sorted(rid for rid in managed if rid not in wanted)),
                    tuple(sorted(rid for rid, row in state.items() if not row.managed)),
                    settings_changed=graph is not None and applied is not None and applied != graph.hash,
                    gone=graph is None,
                )
            )
    finally:
        store.close()
    return drifts, compilation.diagnostics, dict(compilation.validation.document.sources)
