"""Edge cases found by review: each once crashed, slipped through, or pointed at the wrong place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nebula_compile import cli
from nebula_compile.api import validate_path
from nebula_compile.resolve.rules import cron_error
from tests.unit.helpers import PROJECT, check, errors

Write = Callable[[str, str], Path]


def codes(validation: object) -> list[str]:
    return [d.code for d in validation.diagnostics]  # type: ignore[attr-defined]


# --- loading -------------------------------------------------------------------------------------


def test_bindings_as_list_and_mapping_in_two_files(write: Write) -> None:
    root = write(
        "nebula.yaml", "include: [b.yaml]\nroles: {r: [projects:read]}\nbindings:\n  - {subject: 'user:a', role: r}\n"
    )
    write("b.yaml", "bindings: {subject: 'user:b', role: r}\n")
    validation = validate_path(str(root))
    assert codes(validation) == ["NEB108"]
    assert "must be a list in every file" in validation.diagnostics[0].message


def test_top_level_merge_key(write: Write) -> None:
    root = write(
        "nebula.yaml",
        "<<: {bindings: [{subject: 'user:a', role: r}], projects: {p: {models: {m: {algorithm: foo, dataset: d}}}}}\n"
        "roles: {r: [projects:read]}\n",
    )
    validation = validate_path(str(root))
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB205"
    assert diagnostic.span is not None and diagnostic.span.line == 1


def test_nul_in_include_path(write: Write) -> None:
    root = write("nebula.yaml", 'include: ["a\\0.yaml"]\n')
    assert codes(validate_path(str(root))) == ["NEB100"]


def test_null_section_merges_with_included_one(write: Write) -> None:
    root = write("nebula.yaml", "include: [p.yaml]\nprojects:\n")
    write("p.yaml", "projects:\n  p: {}\n")
    assert validate_path(str(root)).ok


def test_glob_characters_in_the_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "repo[1]"
    (folder / "envs").mkdir(parents=True)
    (folder / "nebula.yaml").write_text("include: ['envs/*.yaml']\n")
    (folder / "envs" / "dev.yaml").write_text("environments:\n  dev: {}\n")
    assert validate_path(str(folder / "nebula.yaml")).ok


def test_glob_that_matches_the_including_file_skips_it(write: Write) -> None:
    root = write("nebula.yaml", "include: [parts/index.yaml]\n")
    write("parts/index.yaml", "include: ['*.yaml']\n")
    write("parts/p.yaml", "projects:\n  p: {}\n")
    validation = validate_path(str(root))
    assert validation.ok, validation.diagnostics


# --- expressions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["+".join(["a"] * 3000), "-" * 200_000 + "a", "(" * 300 + "a" + ")" * 300])
def test_huge_expressions_are_diagnostics(expression: str) -> None:
    text = PROJECT.replace(
        "    models:\n",
        f"    preprocessing:\n      s: {{input: customers, features: {{f: '{expression}'}}}}\n    models:\n",
    )
    assert [c for c, _ in errors(text)] == ["NEB224"]


@pytest.mark.parametrize("expression", ["tenure if churned else 1", "'x'", "log + 1"])
def test_expressions_are_arithmetic_only(expression: str) -> None:
    text = PROJECT.replace(
        "    models:\n",
        f'    preprocessing:\n      s: {{input: customers, features: {{f: "{expression}"}}}}\n    models:\n',
    )
    assert [c for c, _ in errors(text)] == ["NEB224"]


def test_a_dropped_column_is_gone_within_the_same_step() -> None:
    text = PROJECT.replace(
        "    models:\n",
        "    preprocessing:\n      s: {input: customers, clean: {drop_columns: [plan]}, transform: {one_hot: [plan]}}\n    models:\n",
    )
    assert [c for c, _ in errors(text)] == ["NEB301"]


# --- environment views -----------------------------------------------------------------------------

VIEW = """\
projects:
  p:
    datasets: {d: {format: csv, columns: {a: float, y: boolean}}}
    models:
      m: {algorithm: logistic_regression, dataset: d, target: y}
      mlongnamexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: {algorithm: logistic_regression, dataset: d, target: y}
    deployments:
      lam: {target: aws_lambda, model: m}
environments:
  prod:
    overrides:
      p:
        deployments: {lam: {autoscaling: {min: 2, max: 3}}}
        models:
          m: {resources: {cpu: 2, gpu: 4}, retraining: {on_drift: true}}
          mlongnamexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: {retraining: {schedule: "0 1 * * *"}}
