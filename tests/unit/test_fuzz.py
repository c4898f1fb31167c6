"""Property-based fuzzing: whatever the input, only diagnostics come out.

Three generators: arbitrary text, YAML built from the language's own vocabulary
(so the validator's deeper passes are reached), and random edits of the
repository's demo config. The property: `validate_text` returns, never raises,
and every error carries a code and a position.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula_compile.api import Validation, validate_text

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = (ROOT / "nebula.yaml").read_text(encoding="utf-8")
CODE = re.compile(r"^NEB[1-6][0-9]{2}$")

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

WORDS = [
    "version", "include", "platform", "environments", "connections", "projects", "roles", "bindings", "auth",
    "datasets", "models", "deployments", "preprocessing", "notebooks", "algorithm", "task", "dataset", "target",
    "variants", "traffic", "model", "replicas", "autoscaling", "min", "max", "monitoring", "alerts", "drift",
    "type", "password", "secret", "env", "columns", "source", "format", "gates", "metrics", "tuning", "space",
    "overrides", "schedule", "retraining", "input", "features", "transform", "role", "subject", "resources",
    "cpu", "memory", "gpu", "svm", "kmeans", "postgresql", "s3", "csv", "churn", "dev", "prod", "api", "m", "d",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(WORDS), children, max_size=5),
    ),
    max_leaves=40,
)


def assert_only_diagnostics(validation: Validation) -> None:
    assert isinstance(validation, Validation)
    for diagnostic in validation.diagnostics:
        assert CODE.match(diagnostic.code), diagnostic
        assert diagnostic.message
        if diagnostic.is_error and diagnostic.code not in ("NEB100",):
            assert diagnostic.span is not None, diagnostic


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    assert_only_diagnostics(validate_text(text))


@FUZZ
@given(st.dictionaries(st.sampled_from(WORDS), values, max_size=6))
def test_yaml_in_the_languages_vocabulary(document: dict[str, object]) -> None:
    assert_only_diagnostics(validate_text(yaml.safe_dump(document, sort_keys=False)))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "replace", "indent"]), st.integers(0, 10_000), st.text(max_size=8)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_edits_of_the_demo_config(edits: list[tuple[str, int, str]]) -> None:
    lines = DEMO.splitlines()
    for action, position, text in edits:
        index = position % len(lines)
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = "  " + lines[index]
        else:
            line = lines[index]
            cut = position % (len(line) + 1)
            lines[index] = line[:cut] + text + line[cut + len(text) :]
    assert_only_diagnostics(validate_text("\n".join(lines) + "\n"))
