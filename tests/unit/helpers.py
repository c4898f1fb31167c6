"""Building small configs for unit tests."""

from __future__ import annotations

import textwrap

from nebula_compile.api import Validation, validate_text

PROJECT = """\
projects:
  churn:
    datasets:
      customers:
        format: csv
        columns:
          tenure: {type: integer, min: 0}
          charges: float
          plan: {type: category, values: [a, b]}
          churned: boolean
    models:
      lr:
        algorithm: logistic_regression
        dataset: customers
        target: churned
      rf:
        task: classification
        algorithm: random_forest
        dataset: customers
        target: churned
    deployments:
      api:
        variants:
          one: {model: lr, traffic: 70}
          two: {model: rf, traffic: 30}
"""


def check(text: str) -> Validation:
    return validate_text(textwrap.dedent(text))


def errors(text: str) -> list[tuple[str, int]]:
    """(code, line) of every error, in order."""
    validation = check(text)
    return [(d.code, d.span.line if d.span else 0) for d in validation.diagnostics if d.is_error]
