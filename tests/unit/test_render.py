"""render: code frames for people, JSON for machines."""

from __future__ import annotations

import json

from nebula_compile.diagnostics import Diagnostic, Severity, Span, did_you_mean, format_path
from nebula_compile.render import render_json, render_text, summary
from tests.unit.helpers import PROJECT, check

SOURCES = {"nebula.yaml": "a: 1\nprojects:\n  churn:\n    replica: 2\n"}


def test_code_frame_with_caret_and_hint() -> None:
    diagnostic = Diagnostic(
        "NEB201", "unknown key 'replica'", Span("nebula.yaml", 4, 5, 4, 12), "did you mean 'replicas'?"
    )
    text = render_text([diagnostic], SOURCES)
    assert text == (
        "error[NEB201]: unknown key 'replica'\n"
        "  --> nebula.yaml:4:5\n"
        "  |\n"
        "3 |   churn:\n"
        "4 |     replica: 2\n"
        "  |     ^^^^^^^\n"
        "  = hint: did you mean 'replicas'?\n"
    )


def test_color_only_when_asked() -> None:
    diagnostic = Diagnostic("NEB201", "x", Span("nebula.yaml", 1, 1, 1, 2))
    assert "\033[" not in render_text([diagnostic], SOURCES)
    assert "\033[1;31m" in render_text([diagnostic], SOURCES, color=True)


def test_cap_with_and_n_more() -> None:
    diagnostics = [Diagnostic("NEB201", f"e{i}", Span("nebula.yaml", 1, 1, 1, 2)) for i in range(7)]
    text = render_text(diagnostics, SOURCES, limit=5)
    assert text.count("error[NEB201]") == 5
    assert text.rstrip().endswith("... and 2 more")


def test_sorted_by_position() -> None:
    late = Diagnostic("NEB301", "late", Span("nebula.yaml", 4, 1, 4, 2))
    early = Diagnostic("NEB201", "early", Span("nebula.yaml", 2, 1, 2, 2))
    assert render_text([late, early], SOURCES).index("early") < render_text([late, early], SOURCES).index("late")


def test_json_output_for_a_real_validation() -> None:
    validation = check(PROJECT.replace("traffic: 30", "traffic: 20"))
    document = json.loads(render_json(validation.diagnostics, file="nebula.yaml"))
    assert document["valid"] is False and document["errors"] == 1 and document["warnings"] == 0
    (entry,) = document["diagnostics"]
    assert entry["code"] == "NEB211"
    assert entry["line"] == 23 and entry["file"] == "nebula.yaml"
    assert entry["path"] == "projects.churn.deployments.api.variants"


def test_summary_and_helpers() -> None:
    warning = Diagnostic("NEB225", "w", severity=Severity.WARNING)
    error = Diagnostic("NEB201", "e")
    assert summary([error, error, warning]) == "2 errors, 1 warning"
    assert did_you_mean("replica", ["replicas", "resources"]) == "did you mean 'replicas'?"
    assert did_you_mean("zzz", ["replicas"]) is None
    assert format_path(("projects", "p", "gates", 0)) == "projects.p.gates[0]"
