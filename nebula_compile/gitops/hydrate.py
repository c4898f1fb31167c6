"""hydrate: commit an environment's rendered output to the deploy branch, for Argo CD or Flux.

The commit is built with git plumbing in a temporary index (`git add` of a
temporary tree, `write-tree`, `commit-tree`, `update-ref`), so the user's working
tree, index and checked-out branch are never touched. The deploy branch holds one
folder per environment; a commit that would change nothing is not made.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping


class HydrateError(Exception):
    pass


def _git(repo: str, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", repo, *args],
        capture_output=True,
        text=True,
        check=False,
        input=stdin,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise HydrateError(f"git {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def hydrate(
    repo: str, branch: str, environment: str, files: Mapping[str, str], message: str, author: tuple[str, str]
) -> str | None:
    """Commit `files` under `<environment>/` on `branch`; the new commit, or None when nothing changed."""
    ref = f"refs/heads/{branch}"
    parent = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--verify", "--quiet", ref], capture_output=True, text=True, check=False
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="nebula-hydrate-") as folder:
        index = os.path.join(folder, "index")
        tree_dir = os.path.join(folder, "tree")
        os.makedirs(tree_dir)
        env = {"GIT_INDEX_FILE": index}
        if parent:
            _git(repo, "read-tree", parent, env=env)  # keep the other environments' folders
            _git(repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", environment, env=env)
        for path, text in files.items():
            target = os.path.join(tree_dir, environment, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        if files:  # no files: the environment is gone, and its folder with it
            _git(repo, f"--work-tree={tree_dir}", "add", "-A", "-f", "--", environment, env=env)
        tree = _git(repo, "write-tree", env=env)
    if parent and _git(repo, "rev-parse", f"{parent}^{{tree}}") == tree:
        return None
    name, email = author
    identity = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    args = ["commit-tree", tree, "-F", "-"] + (["-p", parent] if parent else [])
    commit = _git(repo, *args, env=identity, stdin=message)
    _git(repo, "update-ref", ref, commit, *([parent] if parent else []))
    return commit
