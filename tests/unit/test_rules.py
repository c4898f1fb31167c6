"""rules: the semantic checks that one object's schema cannot express."""

from __future__ import annotations

import pytest

from tests.unit.helpers import PROJECT, check, errors


def test_traffic_must_sum_to_100() -> None:
    validation = check(PROJECT.replace("traffic: 30", "traffic: 20"))
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB211"
    assert "sums to 90%" in diagnostic.message and "one 70%" in diagnostic.message


def test_traffic_must_sum_to_100_after_overrides() -> None:
    text = (
        PROJECT
        + "environments:\n  prod:\n    overrides:\n      churn:\n        deployments:\n          api: {traffic: {one: 50}}\n"
    )
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB211"
    assert "environment 'prod'" in diagnostic.message and "80%" in diagnostic.message
    assert diagnostic.span is not None and diagnostic.span.line == 31


def test_variants_need_shares() -> None:
    assert errors(PROJECT.replace(", traffic: 30", "")) == [("NEB211", 25)]


def test_model_and_variants_are_exclusive() -> None:
    assert errors(PROJECT.replace("      api:\n", "      api:\n        model: lr\n")) == [("NEB211", 23)]


@pytest.mark.parametrize(
    ("replace", "code"),
    [
        (("task: classification", "task: clustering"), "NEB213"),
        (("        task: classification\n", ""), "NEB213"),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        task: regression\n",
            ),
            "NEB213",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        metrics: [rmse]\n",
            ),
            "NEB214",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        gates: ['r2 >= 0.5']\n",
            ),
            "NEB215",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        params: {n_estimators: 5}\n",
            ),
            "NEB216",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        framework: torch\n",
            ),
            "NEB226",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        retraining: {schedule: 'every day'}\n",
            ),
            "NEB212",
        ),
        (
            (
                "        algorithm: logistic_regression\n",
                "        algorithm: logistic_regression\n        retraining: {schedule: '0 3 * * 1 2024'}\n",
            ),
            "NEB212",
        ),
        (
            (
                "        algorithm: logistic_regression\n        dataset: customers\n        target: churned\n",
                "        algorithm: logistic_regression\n        dataset: customers\n",
            ),
            "NEB218",
        ),
    ],
)
def test_model_rules(replace: tuple[str, str], code: str) -> None:
    text = PROJECT.replace(*replace, 1)
    assert text != PROJECT
    assert [c for c, _ in errors(text)] == [code]


def test_tuning_rules() -> None:
    text = PROJECT.replace(
        "        algorithm: random_forest\n",
        "        algorithm: random_forest\n"
        "        tuning:\n"
        "          strategy: grid\n"
        "          metric: rmse\n"
        "          space:\n"
        "            max_depth: {low: 2, high: 8}\n"
        "            n_estimator: [10, 20]\n"
        "            min_samples_leaf: {low: 5, high: 1, step: 1}\n"
        "            max_features: {low: 0, high: 1, log: true, step: 0.1}\n",
    )
    codes = sorted(c for c, _ in errors(text))
    assert codes == ["NEB214", "NEB217", "NEB217", "NEB217", "NEB217"]


def test_gate_on_default_metric_passes() -> None:
    text = PROJECT.replace(
        "        target: churned\n      rf:", "        target: churned\n        gates: ['roc_auc >= 0.8']\n      rf:"
    )
    assert check(text).ok


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  churn:\n", "  Churn:\n"),
        ("      api:\n", "      1api:\n"),
        ("          one:", "          one_:"),
        ("      customers:\n", "      customers_v2:\n"),
    ],
)
def test_names_must_be_kubernetes_names(old: str, new: str) -> None:
    text = (
        PROJECT.replace(old, new).replace("dataset: customers", "dataset: customers_v2")
        if "customers_v2" in new
        else PROJECT.replace(old, new)
    )
    assert [c for c, _ in errors(text)] == ["NEB210"]


def test_project_name_length_counts_the_namespace_prefix() -> None:
    name = "p" * 60
    text = PROJECT.replace("  churn:\n", f"  {name}:\n") + "environments:\n  production: {}\n"
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB210"
    assert diagnostic.message == (
        f"namespace 'production-{name}' of project '{name}' in environment 'production' is 71 characters; the limit is 63"
    )


def test_variant_and_deployment_names_together() -> None:
    text = PROJECT.replace("      api:\n", f"      {'a' * 40}:\n").replace("          one:", f"          {'o' * 30}:")
    assert [c for c, _ in errors(text)] == ["NEB210"]


@pytest.mark.parametrize(
    ("connection", "source", "code"),
    [
        ("{type: s3, bucket: my-bucket}", "{connection: c, table: t}", "NEB219"),
        ("{type: postgresql, host: h, database: d}", "{connection: c, path: x.csv}", "NEB219"),
        ("{type: postgresql, host: h, database: d}", "{connection: c, collection: x}", "NEB219"),
        ("{type: local, path: data}", "{connection: c, path: x.dat}", "NEB219"),
        ("{type: local, path: data}", "{connection: c, path: x.csv, table: t}", "NEB219"),
        ("{type: local, path: data}", "{path: x.csv, builtin: sklearn.iris}", "NEB219"),
    ],
)
def test_source_fits_connection(connection: str, source: str, code: str) -> None:
    text = (
        PROJECT.replace("        format: csv\n", f"        source: {source}\n") + f"connections:\n  c: {connection}\n"
    )
    assert [c for c, _ in errors(text)] == [code]


def test_source_with_known_suffix_infers_the_format() -> None:
    text = (
        PROJECT.replace("        format: csv\n", "        source: {connection: c, path: 'x/*.parquet'}\n")
        + "connections:\n  c: {type: gcs, bucket: b}\n"
    )
    assert check(text).ok


def test_column_rules() -> None:
    text = PROJECT.replace("charges: float", "charges: {type: float, min: 5, max: 1}").replace(
        "churned: boolean", "churned: {type: boolean, min: 0}"
    )
    assert sorted(errors(text)) == [("NEB220", 8), ("NEB220", 10)]


def test_autoscaling_bounds() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        autoscaling: {min: 5, max: 2}\n")
    assert errors(text) == [("NEB221", 23)]


def test_state_url_with_password() -> None:
    text = PROJECT + "platform: {state: 'postgresql://nebula:s3cret@db:5432/nebula'}\n"
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB204"
    assert "s3cret" not in diagnostic.message


def test_state_url_without_password_is_fine() -> None:
    assert check(PROJECT + "platform: {state: 'postgresql://nebula@db:5432/nebula'}\n").ok


def test_secret_looking_options() -> None:
    text = (
        PROJECT
        + "connections:\n  c: {type: postgresql, host: h, database: d, options: {api_token: abc, connect_timeout: 10}}\n"
    )
    assert errors(text) == [("NEB204", 27)]


def test_warnings_do_not_fail() -> None:
    text = PROJECT.replace(
        "        algorithm: logistic_regression\n",
        "        algorithm: logistic_regression\n        resources: {gpu: 1}\n",
    )
    validation = check(text)
    assert validation.ok
    assert [(d.code, d.severity.value) for d in validation.diagnostics] == [("NEB225", "warning")]
