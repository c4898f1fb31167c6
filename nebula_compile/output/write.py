"""write_tree: put one environment's output in place, all of it or none of it.

Files are written into a temporary sibling folder, which then replaces the
environment's folder by rename. A compile that fails never reaches this step, so
the last good output stays; files that no longer belong to the output disappear
with the old folder. A folder that Nebula did not write is never replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping

MARKER = ".nebula-output"
MARKER_TEXT = "Written by `nebula compile`; this folder is replaced as a whole on every compile.\n"


class OutputError(Exception):
    """The output folder cannot be written (a user-facing problem, not a bug)."""


def _write_file(item: tuple[str, str]) -> None:
    path, text = item
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def owned(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, MARKER))


def write_tree(folder: str, files: Mapping[str, str]) -> None:
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.exists(folder) and not owned(folder):
        raise OutputError(f"{folder} exists and was not written by nebula; remove it or choose another --out")
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.new-", dir=parent)
    try:
        everything = {**files, MARKER: MARKER_TEXT}
        for directory in sorted({os.path.dirname(os.path.join(staging, *p.split("/"))) for p in everything}):
            os.makedirs(directory, exist_ok=True)
        for relative, text in everything.items():
            _write_file((os.path.join(staging, *relative.split("/")), text))
        old = None
        if os.path.exists(folder):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-", dir=parent)
            os.rmdir(old)
            os.rename(folder, old)
        os.rename(staging, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale(out_dir: str, keep: set[str]) -> list[str]:
    """Remove environment folders this compile did not produce, if nebula wrote them."""
    removed: list[str] = []
    if not os.path.isdir(out_dir):
        return removed
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if name not in keep and not name.startswith(".") and os.path.isdir(path) and owned(path):
            shutil.rmtree(path)
            removed.append(name)
    return removed
