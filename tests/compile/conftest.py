"""Compiled outputs of every shipped config, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nebula_compile.api import Compilation, compile_path
from nebula_compile.output import write_tree
from tests.compile.cases import CONFIGS


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Compilation, Path]]:
    """name -> (compilation, output folder with one subfolder per environment)."""
    out: dict[str, tuple[Compilation, Path]] = {}
    base = tmp_path_factory.mktemp("compiled")
    for name, config in CONFIGS.items():
        compilation = compile_path(str(config), revision=None)
        assert compilation.ok, [str(d.message) for d in compilation.diagnostics]
        folder = base / name
        for environment, bundle in compilation.outputs.items():
            write_tree(os.path.join(folder, environment), bundle.files)
        out[name] = (compilation, folder)
    return out