"""


def test_rules_run_again_on_what_an_environment_overrides() -> None:
    validation = check(VIEW)
    found = sorted((d.code, d.severity.value, d.span.line if d.span else 0) for d in validation.diagnostics)
    assert found == [
        ("NEB210", "error", 6),  # the name to shorten; the message names the environment
        ("NEB222", "warning", 13),
        ("NEB225", "warning", 15),
        ("NEB227", "warning", 15),
    ]
    assert all("(in environment 'prod')" in d.message for d in validation.diagnostics)


def test_a_base_error_is_not_repeated_for_an_environment() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        autoscaling: {min: 5, max: 2}\n") + (
        "environments:\n  prod:\n    overrides:\n      churn:\n        deployments:\n          api: {replicas: 4}\n"
    )
    assert [c for c, _ in errors(text)] == ["NEB221"]


def test_overriding_what_an_environment_does_not_run() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        environments: [dev]\n") + (
        "environments:\n  dev: {}\n  prod:\n    overrides:\n      churn:\n        deployments:\n"
        "          api: {traffic: {one: 30}, autoscaling: {min: 9, max: 2}}\n"
    )
    assert errors(text) == [("NEB303", 33)]


def test_namespace_prefix_must_be_usable() -> None:
    assert [
        c for c, _ in errors("environments: {prod: {kubernetes: {namespace_prefix: Prod_}}}\nprojects: {p: {}}\n")
    ] == ["NEB210"]
    long_env = "a-very-long-environment-name-that-is-still-a-valid-label-ok-63c"
    validation = check(f"environments: {{{long_env}: {{}}}}\nprojects: {{churn: {{}}}}\n")
    (diagnostic,) = validation.diagnostics
    assert "limit is 40" in diagnostic.message and diagnostic.span is not None and diagnostic.span.line == 1


# --- secrets -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("connections: {c: {type: postgresql, host: h, database: d, options: {api_key: 123456789}}}\n", 1),
        ("platform: {artifacts: 's3://AKIA:secretkey@bucket/prefix'}\n", 1),
        ("connections:\n  m: {type: mongodb, database: d, hosts: ['mongodb://u:pw@h1']}\n", 2),
        (
            PROJECT.replace(
                "      api:\n", "      api:\n        monitoring: {logs: {sink: loki, url: 'https://admin:pw@loki'}}\n"
            ),
            23,
        ),
    ],
)
def test_literal_secrets_anywhere(text: str, line: int) -> None:
    found = errors(text)
    assert ("NEB204", line) in found


def test_where_a_secret_lives_is_not_a_secret() -> None:
    assert check(
        "connections: {c: {type: postgresql, host: h, database: d, options: {passfile: /home/u/.pgpass, sslpassword: {env: X}}}}\n"
    ).ok


# --- schema wording --------------------------------------------------------------------------------------


def test_split_must_leave_rows_to_train_on() -> None:
    text = PROJECT.replace(
        "        target: churned\n      rf:",
        "        target: churned\n        split: {test: 0.6, validation: 0.6}\n      rf:",
    )
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB203" and "no rows to train on" in diagnostic.message


def test_empty_metrics_list() -> None:
    text = PROJECT.replace(
        "        target: churned\n      rf:", "        target: churned\n        metrics: []\n      rf:"
    )
    assert [c for c, _ in errors(text)] == ["NEB203"]


def test_quoted_version_and_float_version() -> None:
    (quoted,) = check("version: '1'\n").diagnostics
    assert quoted.hint == "write 1 without quotes: it is a number here"
    assert [d.code for d in check("version: 1.0\n").diagnostics] == ["NEB205"]


def test_unknown_key_inside_a_secret_reference() -> None:
    validation = check("connections:\n  x: {type: mysql, host: h, database: d, password: {secret: a, env: B}}\n")
    (diagnostic,) = validation.diagnostics
    assert diagnostic.message == "unknown key 'env' in 'password' of connection 'x'"
    assert diagnostic.hint is not None and "{env: VAR}" in diagnostic.hint


def test_scalar_unions_say_it_once() -> None:
    validation = check("projects:\n  p:\n    models:\n      m: {algorithm: svm, dataset: d, params: {foo: {a: 1}}}\n")
    (diagnostic,) = validation.diagnostics
    assert (
        diagnostic.message
        == "'params.foo' of model 'm': input should be a string, a number or a boolean, got a mapping"
    )


def test_gate_with_leading_dot_and_type_as_list() -> None:
    text = PROJECT.replace(
        "        target: churned\n      rf:", "        target: churned\n        gates: ['roc_auc >= .8']\n      rf:"
    )
    assert check(text).ok
    (diagnostic,) = check("connections:\n  c: {type: [postgresql], host: h, database: d}\n").diagnostics
    assert diagnostic.message == "'type' of connection 'c' must be a string, not a list"


def test_column_type_wording() -> None:
    (diagnostic,) = check(PROJECT.replace("charges: float", "charges: floaty")).diagnostics
    assert "not a valid 'column type' for column 'charges'" in diagnostic.message


# --- CLI and cron --------------------------------------------------------------------------------------------


def test_max_errors_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["validate", "--max-errors", "-3"])
    assert stop.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("expression", "ok"),
    [
        ("0 3 * * 1", True),
        ("*/15 9-17 * * MON-FRI", True),
        ("0 0 31 2 *", False),
        ("0 0 L * *", False),
        ("0 0 1W * *", False),
        ("*/99999999999999999999 * * * *", False),
        ("60 * * * *", False),
        ("0 0 * * * *", False),
    ],
)
def test_cron_schedules_kubernetes_accepts(expression: str, ok: bool) -> None:
    assert (cron_error(expression) is None) is ok
