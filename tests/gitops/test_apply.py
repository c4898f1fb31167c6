"""The GitOps loop end to end, in a real git repository, against SQLite and the real PostgreSQL server.

v1 is committed and applied; a branch changes it to v2; the plan shows exactly
that change; the saved plan is applied; v1 is rolled back to; a concurrent apply
waits and is refused naming the holder; a killed apply leaves v1 or v2, never a mix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest

from nebula_compile.api import apply_config, compile_path, drift_config, plan_config
from nebula_compile.state import Store
from tests.compile.cases import ROOT

V1 = """\
platform: {name: shop, state: "sqlite:///.nebula/state.db", deploy_branch: deploy}
environments:
  dev: {}
  prod: {production: true}
projects:
  shop:
    datasets:
      orders: {format: csv, columns: {amount: float, late: boolean}}
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
V2 = V1.replace("traffic: 90", "traffic: 60").replace("traffic: 10}", "traffic: 40}")
ACTOR = git.Actor("Ada", "ada@example.com")


@pytest.fixture
def repo(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "platform"
    folder.mkdir()
    monkeypatch.setenv("DATABASE_URL", database)
    with git.Repo.init(folder, initial_branch="main") as repository:
        (folder / "nebula.yaml").write_text(V1)
        (folder / ".gitignore").write_text(".nebula/\nplan.json\n")
        repository.index.add(["nebula.yaml", ".gitignore"])
        repository.index.commit("v1", author=ACTOR, committer=ACTOR)
    return folder


def commit(folder: Path, text: str, message: str, branch: str | None = None) -> str:
    with git.Repo(folder) as repository:
        if branch:
            repository.git.checkout("-b", branch)
        (folder / "nebula.yaml").write_text(text)
        repository.index.add(["nebula.yaml"])
        return str(repository.index.commit(message, author=ACTOR, committer=ACTOR).hexsha)


def state_hashes(folder: Path) -> dict[str, str | None]:
    store = Store.open(os.environ["DATABASE_URL"])
    try:
        return {env: store.current_hash(env) for env in ("dev", "prod")}
    finally:
        store.close()


def graph_hashes(folder: Path) -> dict[str, str]:
    compilation = compile_path(str(folder / "nebula.yaml"), revision=None)
    return {env: g.hash for env, g in compilation.graphs.items()}


def test_the_whole_loop(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    v1_hashes = graph_hashes(repo)
    first = apply_config(config, ref="main")
    assert first.ok, first.diagnostics
    assert [(r.environment, r.created) for r in first.results] == [
        ("dev", 6),
        ("prod", 6),
    ]  # project, dataset, two models, deployment, auth
    assert state_hashes(repo) == v1_hashes

    again = apply_config(config, ref="main")
    assert again.ok and all(not r.changed for r in again.results), "applying the same revision twice changes nothing"

    with git.Repo(repo) as repository:
        deploy = repository.commit("deploy")
        assert deploy.message.startswith("nebula: prod from ") or deploy.message.startswith("nebula: dev from ")
        files = {str(b.path) for b in deploy.tree.traverse() if isinstance(b, git.Blob)}
        assert "prod/kubernetes/kustomization.yaml" in files and "dev/manifest.json" in files
        assert repository.active_branch.name == "main", "the checked-out branch is untouched"

    v2 = commit(repo, V2, "v2: shift traffic", branch="shift")
    planned = plan_config(config, "main", "shift")
    assert planned.ok and planned.plan is not None
    changed = sorted({c.id for e in planned.plan.environments for c in e.resources})
    assert changed == ["deployment.shop.api"]
    (repo / "plan.json").write_text(json.dumps(planned.plan.to_json()))
    cli = subprocess.run(
        [sys.executable, "-m", "nebula_compile", "plan", "--base", "main", "--head", "shift", "--detailed-exitcode"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert cli.returncode == 2, cli.stderr
    assert "champion 90% -> 60%" in cli.stdout

    second = apply_config(config, plan_file=str(repo / "plan.json"))
    assert second.ok, second.diagnostics
    assert [r.updated for r in second.results] == [1, 1]
    assert second.commit == v2
    v2_hashes = state_hashes(repo)

    stale = apply_config(config, plan_file=str(repo / "plan.json"))
    assert stale.ok, "re-applying the plan that is already applied changes nothing"

    commit(repo, V2.replace("replicas: 2", "replicas: 3"), "v3: more replicas", branch="scale")
    assert apply_config(config, ref="scale").ok
    refused = apply_config(config, plan_file=str(repo / "plan.json"))
    assert not refused.ok, "the state moved to v3 since the v1 -> v2 plan was made"
    assert any(d.code == "NEB606" and "stale" in d.message for d in refused.diagnostics)
    assert state_hashes(repo) != v2_hashes and state_hashes(repo) != v1_hashes

    rollback = apply_config(config, ref="main")
    assert rollback.ok and [r.updated for r in rollback.results] == [1, 1]
    assert state_hashes(repo) == v1_hashes
    assert v2_hashes != v1_hashes

    store = Store.open(os.environ["DATABASE_URL"])
    try:
        revisions = store.revisions("prod")
        assert [r.commit for r in revisions][-1] == revisions[0].commit, "the rollback recorded v1's commit"
        assert revisions[0].author == "Ada"
        assert [e.action for e in store.audit()].count("apply") == 8
    finally:
        store.close()


def test_a_concurrent_apply_waits_then_fails_naming_the_holder(repo: Path) -> None:
    store = Store.open(os.environ["DATABASE_URL"])
    try:
        with store.lock():
            started = time.monotonic()
            report = apply_config(str(repo / "nebula.yaml"), ref="main", lock_timeout=1.0)
            waited = time.monotonic() - started
    finally:
        store.close()
    assert not report.ok and waited >= 1.0
    (problem,) = [d for d in report.diagnostics if d.code == "NEB607"]
    assert f"pid {os.getpid()}" in problem.message and "gave up after 1s" in problem.message
    assert state_hashes(repo) == {"dev": None, "prod": None}


KILLED = """
import os, sys, time
sys.path.insert(0, {root!r})
from nebula_compile.api import compile_path
from nebula_compile.state import Store
graphs = list(compile_path({config!r}, revision=None).graphs.values())
store = Store.open(os.environ["DATABASE_URL"])
with store.lock():
    with store.sessions.begin() as session:
        for graph in graphs:
            store._apply(session, graph, None, "killed", "killed")
        session.flush()
        open({marker!r}, "w").write("inside")
        time.sleep(60)
"""


def test_a_killed_apply_leaves_the_old_state_and_its_lock_is_recovered(repo: Path, tmp_path: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    v1_hashes = state_hashes(repo)
    (repo / "nebula.yaml").write_text(V2)  # the working tree the killed apply reads
    marker = tmp_path / "inside"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED.format(root=str(ROOT), config=config, marker=str(marker))],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the child never reached its transaction"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert state_hashes(repo) == v1_hashes, "state is v1, not a mix"
    recovered = apply_config(config, lock_timeout=5.0, hydrate_branch=False)
    assert recovered.ok, recovered.diagnostics
    assert state_hashes(repo) == graph_hashes(repo)


def test_drift_finds_unapplied_changes_and_unmanaged_objects(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    drifts, _, _ = drift_config(config)
    assert not any(d.drifted for d in drifts)
    (repo / "nebula.yaml").write_text(V2)
    add_unmanaged("project", None, "adhoc", "0" * 16)
    drifts, _, _ = drift_config(config)
    dev = next(d for d in drifts if d.environment == "dev")
    assert dev.changed == ("deployment.shop.api",) and dev.unmanaged == ("project.adhoc",)
    result = subprocess.run(
        [sys.executable, "-m", "nebula_compile", "drift", "--detailed-exitcode"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2 and "created outside git (unmanaged)" in result.stdout


def add_unmanaged(kind: str, project: str | None, name: str, digest: str) -> None:
    """What the runtime API writes for an object it creates: a dev row marked unmanaged."""
    from nebula_compile.state.schema import StateResource

    store = Store.open(os.environ["DATABASE_URL"])
    try:
        with store.sessions.begin() as session:
            rid = f"{kind}.{project}.{name}" if project else f"{kind}.{name}"
            session.add(
                StateResource(
                    environment="dev",
                    id=rid,
                    kind=kind,
                    project=project,
                    name=name,
                    hash=digest,
                    spec={},
                    managed=False,
                )
            )
    finally:
        store.close()


def test_a_mandatory_policy_violation_is_not_applied(repo: Path) -> None:
    (repo / "nebula.yaml").write_text(V1.replace("        replicas: 2\n", ""))
    report = apply_config(str(repo / "nebula.yaml"), hydrate_branch=False)
    assert not report.ok and any(d.code == "NEB401" for d in report.diagnostics)
    assert state_hashes(repo) == {"dev": None, "prod": None}


def test_an_object_created_through_the_api_is_adopted_when_git_describes_it(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    add_unmanaged("model", "shop", "gb", "abcd")
    with_gb = V1.replace(
        "    deployments:\n",
        '      gb: {task: classification, algorithm: gradient_boosting, dataset: orders, target: late, gates: ["roc_auc >= 0.7"]}\n    deployments:\n',
    )
    commit(repo, with_gb, "describe gb in git")
    report = apply_config(config, ref="main")
    assert report.ok, report.diagnostics
    drifts, _, _ = drift_config(config)
    assert not any(d.drifted for d in drifts), drifts


def test_an_environment_removed_from_the_config_is_emptied(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    commit(repo, V1.replace("  prod: {production: true}\n", ""), "drop prod")
    report = apply_config(config, ref="main")
    assert report.ok
    prod = next(r for r in report.results if r.environment == "prod")
    assert prod.deleted == 6
    with git.Repo(repo) as repository:
        files = {str(b.path) for b in repository.commit("deploy").tree.traverse() if isinstance(b, git.Blob)}
    assert not any(f.startswith("prod/") for f in files) and any(f.startswith("dev/") for f in files)
    drifts, _, _ = drift_config(config)
    assert not any(d.drifted for d in drifts)


def test_an_unchanged_environment_gets_no_deploy_commit(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    commit(
        repo,
        V1.replace("  prod: {production: true}\n", "  prod: {production: true, dns: {zone: ml.example.com}}\n"),
        "prod zone",
    )
    report = apply_config(config, ref="main")
    assert report.ok
    assert [r.environment for r in report.results if r.changed] == ["prod"]
    assert set(report.deployed) == {"prod"}


def test_drift_sees_environment_settings(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    assert apply_config(config, ref="main").ok
    (repo / "nebula.yaml").write_text(
        V1.replace("  prod: {production: true}\n", "  prod: {production: true, dns: {zone: ml.example.com}}\n")
    )
    drifts, _, _ = drift_config(config)
    prod = next(d for d in drifts if d.environment == "prod")
    assert prod.settings_changed and prod.drifted


def test_an_uncommitted_working_tree_is_recorded_as_uncommitted(repo: Path) -> None:
    config = str(repo / "nebula.yaml")
    (repo / "nebula.yaml").write_text(V1.replace("replicas: 2", "replicas: 3"))
    report = apply_config(config)
    assert report.ok and report.commit is None and report.deployed == {}
    store = Store.open(os.environ["DATABASE_URL"])
    try:
        assert all(r.commit is None for r in store.revisions())
    finally:
        store.close()


@pytest.mark.parametrize(
    "content",
    [
        '{"plan": "nebula.plan/v1"}',
        '{"plan": "nebula.plan/v1", "environments": [{}]}',
        '{"plan": "nebula.plan/v1", "environments": "x"}',
        "not json",
    ],
)
def test_a_malformed_plan_is_refused(repo: Path, content: str) -> None:
    (repo / "bad.json").write_text(content)
    report = apply_config(str(repo / "nebula.yaml"), plan_file=str(repo / "bad.json"))
    assert not report.ok and [d.code for d in report.diagnostics] == ["NEB604"]
