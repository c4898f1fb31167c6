"""Git: the revision a configuration comes from (and, later, plan and apply)."""

from nebula_compile.gitops.revision import current_revision, repository_root

__all__ = ["current_revision", "repository_root"]
