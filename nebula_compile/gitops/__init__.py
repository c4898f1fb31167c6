"""Git: the revision a configuration comes from (and, later, plan and apply)."""

from nebula_compile.gitops.revision import current_revision

__all__ = ["current_revision"]
