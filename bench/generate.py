"""A generator of valid nebula.yaml configurations of any size, for benchmarks.

`generate(projects=N)` writes N projects, each with two datasets (one with a
column schema), a preprocessing step, two models (one tuned), an A/B deployment
with alerts and drift, and per-environment overrides: seven named objects per
project, plus their columns, variants and alerts. `generate(deployments=N)` scales the deployment count instead.
The output is deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import sys


def _project(i: int, deployments: int) -> list[str]:
    p = f"proj-{i:05d}"
    lines = [
        f"  {p}:",
        f"    description: Generated project {i}",
        f"    owners: [team-{i % 50}@example.com]",
        "    datasets:",
        "      events:",
        f"        source: {{connection: warehouse, table: analytics.events_{i}}}",
        "        columns:",
        "          user_id: {type: string, unique: true}",
        "          age: {type: integer, min: 0, max: 130}",
        "          spend: {type: float, min: 0, missing: 0.02}",
        "          plan: {type: category, values: [free, pro, team]}",
        "          churned: boolean",
        "      uploads: {format: csv}",
        "    preprocessing:",
        "      prepared:",
        "        input: events",
        "        clean: {drop_duplicates: true, drop_columns: [user_id], missing: {strategy: median}}",
        "        features: {spend_per_year: spend / (age + 1)}",
        "        transform: {scale: [age, spend, spend_per_year], one_hot: [plan]}",
        "    models:",
        "      baseline:",
        "        algorithm: logistic_regression",
        "        dataset: prepared",
        "        target: churned",
        "        params: {max_iter: 300, regularization: {kind: l2, strength: 0.5}}",
        '        gates: ["roc_auc >= 0.7"]',
        "      boosted:",
        "        task: classification",
        "        algorithm: gradient_boosting",
        "        dataset: prepared",
        "        target: churned",
        "        params: {learning_rate: 0.1, n_estimators: 200}",
        "        tuning:",
        "          strategy: random",
        "          trials: 20",
        "          metric: roc_auc",
        "          space: {max_depth: [2, 3, 4], learning_rate: {low: 0.01, high: 0.3, log: true}}",
        '        gates: ["roc_auc >= 0.75", "recall >= 0.5"]',
        '        retraining: {schedule: "0 3 * * 1", on_drift: true}',
        "    deployments:",
    ]
    for d in range(deployments):
        lines += [
            f"      api-{d:03d}:",
            "        variants:",
            "          champion: {model: baseline, traffic: 90}",
            "          challenger: {model: boosted, version: challenger, traffic: 10}",
            "        replicas: 2",
            "        autoscaling: {min: 2, max: 8}",
            "        resources: {cpu: 500m, memory: 1Gi}",
            "        monitoring:",
            "          alerts:",
            "            slow: {metric: latency_p99, threshold: 0.25, for: 5m}",
            "            errors: {metric: error_rate, threshold: 0.02, for: 2m, severity: critical}",
            "          drift: {method: psi, threshold: 0.2, window: 1h}",
        ]
    return lines


def generate(projects: int = 0, deployments: int = 0) -> str:
    """A config of `projects` projects, or of `deployments` deployments (10 per project)."""
    if deployments:
        per_project = 10
        projects = max(1, -(-deployments // per_project))
        counts = [min(per_project, deployments - i * per_project) for i in range(projects)]
    else:
        counts = [1] * projects
    lines = [
        "version: 1",
        "platform: {name: generated, state: {env: DATABASE_URL}}",
        "environments:",
        "  dev:",
        "    overrides:",
    ]
    for i, count in enumerate(counts):
        if count:
            lines.append(
                f"      proj-{i:05d}: {{deployments: {{api-000: {{replicas: 1, autoscaling: {{min: 1, max: 2}}}}}}}}"
            )
    lines += [
        "  prod:",
        "    production: true",
        "    overrides:",
    ]
    for i, count in enumerate(counts):
        if count:
            lines.append(
                f"      proj-{i:05d}: {{deployments: {{api-000: {{traffic: {{champion: 50, challenger: 50}}}}}}}}"
            )
    lines += [
        "connections:",
        "  warehouse: {type: postgresql, host: db.internal, database: analytics, password: {secret: warehouse}}",
        "roles:",
        "  viewer: [projects:read, models:read]",
        "  editor: [projects:*, models:*, deployments:*]",
        "bindings:",
        "  - {subject: group:everyone, role: viewer}",
        "projects:",
    ]
    for i, count in enumerate(counts):
        lines += _project(i, count)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--projects", type=int)
    group.add_argument("--deployments", type=int)
    args = parser.parse_args()
    sys.stdout.write(generate(projects=args.projects or 0, deployments=args.deployments or 0))


if __name__ == "__main__":
    main()
