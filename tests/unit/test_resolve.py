"""resolve: references bound within their scope, cycles found, columns tracked."""

from __future__ import annotations

from nebula_compile.resolve.resolve import parse_expression
from tests.unit.helpers import PROJECT, check, errors


def test_unknown_dataset_gets_a_hint() -> None:
    validation = check(
        PROJECT.replace(
            "dataset: customers\n        target: churned\n      rf",
            "dataset: customer\n        target: churned\n      rf",
        )
    )
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB301"
    assert diagnostic.message == "unknown dataset or preprocessing step 'customer' in project 'churn'"
    assert diagnostic.hint == "did you mean 'customers'?"
    assert diagnostic.span is not None and diagnostic.span.line == 14


def test_references_do_not_cross_projects() -> None:
    text = PROJECT + "  other:\n    deployments:\n      api2: {model: lr}\n"
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.message == "unknown model 'lr' in project 'other'"
    assert diagnostic.hint == "no model is declared in project 'other'"


def test_all_reference_kinds_are_reported_together() -> None:
    text = (
        PROJECT.replace("model: rf, traffic: 30", "model: rff, traffic: 30")
        + "roles:\n  viewer: [projects:read]\n"
        + "bindings:\n  - {subject: group:a, role: veiwer, projects: [chrun]}\n"
        + "auth:\n  api_keys:\n    keys:\n      ci: {role: admin, key: {env: KEY}}\n"
    )
    assert errors(text) == [("NEB301", 25), ("NEB301", 29), ("NEB301", 29), ("NEB301", 33)]


def test_target_and_features_must_be_declared_columns() -> None:
    text = PROJECT.replace(
        "        target: churned\n      rf:", "        target: churn\n        features: [tenure, age]\n      rf:"
    )
    validation = check(text)
    assert [(d.code, d.message) for d in validation.diagnostics] == [
        ("NEB301", "unknown column 'churn' in 'customers'"),
        ("NEB301", "unknown column 'age' in 'customers'"),
    ]


def test_preprocessing_chain_columns() -> None:
    text = PROJECT.replace(
        "    models:\n",
        "    preprocessing:\n"
        "      clean: {input: customers, clean: {drop_columns: [plan]}}\n"
        "      feats:\n"
        "        input: clean\n"
        "        features: {ratio: charges / (tenure + 1)}\n"
        "        transform: {scale: [ratio, tenure], one_hot: [plan]}\n"
        "    models:\n",
    ).replace(
        "dataset: customers\n        target: churned\n      rf", "dataset: feats\n        target: churned\n      rf"
    )
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.message == "unknown column 'plan' in the input of 'feats'"
    assert validation.document.value is not None


def test_preprocessing_cycle() -> None:
    text = PROJECT.replace(
        "    models:\n",
        "    preprocessing:\n      a: {input: b}\n      b: {input: c}\n      c: {input: a}\n    models:\n",
    )
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB302"
    assert "a -> b -> c -> a" in diagnostic.message


def test_environment_overrides_must_target_existing_things() -> None:
    text = PROJECT + (
        "environments:\n"
        "  dev:\n"
        "    overrides:\n"
        "      churn:\n"
        "        deployments:\n"
        "          apii: {replicas: 1}\n"
        "          api: {traffic: {one: 50, three: 50}}\n"
        "        models: {xgb: {resources: {cpu: 1}}}\n"
        "      nope: {}\n"
    )
    assert errors(text) == [("NEB301", 31), ("NEB301", 32), ("NEB301", 33), ("NEB301", 34)]


def test_deployment_environments_must_exist() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        environments: [prod]\n")
    assert errors(text) == [("NEB301", 23)]


def test_expression_parsing() -> None:
    assert parse_expression("log(a) + b / (c + 1)") == (frozenset({"a", "b", "c"}), None)
    names, error = parse_expression("__import__('os')")
    assert names is None and error is not None
    names, error = parse_expression("a +")
    assert names is None and error is not None and "cannot parse" in error
    names, error = parse_expression("a.b")
    assert names is None and error is not None
