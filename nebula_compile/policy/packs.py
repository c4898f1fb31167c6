"""Policy packs: the built-in one in `policies/` and a config repository's own `policies/*.yaml`.

A pack is data, checked when it is loaded: a policy names what it applies to and
either a JSON Schema assertion or one of the built-in cross-resource checks. A
broken pack is a diagnostic (NEB403) that points at its line, like any config.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import jsonschema

from nebula_compile.diagnostics import Diagnostic, Span
from nebula_compile.source.parse import parse
from nebula_compile.source.sourcemap import Merged, SourceMap

Level = Literal["advisory", "mandatory", "disabled"]
LEVELS = ("advisory", "mandatory", "disabled")


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    level: Level
    message: str
    hint: str | None = None
    target: Literal["graph", "kubernetes"] = "graph"
    kinds: tuple[str, ...] = ()
    environment: dict[str, Any] | None = None
    when: dict[str, Any] | None = None
    check_schema: dict[str, Any] | None = None
    check: str | None = None
    path: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    source: Span | None = None
    pack: str = "builtin"


def _builtin_text() -> tuple[str, str]:
    # policy/builtin.yaml links to policies/builtin.yaml, so a built wheel carries the pack as package data
    text = resources.files("nebula_compile.policy").joinpath("builtin.yaml").read_text(encoding="utf-8")
    return "policies/builtin.yaml", text


def _problem(
    file: str, sourcemap: SourceMap | None, path: tuple[str | int, ...], message: str, hint: str | None = None
) -> Diagnostic:
    span = sourcemap.span(path) if sourcemap else Span(file, 1, 1, 1, 1)
    return Diagnostic("NEB403", message, span, hint, path=path)


def _read_pack(file: str, text: str, known_checks: set[str]) -> tuple[list[Policy], list[Diagnostic]]:
    parsed = parse(text, file)
    if parsed.diagnostics:
        return [], list(parsed.diagnostics)
    sourcemap = SourceMap(Merged(file, parsed.node)) if parsed.node is not None else None
    value = parsed.value
    if not isinstance(value, dict) or not isinstance(value.get("policies"), list):
        return [], [_problem(file, sourcemap, (), "a policy pack is a mapping with a 'policies:' list")]
    policies: list[Policy] = []
    problems: list[Diagnostic] = []
    allowed = {
        "name",
        "description",
        "level",
        "match",
        "when",
        "assert",
        "check",
        "path",
        "message",
        "hint",
        "parameters",
    }
    for index, item in enumerate(value["policies"]):
        where: tuple[str | int, ...] = ("policies", index)
        if not isinstance(item, dict):
            problems.append(_problem(file, sourcemap, where, "a policy is a mapping"))
            continue
        unknown = sorted(set(item) - allowed)
        if unknown:
            problems.append(
                _problem(
                    file,
                    sourcemap,
                    (*where, unknown[0]),
                    f"unknown key '{unknown[0]}' in a policy",
                    f"allowed: {', '.join(sorted(allowed))}",
                )
            )
            continue
        name, level, message = item.get("name"), item.get("level", "mandatory"), item.get("message")
        if not isinstance(name, str) or not isinstance(message, str):
            problems.append(_problem(file, sourcemap, where, "a policy needs a 'name' and a 'message'"))
            continue
        if level not in LEVELS:
            problems.append(
                _problem(file, sourcemap, (*where, "level"), f"level '{level}' is not one of {', '.join(LEVELS)}")
            )
            continue
        check = item.get("check")
        schema = item.get("assert")
        if (check is None) == (schema is None):
            problems.append(
                _problem(
                    file, sourcemap, where, f"policy '{name}' needs exactly one of 'assert' (a JSON Schema) or 'check'"
                )
            )
            continue
        if check is not None and check not in known_checks:
            problems.append(
                _problem(
                    file,
                    sourcemap,
                    (*where, "check"),
                    f"unknown check '{check}'",
                    f"built-in checks: {', '.join(sorted(known_checks))}",
                )
            )
            continue
        match = item.get("match") or {}
        kinds = match.get("kind", ())
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        bad_schema = False
        for key, candidate in (("assert", schema), ("when", item.get("when")), ("match", match.get("environment"))):
            if candidate is None:
                continue
            try:
                jsonschema.Draft202012Validator.check_schema(candidate)
            except jsonschema.SchemaError as err:
                problems.append(
                    _problem(
                        file,
                        sourcemap,
                        (*where, key),
                        f"'{key}' of policy '{name}' is not a valid JSON Schema: {err.message}",
                    )
                )
                bad_schema = True
        if bad_schema:
            continue
        if schema is not None and not kinds:
            problems.append(
                _problem(
                    file,
                    sourcemap,
                    (*where, "match"),
                    f"policy '{name}' must say which kinds it matches",
                    "e.g. match: {target: graph, kind: deployment}",
                )
            )
            continue
        span = sourcemap.span(where) if sourcemap else None
        policies.append(
            Policy(
                name=name,
                description=str(item.get("description", "")),
                level=level,
                message=message,
                hint=item.get("hint"),
                target=match.get("target", "graph"),
                kinds=kinds,
                environment=match.get("environment"),
                when=item.get("when"),
                check_schema=schema,
                check=check,
                path=item.get("path"),
                parameters=dict(item.get("parameters") or {}),
                source=span,
                pack=file,
            )
        )
    return policies, problems


def load_packs(config_root: str | None, known_checks: set[str]) -> tuple[list[Policy], list[Diagnostic]]:
    """The built-in pack, then the config repository's `policies/*.yaml`; a later name replaces an earlier one."""
    file, text = _builtin_text()
    policies, problems = _read_pack(file, text, known_checks)
    if config_root is not None:
        for path in sorted(glob.glob(os.path.join(glob.escape(config_root), "policies", "*.yaml"))):
            with open(path, encoding="utf-8") as handle:
                more, issues = _read_pack(path, handle.read(), known_checks)
            policies.extend(more)
            problems.extend(issues)
    by_name: dict[str, Policy] = {}
    for policy in policies:
        by_name[policy.name] = policy
    return list(by_name.values()), problems
