"""Rendering diagnostics for people (a code frame with a caret) and for machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from nebula_compile.diagnostics import Diagnostic, Severity, format_path, sorted_diagnostics

_COLORS = {"error": "\033[1;31m", "warning": "\033[1;33m", "dim": "\033[2m", "bold": "\033[1m", "reset": "\033[0m"}


class _Paint:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        return f"{_COLORS[style]}{text}{_COLORS['reset']}" if self.color else text


def _frame(diagnostic: Diagnostic, sources: Mapping[str, str], paint: _Paint) -> list[str]:
    span = diagnostic.span
    if span is None or span.file not in sources:
        return []
    lines = sources[span.file].splitlines()
    if not 1 <= span.line <= len(lines):
        return []
    first = max(1, span.line - 1)
    width = len(str(span.line))
    out = [f"{' ' * width} {paint('|', 'dim')}"]
    for number in range(first, span.line + 1):
        text = lines[number - 1].replace("\t", " ")
        out.append(f"{paint(str(number).rjust(width), 'dim')} {paint('|', 'dim')} {text}")
    line_text = lines[span.line - 1]
    end = span.end_column if span.end_line == span.line else len(line_text) + 1
    length = max(1, min(end, len(line_text) + 1) - span.column)
    caret = " " * (span.column - 1) + "^" * length
    out.append(f"{' ' * width} {paint('|', 'dim')} {paint(caret, diagnostic.severity.value)}")
    return out


def render_text(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, str],
    *,
    color: bool = False,
    limit: int = 50,
) -> str:
    """rustc/dbt-style report: header, location, code frame, hint; capped at `limit` errors."""
    paint = _Paint(color)
    ordered = sorted_diagnostics(diagnostics)
    blocks: list[str] = []
    for diagnostic in ordered[:limit]:
        severity = diagnostic.severity.value
        lines = [f"{paint(f'{severity}[{diagnostic.code}]', severity)}{paint(': ' + diagnostic.message, 'bold')}"]
        if diagnostic.span is not None:
            lines.append(f"  {paint('-->', 'dim')} {diagnostic.span}")
        lines.extend(_frame(diagnostic, sources, paint))
        if diagnostic.hint:
            lines.append(f"  = hint: {diagnostic.hint}")
        for note, span in diagnostic.notes:
            lines.append(f"  = note: {note} at {span}")
        blocks.append("\n".join(lines))
    if len(ordered) > limit:
        blocks.append(f"... and {len(ordered) - limit} more")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = len(diagnostics) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts)


def as_dict(diagnostic: Diagnostic) -> dict[str, object]:
    span = diagnostic.span
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "end_line": span.end_line if span else None,
        "end_column": span.end_column if span else None,
        "path": format_path(diagnostic.path) or None,
        "notes": [
            {"message": note, "file": s.file, "line": s.line, "column": s.column} for note, s in diagnostic.notes
        ],
    }


def render_json(diagnostics: Sequence[Diagnostic], **extra: object) -> str:
    ordered = sorted_diagnostics(diagnostics)
    errors = sum(1 for d in ordered if d.is_error)
    document = {
        **extra,
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(ordered) - errors,
        "diagnostics": [as_dict(d) for d in ordered],
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
