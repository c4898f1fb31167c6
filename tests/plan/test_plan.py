"""`nebula plan` in a real git repository: revisions read without a checkout, typed diffs, summaries, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from nebula_compile.api import plan_config
from nebula_compile.plan.render import COMMENT_LIMIT, render_plan_markdown
from tests.compile.cases import ROOT

V1 = """\
environments:
  dev: {}
  prod: {production: true}
projects:
  shop:
    datasets:
      orders: {format: csv, version: "2026-10-01", columns: {amount: float, late: boolean}}
    models:
      lr: {algorithm: logistic_regression, dataset: orders, target: late, gates: ["roc_auc >= 0.7"]}
      rf: {task: classification, algorithm: random_forest, dataset: orders, target: late, gates: ["roc_auc >= 0.7"]}
    deployments:
      api:
        variants:
          champion: {model: lr, traffic: 90}
          challenger: {model: rf, traffic: 10}
        replicas: 2
        monitoring:
          alerts: {slow: {metric: latency_p99, threshold: 0.5}}
          drift: {method: psi}
"""


def nebula(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nebula_compile", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[git.Repo]:
    repository = git.Repo.init(tmp_path, initial_branch="main")
    (tmp_path / "nebula.yaml").write_text(V1)
    repository.index.add(["nebula.yaml"])
    repository.index.commit("v1", author=git.Actor("ci", "ci@example.com"), committer=git.Actor("ci", "ci@example.com"))
    yield repository
    repository.close()


def root(repo: git.Repo) -> Path:
    return Path(str(repo.working_tree_dir))


def test_no_changes(repo: git.Repo) -> None:
    result = nebula("plan", "--base", "HEAD", "--detailed-exitcode", cwd=root(repo))
    assert result.returncode == 0, result.stderr
    assert "No changes." in result.stdout


def test_a_traffic_shift_and_new_alert(repo: git.Repo) -> None:
    path = root(repo) / "nebula.yaml"
    path.write_text(
        V1.replace("traffic: 90", "traffic: 50")
        .replace("traffic: 10}", "traffic: 50}")
        .replace(
            "alerts: {slow: {metric: latency_p99, threshold: 0.5}}",
            "alerts: {slow: {metric: latency_p99, threshold: 0.5}, errors: {metric: error_rate, threshold: 0.01}}",
        )
        .replace('version: "2026-10-01"', 'version: "2026-11-01"')
    )
    result = plan_config(str(path), "HEAD")
    assert result.ok and result.plan is not None
    plan = result.plan
    assert plan.counts == {"create": 0, "update": 4, "delete": 0}  # deployment and dataset, in dev and prod
    prod = next(e for e in plan.environments if e.environment == "prod")
    assert prod.summary.traffic == ("shop/api: challenger 10% -> 50%, champion 90% -> 50% (prod)",)
    assert prod.summary.alerts == ("shop/api: new alert 'errors' (prod)",)
    assert prod.summary.datasets == ("shop/orders: 2026-10-01 -> 2026-11-01 (prod)",)
    api = next(c for c in prod.resources if c.id == "deployment.shop.api")
    assert {f.path for f in api.fields} >= {"variants.champion.traffic", "variants.challenger.traffic"}
    assert api.source == "nebula.yaml:12"
    route = next(f for f in prod.files if f.path == "kubernetes/shop/deployment-api.yaml")
    assert "-      weight: 90" in route.diff and "+      weight: 50" in route.diff

    cli = nebula("plan", "--base", "HEAD", "--detailed-exitcode", "--out", "plan.json", cwd=root(repo))
    assert cli.returncode == 2, cli.stderr
    assert "Traffic: shop/api: challenger 10% -> 50%" in cli.stdout
    saved = json.loads((root(repo) / "plan.json").read_text())
    assert saved["plan"] == "nebula.plan/v1" and saved["counts"]["update"] == 4
    assert saved["base_revision"] == repo.head.commit.hexsha


def test_markdown_comment(repo: git.Repo) -> None:
    path = root(repo) / "nebula.yaml"
    path.write_text(
        V1.replace("replicas: 2", "replicas: 4").replace(
            'gates: ["roc_auc >= 0.7"]}\n      rf', 'gates: ["roc_auc >= 0.7"], resources: {gpu: 1}}\n      rf'
        )
    )
    result = plan_config(str(path), "HEAD")
    assert result.plan is not None
    text = render_plan_markdown(result.plan)
    assert text.startswith("## Nebula plan")
    assert "| prod |" in text and "<details><summary><code>~ deployment.shop.api</code>" in text
    assert "**Cost**: shop/api: up to 2 -> 4 replicas per variant (prod)" in text
    assert "**Cost**: model shop/lr: 0 -> 1 GPUs (dev)" in text
    assert "gpu-needs-gpu-nodes" in text, "the policy results are part of the comment"


def test_mandatory_policy_violation_fails_the_plan(repo: git.Repo) -> None:
    (root(repo) / "nebula.yaml").write_text(V1.replace("        replicas: 2\n", ""))
    result = nebula("plan", "--base", "HEAD", "--detailed-exitcode", cwd=root(repo))
    assert result.returncode == 1
    assert "[prod-min-replicas]" in result.stdout


def test_between_two_commits_without_checkout(repo: git.Repo) -> None:
    first = repo.head.commit.hexsha
    path = root(repo) / "nebula.yaml"
    path.write_text(V1.replace("replicas: 2", "replicas: 3"))
    repo.index.add(["nebula.yaml"])
    second = repo.index.commit(
        "v2", author=git.Actor("ci", "ci@example.com"), committer=git.Actor("ci", "ci@example.com")
    ).hexsha
    path.write_text("this working tree is broken: [\n")
    result = plan_config(str(path), first, second)
    assert result.ok and result.plan is not None
    assert result.plan.counts["update"] == 2
    assert path.read_text() == "this working tree is broken: [\n", "nothing was checked out"
    assert repo.head.commit.hexsha == second


def test_includes_are_read_at_the_revision(repo: git.Repo) -> None:
    base = root(repo)
    (base / "nebula.yaml").write_text("include: [projects/*.yaml]\n" + V1.split("projects:\n")[0])
    (base / "projects").mkdir()
    (base / "projects" / "shop.yaml").write_text("projects:\n" + V1.split("projects:\n")[1])
    repo.index.add(["nebula.yaml", "projects/shop.yaml"])
    repo.index.commit("split", author=git.Actor("ci", "ci@example.com"), committer=git.Actor("ci", "ci@example.com"))
    (base / "projects" / "shop.yaml").write_text(
        "projects:\n" + V1.split("projects:\n")[1].replace("replicas: 2", "replicas: 5")
    )
    result = plan_config(str(base / "nebula.yaml"), "HEAD")
    assert result.ok and result.plan is not None
    assert [c.id for e in result.plan.environments for c in e.resources] == [
        "deployment.shop.api",
        "deployment.shop.api",
    ]


def test_a_new_configuration_plans_every_resource_as_created(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path, initial_branch="main")
    repo.close()
    (tmp_path / "README").write_text("x")
    repo.index.add(["README"])
    repo.index.commit("empty", author=git.Actor("ci", "ci@example.com"), committer=git.Actor("ci", "ci@example.com"))
    (tmp_path / "nebula.yaml").write_text(V1)
    result = plan_config(str(tmp_path / "nebula.yaml"), "HEAD")
    assert result.plan is not None
    assert result.plan.counts["create"] > 0 and result.plan.counts["update"] == 0


def test_unknown_revision_and_invalid_head(repo: git.Repo) -> None:
    result = nebula("plan", "--base", "no-such-branch", cwd=root(repo))
    assert result.returncode == 1 and "unknown revision 'no-such-branch'" in result.stderr
    (root(repo) / "nebula.yaml").write_text(V1.replace("logistic_regression", "logistic"))
    broken = nebula("plan", "--base", "HEAD", cwd=root(repo))
    assert broken.returncode == 1 and "NEB205" in broken.stderr and "Traceback" not in broken.stderr


def test_markdown_fits_a_comment_and_says_what_was_cut(tmp_path: Path) -> None:
    from generate import generate

    repo = git.Repo.init(tmp_path, initial_branch="main")
    repo.close()
    text = generate(deployments=300)
    (tmp_path / "nebula.yaml").write_text(text)
    repo.index.add(["nebula.yaml"])
    repo.index.commit("v1", author=git.Actor("ci", "ci@example.com"), committer=git.Actor("ci", "ci@example.com"))
    (tmp_path / "nebula.yaml").write_text(text.replace("replicas: 2", "replicas: 3"))
    result = plan_config(str(tmp_path / "nebula.yaml"), "HEAD")
    assert result.plan is not None and result.plan.counts["update"] == 570  # dev pins api-000 of each project to 1
    comment = render_plan_markdown(result.plan)
    assert len(comment) <= COMMENT_LIMIT
    assert "more section(s) not shown to fit a comment" in comment
