"""Golden files: every shipped config compiles to the tree checked in under tests/golden.

A reviewer reads a change of output as a plain diff of YAML. To accept a change:
`NEBULA_UPDATE_GOLDEN=1 python -m pytest tests/compile/test_golden.py` (or `make golden`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nebula_compile.api import Compilation
from nebula_compile.output.write import MARKER
from tests.compile.cases import CONFIGS, ROOT

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("NEBULA_UPDATE_GOLDEN") == "1"


def tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_output_matches_golden_tree(compiled: dict[str, tuple[Compilation, Path]], config: str) -> None:
    produced = compiled[config][1]
    expected = GOLDEN / config
    if UPDATE:
        shutil.rmtree(expected, ignore_errors=True)
        shutil.copytree(produced, expected, ignore=shutil.ignore_patterns(MARKER))
    got, want = tree(produced), tree(expected)
    assert sorted(got) == sorted(want), "files added or removed; see the golden test's docstring to accept"
    for name in sorted(got):
        assert got[name] == want[name], f"{config}/{name} differs from tests/golden; see the docstring to accept"
