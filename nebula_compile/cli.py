"""The `nebula` command: parse arguments, call the API, render, set the exit code.

Exit codes: 0 ok, 1 a user error (invalid config, missing file), 2 bad usage,
3 an internal error (a bug: only then does a traceback reach the user).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from importlib import resources
from typing import Any

from nebula_compile import __version__
from nebula_compile.api import (
    Validation,
    apply_config,
    check_compilation_policies,
    compile_validation,
    drift_config,
    plan_config,
    state_url,
    validate_path,
)
from nebula_compile.diagnostics import has_errors
from nebula_compile.gitops import current_revision, repository_root
from nebula_compile.ir.manifest import render_manifest_schema
from nebula_compile.output import OutputError, remove_stale, write_text_atomic, write_tree
from nebula_compile.plan.render import render_plan_json, render_plan_markdown, render_plan_text
from nebula_compile.policy.checks import CHECKS
from nebula_compile.policy.packs import load_packs
from nebula_compile.policy.report import render_junit, render_policy_json, render_sarif
from nebula_compile.render import render_json, render_text, summary
from nebula_compile.spec.schema import render_schema
from nebula_compile.state import StateError

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_CHANGES = 2
"""`plan --detailed-exitcode` with changes, as Terraform does (argparse usage errors are 2 as well)."""


def _color(stream: object, flag: str) -> bool:
    if flag == "always":
        return True
    if flag == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _counts(validation: Validation) -> str:
    spec = validation.spec
    if spec is None:
        return ""
    projects = spec.projects.values()

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return ", ".join(
        (
            count(len(spec.projects), "project"),
            count(sum(len(p.datasets) for p in projects), "dataset"),
            count(sum(len(p.models) for p in projects), "model"),
            count(sum(len(p.deployments) for p in projects), "deployment"),
            count(len(spec.environments), "environment"),
        )
    )


def cmd_validate(args: argparse.Namespace) -> int:
    validation = validate_path(args.path)
    diagnostics = validation.diagnostics
    if validation.ok and args.policies:
        # the same policy results as `nebula policy check` and `nebula plan`
        compilation = compile_validation(validation, revision=None)
        diagnostics = compilation.diagnostics + check_compilation_policies(compilation).diagnostics
    failed = has_errors(diagnostics) or not validation.ok or (args.warnings_as_errors and bool(diagnostics))
    if args.format == "json":
        sys.stdout.write(render_json(diagnostics, file=args.path))
        return EXIT_USER if failed else EXIT_OK
    color = _color(sys.stderr, args.color)
    if diagnostics:
        sys.stderr.write(render_text(diagnostics, validation.document.sources, color=color, limit=args.max_errors))
        sys.stderr.write("\n")
    if failed:
        sys.stderr.write(f"{args.path}: invalid ({summary(diagnostics)})\n")
        return EXIT_USER
    note = f" ({summary(diagnostics)})" if diagnostics else ""
    sys.stdout.write(f"{args.path}: valid: {_counts(validation)}{note}\n")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    validation = validate_path(args.path)
    if args.revision == "auto":
        revision = current_revision(args.path) if validation.document.value is not None else None
    else:
        revision = None if args.revision == "none" else args.revision
    compilation = compile_validation(validation, args.env, revision)
    diagnostics = compilation.diagnostics
    if args.format == "json" and not compilation.ok:
        sys.stdout.write(render_json(diagnostics, file=args.path))
        return EXIT_USER
    if diagnostics and args.format == "text":
        color = _color(sys.stderr, args.color)
        sources = validation.document.sources
        sys.stderr.write(render_text(diagnostics, sources, color=color, limit=args.max_errors) + "\n")
    if not compilation.ok:
        sys.stderr.write(f"{args.path}: not compiled ({summary(diagnostics)}); {args.out} is unchanged\n")
        return EXIT_USER
    written = []
    try:
        for environment, bundle in compilation.outputs.items():
            folder = os.path.join(args.out, environment)
            write_tree(folder, bundle.files)
            written.append((environment, folder, len(bundle.files), len(compilation.graphs[environment])))
        removed = remove_stale(args.out, set(compilation.outputs)) if not args.env else []
    except (OutputError, OSError) as err:
        sys.stderr.write(f"error: cannot write {args.out}: {err}\n")
        return EXIT_USER
    if args.format == "json":
        report = {
            "valid": True,
            "revision": revision,
            "environments": {
                env: {"folder": folder, "files": files, "resources": count, "hash": compilation.graphs[env].hash}
                for env, folder, files, count in written
            },
            "removed": removed,
        }
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    for environment, folder, files, count in written:
        sys.stdout.write(f"{environment}: {count} resources -> {files} files in {folder}\n")
    for name in removed:
        sys.stdout.write(f"removed {os.path.join(args.out, name)} (no such environment any more)\n")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    result = plan_config(args.path, args.base, args.head, args.env)
    color = _color(sys.stdout, args.color)
    if result.plan is None:
        sys.stderr.write(render_text(result.diagnostics, result.sources, color=_color(sys.stderr, args.color)))
        sys.stderr.write(f"{args.path}: no plan ({summary(result.diagnostics)})\n")
        return EXIT_USER
    plan = result.plan
    if args.out:
        write_text_atomic(args.out, render_plan_json(plan))
    if args.format == "json":
        sys.stdout.write(render_plan_json(plan))
    elif args.format == "markdown":
        sys.stdout.write(render_plan_markdown(plan))
    else:
        warnings = [d for d in result.diagnostics if d not in plan.policy]
        if warnings:
            sys.stderr.write(render_text(warnings, result.sources, color=_color(sys.stderr, args.color)))
        sys.stdout.write(render_plan_text(plan, color=color))
    if has_errors(plan.policy):
        return EXIT_USER
    if args.detailed_exitcode and plan.changed:
        return EXIT_CHANGES
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    if args.path.endswith(".json"):  # `nebula apply plan.json`, as Terraform takes a saved plan
        args.plan, args.path = args.path, "nebula.yaml"
    report = apply_config(
        args.path,
        ref=args.ref,
        plan_file=args.plan,
        environments=args.env,
        lock_timeout=args.lock_timeout,
        hydrate_branch=args.deploy_branch,
    )
    if report.diagnostics:
        sys.stderr.write(render_text(report.diagnostics, report.sources, color=_color(sys.stderr, args.color)))
    if not report.ok:
        sys.stderr.write(f"{args.path}: not applied ({summary(report.diagnostics)}); the state is unchanged\n")
        return EXIT_USER
    source = report.commit[:12] if report.commit else "the working tree (uncommitted; not put on the deploy branch)"
    for result in report.results:
        if result.changed:
            sys.stdout.write(
                f"{result.environment}: applied {source} as revision {result.revision_id}: "
                f"{result.created} created, {result.updated} updated, {result.deleted} deleted\n"
            )
        else:
            sys.stdout.write(f"{result.environment}: no changes since the last apply; nothing to do\n")
        deployed = report.deployed.get(result.environment)
        if deployed:
            sys.stdout.write(f"{result.environment}: deploy branch updated to {deployed[:12]}\n")
    return EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    drifts, diagnostics, sources = drift_config(args.path, args.ref, args.env)
    if has_errors(diagnostics):
        sys.stderr.write(render_text(diagnostics, sources, color=_color(sys.stderr, args.color)))
        return EXIT_USER
    if args.format == "json":
        report = [
            {
                "environment": d.environment,
                "missing": d.missing,
                "changed": d.changed,
                "extra": d.extra,
                "unmanaged": d.unmanaged,
            }
            for d in drifts
        ]
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for d in drifts:
            if not d.drifted:
                sys.stdout.write(f"{d.environment}: no drift\n")
                continue
            sys.stdout.write(f"{d.environment}:\n")
            if d.gone:
                sys.stdout.write("  the environment is gone from the config, but its state remains\n")
            if d.settings_changed:
                sys.stdout.write("  the environment's or the platform's settings differ from what was applied\n")
            for label, ids in (
                ("not applied yet", d.missing),
                ("differs from the config", d.changed),
                ("applied, but gone from the config", d.extra),
                ("created outside git (unmanaged)", d.unmanaged),
            ):
                for rid in ids:
                    sys.stdout.write(f"  {rid}: {label}\n")
    drifted = any(d.drifted for d in drifts)
    return EXIT_CHANGES if drifted and args.detailed_exitcode else EXIT_OK


def cmd_policy_check(args: argparse.Namespace) -> int:
    validation = validate_path(args.path)
    compilation = compile_validation(validation, args.env, revision=None)
    if not compilation.ok:
        sys.stderr.write(
            render_text(compilation.diagnostics, validation.document.sources, color=_color(sys.stderr, args.color))
        )
        sys.stderr.write(f"{args.path}: invalid ({summary(compilation.diagnostics)}); policies were not checked\n")
        return EXIT_USER
    report = check_compilation_policies(compilation)
    if args.format == "text":
        text = render_text(
            report.diagnostics, validation.document.sources, color=_color(sys.stdout, args.color), limit=10_000
        )
        checked = len(report.results)
        passed = sum(1 for r in report.results if not r.violations and r.level != "disabled")
        text += f"{checked} policy checks over {len(compilation.graphs)} environment(s): {passed} passed"
        text += f", {summary(report.diagnostics)}\n" if report.diagnostics else "\n"
    elif args.format == "json":
        text = render_policy_json(report)
    elif args.format == "sarif":
        text = render_sarif(report, repository_root(args.path))
    else:
        text = render_junit(report)
    if args.out:
        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return EXIT_USER if report.failed else EXIT_OK


def cmd_policy_list(args: argparse.Namespace) -> int:
    root = os.path.dirname(os.path.abspath(args.path)) if os.path.exists(args.path) else None
    policies, problems = load_packs(root, set(CHECKS))
    for policy in sorted(policies, key=lambda p: p.name):
        sys.stdout.write(f"{policy.name:32} {policy.level:10} {policy.description}\n")
    for problem in problems:
        sys.stderr.write(f"{problem.span}: {problem.message}\n")
    return EXIT_USER if problems else EXIT_OK


def _runtime_defaults(args: argparse.Namespace) -> tuple[dict[str, str], list[str] | None] | None:
    """State URL, artifact folder and role names from nebula.yaml, when there is one; None after an error."""
    if not os.path.isfile(args.path):
        if args.path != "nebula.yaml":
            sys.stderr.write(f"{args.path}: no such file\n")
            return None
        return {}, None  # a container with settings from the environment only
    validation = validate_path(args.path)
    if not validation.ok or validation.spec is None:
        sys.stderr.write(
            render_text(validation.diagnostics, validation.document.sources, color=_color(sys.stderr, args.color))
        )
        return None
    spec = validation.spec
    defaults: dict[str, str] = {}
    try:
        defaults["DATABASE_URL"] = state_url(spec, args.path)
    except StateError as err:
        sys.stderr.write(f"{args.path}: {err}\n")
        return None
    artifacts = spec.platform.artifacts
    if isinstance(artifacts, str) and "://" not in artifacts:
        defaults["NEBULA_ARTIFACTS"] = os.path.join(os.path.dirname(os.path.abspath(args.path)), artifacts)
    if spec.environments and not os.environ.get("NEBULA_ENVIRONMENT"):
        defaults["NEBULA_ENVIRONMENT"] = next(iter(spec.environments))
    return defaults, sorted(spec.roles)


def _runtime() -> object | None:
    try:
        from nebula_runtime import cli as runtime_cli
    except ImportError as err:
        sys.stderr.write(f"the runtime is not installed ({err}): pip install 'nebula-gitops[runtime]'\n")
        return None
    return runtime_cli


def cmd_serve(args: argparse.Namespace) -> int:
    runtime_cli = _runtime()
    found = _runtime_defaults(args)
    if runtime_cli is None or found is None:
        return EXIT_USER
    code: int = runtime_cli.serve(args, found[0])  # type: ignore[attr-defined]
    return code


def cmd_run(args: argparse.Namespace) -> int:
    runtime_cli = _runtime()
    found = _runtime_defaults(args)
    if runtime_cli is None or found is None:
        return EXIT_USER

    def render(compilation: Any) -> str:
        return render_text(
            compilation.diagnostics, compilation.validation.document.sources, color=_color(sys.stderr, args.color)
        )

    code: int = runtime_cli.run(args, found[0], render)  # type: ignore[attr-defined]
    return code


def cmd_package(args: argparse.Namespace) -> int:
    from nebula_runtime import package

    code: int = package.run(args)
    return code


def cmd_keys(args: argparse.Namespace) -> int:
    runtime_cli = _runtime()
    found = _runtime_defaults(args)
    if runtime_cli is None or found is None:
        return EXIT_USER
    code: int = runtime_cli.keys(args, found[0], found[1])  # type: ignore[attr-defined]
    return code


def cmd_schema(args: argparse.Namespace) -> int:
    text = render_manifest_schema() if args.manifest else render_schema()
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as handle:
                current = handle.read()
        except OSError as err:
            sys.stderr.write(f"error: cannot read {args.check}: {err.strerror}\n")
            return EXIT_USER
        if current != text:
            flag = " --manifest" if args.manifest else ""
            sys.stderr.write(f"{args.check} is out of date; run 'nebula schema{flag} --out {args.check}'\n")
            return EXIT_USER
        sys.stdout.write(f"{args.check} is up to date\n")
        return EXIT_OK
    if args.out:
        write_text_atomic(args.out, text)
        sys.stdout.write(f"wrote {args.out}\n")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _project_name(directory: str) -> str:
    base = os.path.basename(os.path.abspath(directory)).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")[:40].strip("-")
    return name if name and name[0].isalpha() else "my-project"


def cmd_init(args: argparse.Namespace) -> int:
    target = os.path.join(args.directory, "nebula.yaml")
    if os.path.exists(target) and not args.force:
        sys.stderr.write(f"error: {target} exists; pass --force to overwrite it\n")
        return EXIT_USER
    name = args.name or _project_name(args.directory)
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name) or len(name) > 40:
        sys.stderr.write(f"error: '{name}' is not a valid project name; use lowercase letters, digits and '-'\n")
        return EXIT_USAGE
    template = resources.files("nebula_compile").joinpath("templates/init.yaml").read_text(encoding="utf-8")
    write_text_atomic(os.path.join(args.directory, "nebula.schema.json"), render_schema())
    write_text_atomic(target, template.replace("{{project}}", name))
    sys.stdout.write(f"wrote {target} and nebula.schema.json\nnext: edit it, then run 'nebula validate {target}'\n")
    return EXIT_OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="nebula.yaml", help="configuration file (default: ./nebula.yaml)")


def _environments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", action="append", metavar="ENV", help="only this environment (repeatable)")


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colored output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nebula",
        description="GitOps for machine learning: validate, compile and apply nebula.yaml.",
        epilog="exit codes: 0 ok, 1 invalid input, 2 bad usage, 3 internal error",
    )
    parser.add_argument("--version", action="version", version=f"nebula {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    validate = sub.add_parser(
        "validate",
        help="check nebula.yaml: schema, references and rules",
        description="Check a configuration and report every problem with file:line:col.",
    )
    _path(validate)
    validate.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    validate.add_argument(
        "--max-errors", type=_positive, default=50, metavar="N", help="show at most N diagnostics (default: 50)"
    )
    validate.add_argument("--warnings-as-errors", action="store_true", help="fail when there are warnings")
    validate.add_argument(
        "--no-policies", dest="policies", action="store_false", help="check the language only, not the policies"
    )
    _color_option(validate)
    validate.set_defaults(func=cmd_validate)

    compile_ = sub.add_parser(
        "compile",
        help="compile nebula.yaml into Kubernetes, monitoring, pipelines and images",
        description="Validate, then write each environment's output into OUT/ENV, atomically.",
    )
    _path(compile_)
    _environments(compile_)
    compile_.add_argument("--out", default="build", metavar="DIR", help="output folder (default: build)")
    compile_.add_argument(
        "--revision",
        default="auto",
        metavar="REV",
        help="commit recorded in provenance annotations: auto (the config's git HEAD), none, or a commit",
    )
    compile_.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    compile_.add_argument("--max-errors", type=_positive, default=50, metavar="N", help="show at most N diagnostics")
    _color_option(compile_)
    compile_.set_defaults(func=cmd_compile)

    plan = sub.add_parser(
        "plan",
        help="show what a change to nebula.yaml would change",
        description="Compile the config at --base and at --head (default: the working tree) through git, "
        "without checking anything out, and show the difference. Exit 0 no changes, 2 changes "
        "(with --detailed-exitcode), 1 an error or a mandatory policy violation.",
    )
    _path(plan)
    plan.add_argument("--base", required=True, metavar="REV", help="revision to compare against, e.g. origin/main")
    plan.add_argument("--head", metavar="REV", help="revision to plan (default: the working tree)")
    _environments(plan)
    plan.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="text, markdown (a PR comment) or json"
    )
    plan.add_argument("--out", metavar="FILE", help="also save the plan as JSON, for apply")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there are changes")
    _color_option(plan)
    plan.set_defaults(func=cmd_plan)

    apply = sub.add_parser(
        "apply",
        help="record the config in the state store and update the deploy branch",
        description="Apply the working tree, a revision (--ref, also for rollback) or a saved plan. "
        "One transaction per apply, under a lock; a saved plan is refused when the state moved since it was made.",
    )
    apply.add_argument(
        "path",
        nargs="?",
        default="nebula.yaml",
        help="configuration file (default: ./nebula.yaml), or a saved plan.json to apply",
    )
    apply.add_argument("--plan", metavar="PLAN_JSON", help="apply this saved plan (from nebula plan --out)")
    apply.add_argument("--ref", metavar="REV", help="apply the config at this revision (an older one rolls back)")
    _environments(apply)
    apply.add_argument(
        "--lock-timeout", type=float, default=60.0, metavar="SECONDS", help="wait this long for the lock"
    )
    apply.add_argument(
        "--no-deploy-branch", dest="deploy_branch", action="store_false", help="do not commit to the deploy branch"
    )
    _color_option(apply)
    apply.set_defaults(func=cmd_apply)

    drift = sub.add_parser(
        "drift",
        help="compare the state store with the config",
        description="What the state store holds that the config does not say, and the reverse.",
    )
    _path(drift)
    drift.add_argument("--ref", metavar="REV", help="compare with the config at this revision")
    _environments(drift)
    drift.add_argument("--format", choices=("text", "json"), default="text")
    drift.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when there is drift")
    _color_option(drift)
    drift.set_defaults(func=cmd_drift)

    policy = sub.add_parser(
        "policy",
        help="check the compiled platform against policies",
        description="Policies from policies/ (built in) and the config repository's policies/ folder.",
    )
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    policy_sub.required = True
    policy_check = policy_sub.add_parser("check", help="check every environment; exit 1 on a mandatory violation")
    policy_check.add_argument(
        "path", nargs="?", default="nebula.yaml", help="configuration file (default: ./nebula.yaml)"
    )
    _environments(policy_check)
    policy_check.add_argument(
        "--format", choices=("text", "json", "sarif", "junit"), default="text", help="output format (default: text)"
    )
    policy_check.add_argument("--out", metavar="FILE", help="write the report to FILE")
    _color_option(policy_check)
    policy_check.set_defaults(func=cmd_policy_check)
    policy_list = policy_sub.add_parser("list", help="list the policies and their default levels")
    policy_list.add_argument(
        "path", nargs="?", default="nebula.yaml", help="configuration file (default: ./nebula.yaml)"
    )
    policy_list.set_defaults(func=cmd_policy_list)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of nebula.yaml (or of manifest.json)",
        description="Print or write the JSON Schema that editors use to complete and check nebula.yaml, "
        "or with --manifest the schema of the compiled manifest.json.",
    )
    schema.add_argument("--manifest", action="store_true", help="the schema of manifest.json instead of nebula.yaml")
    group = schema.add_mutually_exclusive_group()
    group.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    group.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the current schema")
    schema.set_defaults(func=cmd_schema)

    init = sub.add_parser(
        "init",
        help="write a small working nebula.yaml",
        description="Write a small working nebula.yaml (and its JSON Schema) into DIRECTORY.",
    )
    init.add_argument("directory", nargs="?", default=".", help="where to write it (default: .)")
    init.add_argument("--name", help="project name (default: the directory's name)")
    init.add_argument("--force", action="store_true", help="overwrite an existing nebula.yaml")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser(
        "serve",
        help="run the runtime: the REST and GraphQL API on :8080",
        description="Serve the API from the state `nebula apply` reconciled, under gunicorn. "
        "Settings come from the environment and .env (NEBULA_API_KEY, DATABASE_URL, ...), "
        "then from nebula.yaml (platform.state, platform.artifacts).",
    )
    _path(serve)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 in containers)"
    )
    serve.add_argument("--port", type=_positive, default=8080, help="port (default: 8080)")
    serve.add_argument("--workers", type=_positive, default=2, help="worker processes (default: 2)")
    serve.add_argument("--threads", type=_positive, default=8, help="threads per worker (default: 8)")
    serve.add_argument(
        "--env", help="environment to serve (default: NEBULA_ENVIRONMENT, else the first in nebula.yaml)"
    )
    _color_option(serve)
    serve.set_defaults(func=cmd_serve)

    run = sub.add_parser(
        "run",
        help="run a project's ML pipeline here: ingest, checks, preprocessing, training, gates, registry",
        description="The stages the compiled Jobs run, on this machine, against the state store and artifact "
        "store of nebula.yaml (or DATABASE_URL / NEBULA_ARTIFACTS). Exit 0 when every model registered, "
        "1 when a check or a gate failed.",
    )
    run.add_argument("project", help="the project whose pipeline runs")
    run.add_argument("path", nargs="?", default="nebula.yaml", help="configuration file (default: ./nebula.yaml)")
    run.add_argument("--model", action="append", metavar="MODEL", help="only this model (repeatable)")
    run.add_argument(
        "--data", action="append", metavar="DATASET=PATH", help="this file becomes the dataset's next version"
    )
    run.add_argument("--env", help="environment (default: NEBULA_ENVIRONMENT, else the first in nebula.yaml)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or stage log; the summary only")
    _color_option(run)
    run.set_defaults(func=cmd_run)

    from nebula_runtime import package as packaging  # stdlib and the compiler only; docker is imported to build

    package = sub.add_parser(
        "package",
        help="build a model's container image from its compiled build context",
        description="Build OUT/ENV/images/<project>-<model>/ (from `nebula compile`) with Docker, or with "
        "buildah where no Docker engine runs, tagged as the compiled Deployments pin it. "
        "Exit 0 built, 1 not compiled or the build failed, 2 bad usage.",
    )
    packaging.add_arguments(package)
    package.set_defaults(func=cmd_package)

    keys = sub.add_parser(
        "keys", help="issue, list and revoke API keys", description="API keys bound to roles of nebula.yaml."
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys_sub.required = True
    keys_create = keys_sub.add_parser("create", help="issue a key; it is printed once, only its hash is stored")
    keys_create.add_argument("--role", required=True, help="a role of nebula.yaml")
    keys_create.add_argument("--name", default="api", help="a label for the key (default: api)")
    keys_create.add_argument(
        "--project", action="append", metavar="PROJECT", help="limit the key to this project (repeatable)"
    )
    keys_create.add_argument(
        "--expires-in-days", type=_positive, metavar="DAYS", help="the key stops working after this"
    )
    keys_create.add_argument(
        "--env", help="the environment whose runtime accepts the key (default: NEBULA_ENVIRONMENT, else the first)"
    )
    keys_list = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    keys_revoke.add_argument("key_id", metavar="ID")
    for sub_parser in (keys_create, keys_list, keys_revoke):
        _path(sub_parser)
        _color_option(sub_parser)
    keys.set_defaults(func=cmd_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if isinstance(getattr(args, "path", None), str) and os.path.isdir(args.path):
        args.path = os.path.join(args.path, "nebula.yaml")  # a folder means the nebula.yaml in it
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug: say so, and show where
        sys.stderr.write(
            "internal error: this is a bug in nebula, not in your configuration; "
            "please report it with the traceback below\n"
        )
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
