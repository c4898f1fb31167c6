"""diff: two compiled states -> a typed plan of what would change.

The logical diff compares resource graphs: each resource is created, updated (with
its changed fields) or deleted. The rendered diff compares the emitted files, so
the reviewer also sees the exact YAML that Argo CD or Flux would sync.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nebula_compile.ir.graph import Resource, ResourceGraph

Action = Literal["create", "update", "delete"]
_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    id: str
    kind: str
    project: str | None
    name: str
    action: Action
    fields: tuple[FieldChange, ...]
    before: Resource | None
    after: Resource | None

    @property
    def source(self) -> str | None:
        resource = self.after or self.before
        return str(resource.source) if resource and resource.source else None


@dataclass(frozen=True)
class FileChange:
    path: str
    action: Action
    diff: str


def _fields(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out.extend(_fields(before.get(key, _MISSING), after.get(key, _MISSING), sub))
        return out
    if before == after:
        return []
    return [FieldChange(path, None if before is _MISSING else before, None if after is _MISSING else after)]


def diff_graphs(base: ResourceGraph | None, head: ResourceGraph | None) -> list[ResourceChange]:
    before = {r.id: r for r in base} if base is not None else {}
    after = {r.id: r for r in head} if head is not None else {}
    changes: list[ResourceChange] = []
    for rid in sorted(set(before) | set(after)):
        old, new = before.get(rid), after.get(rid)
        if old is not None and new is not None and old.hash == new.hash:
            continue
        resource = new or old
        assert resource is not None
        if old is None:
            action: Action = "create"
            fields = _fields({}, dict(new.spec) if new else {})
        elif new is None:
            action = "delete"
            fields = _fields(dict(old.spec), {})
        else:
            action = "update"
            fields = _fields(dict(old.spec), dict(new.spec))
            if old.depends_on != new.depends_on:
                fields.append(FieldChange("depends_on", list(old.depends_on), list(new.depends_on)))
        changes.append(
            ResourceChange(rid, resource.kind, resource.project, resource.name, action, tuple(fields), old, new)
        )
    return changes


def diff_files(base: Mapping[str, str], head: Mapping[str, str]) -> list[FileChange]:
    """Unified diffs of the files that differ, computed by git in one process (difflib without git)."""
    changed = [p for p in sorted(set(base) | set(head)) if base.get(p) != head.get(p)]
    if not changed:
        return []
    texts = _git_diffs(changed, base, head) if shutil.which("git") else {}
    changes = []
    for path in changed:
        old, new = base.get(path), head.get(path)
        action: Action = "create" if old is None else "delete" if new is None else "update"
        text = texts.get(path)
        if text is None:
            text = "".join(
                difflib.unified_diff(
                    (old or "").splitlines(keepends=True),
                    (new or "").splitlines(keepends=True),
                    fromfile=f"a/{path}" if old is not None else "/dev/null",
                    tofile=f"b/{path}" if new is not None else "/dev/null",
                )
            )
        changes.append(FileChange(path, action, text))
    return changes


def _git_diffs(paths: list[str], base: Mapping[str, str], head: Mapping[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="nebula-plan-") as folder:
        for side, files in (("old", base), ("new", head)):
            for path in paths:
                if path in files:
                    target = os.path.join(folder, side, *path.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "w", encoding="utf-8", newline="\n") as handle:
                        handle.write(files[path])
            os.makedirs(os.path.join(folder, side), exist_ok=True)
        result = subprocess.run(
            ["git", "diff", "--no-index", "--no-color", "--no-ext-diff", "--no-renames", "-U3", "old", "new"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull},
        )
    if result.returncode not in (0, 1):
        return {}
    out: dict[str, str] = {}
    for chunk in re.split(r"(?m)^(?=diff --git )", result.stdout):
        if not chunk.startswith("diff --git "):
            continue
        body = chunk.split("\n", 1)[1] if "\n" in chunk else ""
        lines = [
            line
            for line in body.splitlines(keepends=True)
            if not line.startswith(("index ", "new file mode", "deleted file mode"))
        ]
        text = "".join(lines).replace("--- a/old/", "--- a/").replace("+++ b/new/", "+++ b/")
        match = re.search(r"^(?:\+\+\+ b/|--- a/)(.+)$", text, re.MULTILINE)
        if match:
            out[match.group(1).rstrip("\n")] = text
    return out
