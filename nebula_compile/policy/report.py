"""Policy results for people and for tools: text (via render.py), JSON, SARIF 2.1.0, JUnit XML."""

from __future__ import annotations

import json
import os
from xml.sax.saxutils import escape, quoteattr

from nebula_compile import __version__
from nebula_compile.policy.evaluate import PolicyReport, Result
from nebula_compile.render import as_dict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_policy_json(report: PolicyReport) -> str:
    results = [
        {
            "policy": r.policy.name,
            "environment": r.environment,
            "level": r.level,
            "passed": not r.violations,
            "violations": [as_dict(v) for v in r.violations],
        }
        for r in report.results
    ]
    other = [as_dict(d) for d in report.diagnostics if d.code not in ("NEB401", "NEB402")]
    return json.dumps({"failed": report.failed, "results": results, "problems": other}, indent=2) + "\n"


def render_sarif(report: PolicyReport, repository_root: str | None = None) -> str:
    """SARIF for code scanning (GitHub uploads it with github/codeql-action/upload-sarif).

    Paths are made relative to `repository_root`, as code scanning expects, whatever
    the working directory was.
    """
    policies = sorted({r.policy.name: r.policy for r in report.results}.values(), key=lambda p: p.name)
    rules = [
        {
            "id": p.name,
            "name": p.name,
            "shortDescription": {"text": p.description or p.name},
            "defaultConfiguration": {"level": "error" if p.level == "mandatory" else "warning"},
        }
        for p in policies
    ]
    results = []
    for result in report.results:
        for violation in result.violations:
            entry: dict[str, object] = {
                "ruleId": result.policy.name,
                "level": "error" if violation.is_error else "warning",
                "message": {"text": violation.message + (f" ({violation.hint})" if violation.hint else "")},
                "properties": {"environment": result.environment},
            }
            if violation.span is not None:
                entry["locations"] = [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(violation.span.file, repository_root)},
                            "region": {"startLine": violation.span.line, "startColumn": violation.span.column},
                        }
                    }
                ]
            results.append(entry)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "nebula", "version": __version__, "rules": rules}},
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _uri(file: str, root: str | None) -> str:
    if root is None:
        return file.replace(os.sep, "/")
    return os.path.relpath(os.path.abspath(file), root).replace(os.sep, "/")


def render_junit(report: PolicyReport) -> str:
    """JUnit XML: a test suite per environment, a test case per policy."""
    by_env: dict[str, list[Result]] = {}
    for result in report.results:
        by_env.setdefault(result.environment, []).append(result)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<testsuites name="nebula policy check">']
    for environment, results in by_env.items():
        failures = sum(1 for r in results if r.violations and r.level == "mandatory")
        skipped = sum(1 for r in results if r.level == "disabled")
        lines.append(
            f'  <testsuite name={quoteattr(environment)} tests="{len(results)}" failures="{failures}" skipped="{skipped}">'
        )
        for r in results:
            lines.append(
                f"    <testcase classname={quoteattr('policy.' + environment)} name={quoteattr(r.policy.name)}>"
            )
            text = "\n".join(f"{v.span or '?'}: {v.message}" for v in r.violations)
            if r.level == "disabled":
                lines.append('      <skipped message="disabled"/>')
            elif r.violations and r.level == "mandatory":
                count = quoteattr(f"{len(r.violations)} violation(s)")
                lines.append(f"      <failure message={count}>{escape(text)}</failure>")
            elif r.violations:
                lines.append(f"      <system-out>{escape('advisory: ' + text)}</system-out>")
            lines.append("    </testcase>")
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"
