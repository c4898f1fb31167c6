"""Reading a configuration at a git revision, straight from the object database.

`nebula plan --base origin/main` compiles the config as it was at that commit
without checking anything out: the loader's `read` and `glob` are served from the
commit's tree, so the working tree, the index and HEAD are left alone.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

import git


class RevisionError(Exception):
    """A revision or repository that cannot be read (a user-facing problem)."""


@dataclass(frozen=True)
class GitTree:
    repo_root: str
    commit: str
    files: dict[str, git.Blob]
    """Repository-relative path -> blob, for every file of the commit."""
    repo: git.Repo

    def __enter__(self) -> GitTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.repo.close()  # ends git's cat-file helper processes

    @classmethod
    def at(cls, path: str, revision: str) -> GitTree:
        try:
            repo = git.Repo(os.path.dirname(os.path.abspath(path)) or ".", search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RevisionError(f"{path} is not inside a git repository") from None
        try:
            commit = repo.commit(revision)
        except (git.BadName, ValueError):
            repo.close()
            raise RevisionError(f"unknown revision '{revision}'") from None
        files = {str(blob.path): blob for blob in commit.tree.traverse() if isinstance(blob, git.Blob)}
        return cls(str(repo.working_tree_dir), commit.hexsha, files, repo)

    def _relative(self, path: str) -> str:
        return os.path.relpath(os.path.abspath(path), self.repo_root).replace(os.sep, "/")

    def read(self, path: str) -> str:
        blob = self.files.get(self._relative(path))
        if blob is None:
            raise FileNotFoundError(path)
        data: bytes = blob.data_stream.read()
        return data.decode("utf-8")

    def glob(self, pattern: str) -> list[str]:
        relative = self._relative(pattern)
        recursive = "**" in relative
        matches = []
        for name in self.files:
            # like glob: '*' stays within a folder unless the pattern says '**'
            same_depth = recursive or name.count("/") == relative.count("/")
            if same_depth and fnmatch.fnmatchcase(name, relative):
                matches.append(os.path.join(self.repo_root, name))
        return sorted(matches)
