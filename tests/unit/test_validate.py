"""validate: pydantic's errors become pointed diagnostics in the language's words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nebula_compile.spec.models import Spec
from nebula_compile.spec.validate import keys_at
from tests.unit.helpers import PROJECT, check, errors


def test_the_base_config_is_valid() -> None:
    validation = check(PROJECT)
    assert validation.ok, validation.diagnostics
    assert validation.spec is not None
    assert validation.spec.projects["churn"].datasets["customers"].columns["charges"].type == "float"


def test_defaults_keep_the_common_case_short() -> None:
    validation = check(
        """\
        projects:
          p:
            datasets: {d: {format: csv}}
            models: {m: {algorithm: kmeans, dataset: d}}
            deployments: {api: {model: m}}
        """
    )
    assert validation.ok, validation.diagnostics
    spec = validation.spec
    assert spec is not None
    assert list(spec.environments) == ["dev"]
    assert spec.platform.state == "sqlite:///.nebula/state.db"
    variants = spec.projects["p"].deployments["api"].effective_variants()
    assert {name: (v.model, v.version, v.traffic) for name, v in variants.items()} == {"main": ("m", "champion", 100)}


def test_unknown_key_names_the_closest_key() -> None:
    validation = check(PROJECT.replace("        target: churned\n      rf:", "        targt: churned\n      rf:"))
    (diagnostic,) = [d for d in validation.diagnostics if d.code == "NEB201"]
    assert diagnostic.message == "unknown key 'targt' in model 'lr'"
    assert diagnostic.hint == "did you mean 'target'?"
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (15, 9)


def test_missing_key() -> None:
    text = PROJECT.replace("        algorithm: logistic_regression\n", "")
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB202"
    assert "'algorithm'" in diagnostic.message
    assert diagnostic.span is not None and diagnostic.span.line == 12


def test_enum_typo() -> None:
    validation = check(PROJECT.replace("logistic_regression", "logistic_regresion"))
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB205"
    assert diagnostic.hint == "did you mean 'logistic_regression'?"


def test_column_short_form_typo() -> None:
    validation = check(PROJECT.replace("charges: float", "charges: flaot"))
    (diagnostic,) = validation.diagnostics
    assert (diagnostic.code, diagnostic.hint) == ("NEB205", "did you mean 'float'?")
    assert diagnostic.span is not None and diagnostic.span.line == 8


def test_unknown_connection_type() -> None:
    assert errors("connections:\n  db: {type: postgress, host: h, database: d}\n") == [("NEB205", 2)]


def test_literal_secret_is_refused_with_the_fix() -> None:
    validation = check("connections:\n  db:\n    type: mysql\n    host: h\n    database: d\n    password: hunter2\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB204"
    assert diagnostic.span is not None and diagnostic.span.line == 6
    assert diagnostic.hint is not None and "{secret: NAME}" in diagnostic.hint and "{env: VAR}" in diagnostic.hint
    assert "hunter2" not in diagnostic.message + diagnostic.hint


def test_secret_references_are_accepted() -> None:
    validation = check(
        "connections:\n"
        "  a: {type: mysql, host: h, database: d, password: {secret: db-pass, key: pw}}\n"
        "  b: {type: postgresql, host: h, database: d, password: {env: PGPASSWORD}}\n"
    )
    assert validation.ok, validation.diagnostics


def test_formats_get_hints() -> None:
    validation = check(
        """\
        projects:
          p:
            models:
              m: {algorithm: svm, dataset: d, resources: {cpu: lots, memory: 4GB}, gates: ["auc > > 1"]}
            deployments:
              api:
                model: m
                monitoring: {alerts: {slow: {metric: latency, threshold: 1, for: 5 minutes}}}
        """
    )
    found = {(d.code, d.span.line if d.span else 0) for d in validation.diagnostics}
    assert found == {("NEB203", 4), ("NEB203", 8)}
    assert len(validation.diagnostics) == 4
    assert all(d.hint for d in validation.diagnostics)


def test_wrong_type_says_what_was_given() -> None:
    validation = check("projects:\n  p:\n    deployments:\n      api: {model: m, replicas: two}\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB203"
    assert "string 'two'" in diagnostic.message


def test_strict_types_do_not_coerce_strings() -> None:
    assert errors("projects:\n  p:\n    deployments:\n      api: {model: m, replicas: '2'}\n") == [("NEB203", 4)]


def test_mapping_expected() -> None:
    validation = check("projects:\n  p: [a, b]\n")
    (diagnostic,) = validation.diagnostics
    assert "must be a mapping, not a list" in diagnostic.message


def test_every_schema_error_is_reported_at_once() -> None:
    validation = check(
        "platform: {nam: x}\nprojects:\n  p: {descripton: y}\nroles:\n  r: [projects:reed]\nbindings:\n  - {role: r}\n"
    )
    assert sorted(d.code for d in validation.diagnostics) == ["NEB201", "NEB201", "NEB202", "NEB203"]


def test_keys_at_follows_unions_and_tags() -> None:
    assert "replicas" in keys_at(("projects", "p", "deployments", "d"))
    assert "sslmode" in keys_at(("connections", "c", "postgresql"))
    assert "unique" in keys_at(("projects", "p", "datasets", "d", "columns", "c", "<column>"))
    assert keys_at(("nope",)) == []


def test_spec_is_frozen() -> None:
    spec = Spec.model_validate({})
    with pytest.raises(ValidationError, match="frozen"):
        spec.platform.name = "x"  # type: ignore[misc]


def test_missing_key_of_a_nested_block_names_the_block() -> None:
    validation = check(
        "projects:\n  p:\n    deployments:\n      api:\n        model: m\n        autoscaling:\n          min: 2\n"
    )
    (diagnostic,) = validation.diagnostics
    assert diagnostic.message == "'autoscaling' of deployment 'api' is missing required key 'max'"
    assert diagnostic.span is not None and diagnostic.span.line == 6


def test_missing_connection_type_lists_the_types() -> None:
    validation = check("connections:\n  wh:\n    host: h\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB202"
    assert diagnostic.hint is not None and "'postgresql'" in diagnostic.hint and "'gcs'" in diagnostic.hint


def test_unsupported_version_lists_the_supported_one() -> None:
    validation = check("version: 2\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB205"
    assert diagnostic.hint == "one of '1'"


def test_pattern_mismatch_says_the_expected_form() -> None:
    validation = check("roles:\n  r: [projects:read]\nbindings:\n  - {subject: alice, role: r}\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.message == "string 'alice' is not a valid 'subject' for binding #1"
    assert diagnostic.hint == "write user:EMAIL, group:NAME or serviceaccount:NAME"


def test_numeric_names_are_names() -> None:
    text = PROJECT.replace("          one:", "          1:").replace("          two:", "          2:")
    assert check(text).ok
