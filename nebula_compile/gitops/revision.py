"""The git commit a configuration file belongs to, for provenance annotations."""

from __future__ import annotations

import os


def current_revision(path: str) -> str | None:
    """HEAD of the repository that holds `path`, or None outside git (or with no commit yet)."""
    try:
        import git
    except ImportError:  # pragma: no cover - gitpython is a core dependency
        return None
    try:
        with git.Repo(os.path.dirname(os.path.abspath(path)) or ".", search_parent_directories=True) as repo:
            return str(repo.head.commit.hexsha)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


def repository_root(path: str) -> str | None:
    """The top folder of the git repository that holds `path`, or None outside git."""
    try:
        import git
    except ImportError:  # pragma: no cover
        return None
    try:
        with git.Repo(os.path.dirname(os.path.abspath(path)) or ".", search_parent_directories=True) as repo:
            return str(repo.working_tree_dir)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
