"""`nebula compile` as users run it: byte-identical output, atomic replacement, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest

from nebula_compile.output import OutputError, write_tree
from tests.compile.cases import ROOT


def nebula(*args: str, cwd: Path, seed: str = "0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nebula_compile", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": seed, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)},
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_byte_identical_across_hash_seeds_and_working_directories(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "multi-env", repo)
    first = nebula("compile", "--revision", "none", "--out", str(tmp_path / "a"), cwd=repo, seed="1")
    assert first.returncode == 0, first.stderr
    (tmp_path / "elsewhere").mkdir()
    second = nebula(
        "compile",
        str(repo / "nebula.yaml"),
        "--revision",
        "none",
        "--out",
        str(tmp_path / "b"),
        cwd=tmp_path / "elsewhere",
        seed="4242",
    )
    assert second.returncode == 0, second.stderr
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a == b
    for name, data in a.items():
        assert b"\r\n" not in data, name
        assert str(tmp_path).encode() not in data, f"{name} holds an absolute path"


def test_a_failed_compile_leaves_the_last_good_output(tmp_path: Path) -> None:
    config = tmp_path / "nebula.yaml"
    shutil.copy(ROOT / "examples" / "minimal" / "nebula.yaml", config)
    assert nebula("compile", "--revision", "none", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path / "build")
    config.write_text(config.read_text().replace("decision_tree", "decision_tre"))
    result = nebula("compile", "--revision", "none", cwd=tmp_path)
    assert result.returncode == 1
    assert "build is unchanged" in result.stderr and "NEB205" in result.stderr
    assert snapshot(tmp_path / "build") == before


def test_files_that_no_longer_belong_are_removed(tmp_path: Path) -> None:
    config = tmp_path / "nebula.yaml"
    shutil.copy(ROOT / "examples" / "minimal" / "nebula.yaml", config)
    assert nebula("compile", "--revision", "none", cwd=tmp_path).returncode == 0
    assert (tmp_path / "build/dev/kubernetes/iris/deployment-iris-api.yaml").exists()
    config.write_text(config.read_text().replace("iris-api", "flowers-api") + "environments: {staging: {}}\n")
    result = nebula("compile", "--revision", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "build/dev").exists(), "an environment that is gone is removed"
    assert (tmp_path / "build/staging/kubernetes/iris/deployment-flowers-api.yaml").exists()
    assert "removed build/dev" in result.stdout
    leftovers = [p.name for p in (tmp_path / "build").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_folder_nebula_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "out" / "dev"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="was not written by nebula"):
        write_tree(str(mine), {"a.yaml": "a: 1\n"})
    assert (mine / "notes.txt").read_text() == "mine"


def test_compile_one_environment_and_json_report(tmp_path: Path) -> None:
    result = nebula(
        "compile",
        str(ROOT / "nebula.yaml"),
        "--env",
        "prod",
        "--revision",
        "none",
        "--out",
        str(tmp_path),
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report["environments"]) == ["prod"]
    assert report["environments"]["prod"]["resources"] == len(
        json.loads((tmp_path / "prod/manifest.json").read_text())["resources"]
    )
    unknown = nebula("compile", str(ROOT / "nebula.yaml"), "--env", "prd", "--out", str(tmp_path), cwd=tmp_path)
    assert unknown.returncode == 1
    assert "unknown environment 'prd'" in unknown.stderr and "did you mean 'prod'?" in unknown.stderr


def test_provenance_records_the_git_commit(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path)
    repo.close()
    shutil.copy(ROOT / "examples" / "minimal" / "nebula.yaml", tmp_path / "nebula.yaml")
    repo.index.add(["nebula.yaml"])
    commit = repo.index.commit("platform v1", author=git.Actor("ci", "ci@example.com"))
    assert nebula("compile", cwd=tmp_path).returncode == 0
    deployment = (tmp_path / "build/dev/kubernetes/iris/deployment-iris-api.yaml").read_text()
    assert f"nebula/commit: {commit.hexsha}" in deployment
    assert "nebula/source: nebula.yaml:10" in deployment
    manifest = json.loads((tmp_path / "build/dev/manifest.json").read_text())
    assert manifest["revision"] == commit.hexsha


def test_output_outside_git_has_no_commit(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "minimal" / "nebula.yaml", tmp_path / "nebula.yaml")
    assert nebula("compile", cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "build/dev/manifest.json").read_text())["revision"] is None


def test_write_tree_leaves_nothing_behind_when_a_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "dev"
    write_tree(str(target), {"a.yaml": "a: 1\n"})
    real_open = open

    def failing_open(path: str, *args: object, **kwargs: object) -> object:
        if str(path).endswith("b.yaml"):
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OSError, match="No space"):
        write_tree(str(target), {"a.yaml": "a: 2\n", "b.yaml": "b: 1\n"})
    monkeypatch.undo()
    assert (target / "a.yaml").read_text() == "a: 1\n"
    assert sorted(os.listdir(tmp_path)) == ["dev"]
