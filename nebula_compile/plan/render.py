"""Rendering a Plan: text for terminals, markdown for pull-request comments, JSON for tools."""

from __future__ import annotations

import json
from typing import Any

from nebula_compile.plan.diff import FieldChange, ResourceChange
from nebula_compile.plan.plan import Plan

COMMENT_LIMIT = 65_000
"""GitHub caps a comment at 65,536 characters; leave room for the note on what was cut."""

_SYMBOL = {"create": "+", "update": "~", "delete": "-"}
_COLOR = {"create": "\033[32m", "update": "\033[33m", "delete": "\033[31m"}
_RESET = "\033[0m"


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _field(change: FieldChange) -> str:
    if change.before is None:
        return f"{change.path}: {_value(change.after)}"
    if change.after is None:
        return f"{change.path}: {_value(change.before)} -> (removed)"
    return f"{change.path}: {_value(change.before)} -> {_value(change.after)}"


def _headline(plan: Plan) -> str:
    counts = plan.counts
    if not plan.changed:
        return "No changes. The platform matches the configuration."
    return f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete."


def render_plan_text(plan: Plan, *, color: bool = False) -> str:
    lines = [f"nebula plan: {plan.base_revision or '(nothing)'} -> {plan.head_revision or 'working tree'}", ""]
    for env in plan.environments:
        if not env.resources and not env.files:
            lines.append(f"{env.environment}: no changes")
            continue
        lines.append(f"{env.environment}:")
        for title, items in env.summary.sections():
            for item in items:
                lines.append(f"  {title}: {item}")
        for change in env.resources:
            head = f"  {_SYMBOL[change.action]} {change.action} {change.id}"
            if change.source:
                head += f"  ({change.source})"
            lines.append(f"{_COLOR[change.action]}{head}{_RESET}" if color else head)
            if change.action == "update":
                lines.extend(f"      {_field(f)}" for f in change.fields)
        lines.append(f"  rendered files: {len(env.files)} changed")
        lines.append("")
    for diagnostic in plan.policy:
        where = f"{diagnostic.span}: " if diagnostic.span else ""
        lines.append(f"{diagnostic.severity.value}[{diagnostic.code}]: {where}{diagnostic.message}")
    lines.append(_headline(plan))
    return "\n".join(lines) + "\n"


def _resource_details(change: ResourceChange, files: list[str]) -> str:
    body = [f"<details><summary><code>{_SYMBOL[change.action]} {change.id}</code>"]
    if change.source:
        body[0] += f" ({change.source})"
    body[0] += "</summary>\n"
    if change.fields and change.action == "update":
        body.append("\n| field | before | after |\n|---|---|---|")
        for f in change.fields:
            body.append(f"| `{f.path}` | `{_value(f.before)}` | `{_value(f.after)}` |")
    if files:
        body.append("\n```diff\n" + "".join(files).rstrip("\n") + "\n```")
    body.append("\n</details>\n")
    return "\n".join(body)


def render_plan_markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    """A pull-request comment: summary table, policy results, then collapsible details per resource."""
    head = ["## Nebula plan", "", f"**{_headline(plan)}**", ""]
    head.append("| environment | create | update | delete | rendered files |")
    head.append("|---|---:|---:|---:|---:|")
    for env in plan.environments:
        c = env.counts
        head.append(f"| {env.environment} | {c['create']} | {c['update']} | {c['delete']} | {len(env.files)} |")
    head.append("")
    summary_lines = [
        f"- **{title}**: {item}"
        for env in plan.environments
        for title, items in env.summary.sections()
        for item in items
    ]
    if summary_lines:
        head += ["### What changes for the models", "", *summary_lines, ""]
    if plan.policy:
        head += ["### Policies", "", "| level | policy | where |", "|---|---|---|"]
        for d in plan.policy:
            level = "mandatory" if d.is_error else "advisory"
            head.append(f"| {level} | {d.message} | `{d.span}` |" if d.span else f"| {level} | {d.message} | |")
        head.append("")
    else:
        head += ["### Policies", "", "All policies pass.", ""]
    text = "\n".join(head)
    details: list[str] = []
    for env in plan.environments:
        by_resource: dict[str, list[str]] = {}
        for file in env.files:
            by_resource.setdefault(file.path, []).append(file.diff)
        if env.resources:
            details.append(f"### {env.environment}\n")
        for change in env.resources:
            related = [d for path, diffs in by_resource.items() if _belongs(path, change) for d in diffs]
            details.append(_resource_details(change, related))
    shown = 0
    for block in details:
        if len(text) + len(block) + 200 > limit:
            break
        text += "\n" + block
        shown += 1
    if shown < len(details):
        left = len(details) - shown
        text += f"\n_{left} more section(s) not shown to fit a comment; the full plan is in the JSON artifact (`nebula plan --out plan.json`)._\n"
    return text


def _belongs(path: str, change: ResourceChange) -> bool:
    """Whether a rendered file is (mostly) the output of this resource."""
    project, name = change.project, change.name
    if project is None:
        return False
    return path in (
        f"kubernetes/{project}/deployment-{name}.yaml",
        f"kubernetes/{project}/model-{name}.yaml",
        f"kubernetes/{project}/notebook-{name}.yaml",
        f"monitoring/grafana/{project}-{name}.json",
    )


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
