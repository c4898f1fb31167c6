"""The corpus of invalid configurations in tests/cases/invalid.

Each case is a file `NNN-name.yaml`, or a folder `NNN-name/` with a `nebula.yaml`
and the files it includes. Its first lines say what must be reported:

    # expect: NEB201 line 7
    # expect: NEB301 projects/a.yaml line 3

Every expectation must be met by an error diagnostic with that code, that
line (and that file, when named), and the case must report no other error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nebula_compile.api import validate_path

CASES = Path(__file__).parent / "cases" / "invalid"
_EXPECT = re.compile(r"^#\s*expect:\s*(NEB\d{3})\s+(?:(\S+\.ya?ml)\s+)?line\s+(\d+)\s*$")


def _cases() -> list[Path]:
    return sorted(p if p.is_file() else p / "nebula.yaml" for p in CASES.iterdir() if p.suffix == ".yaml" or p.is_dir())


def _expectations(path: Path) -> list[tuple[str, str, int]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(line)
        if match:
            code, file, number = match.groups()
            target = path.parent / file if file else path
            found.append((code, str(target), int(number)))
    return found


def test_corpus_is_large_enough() -> None:
    assert len(_cases()) >= 40


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.parent.name if p.name == "nebula.yaml" else p.stem)
def test_invalid_case(case: Path) -> None:
    expected = _expectations(case)
    assert expected, f"{case} has no '# expect:' line"
    validation = validate_path(str(case))
    assert not validation.ok
    errors = [d for d in validation.diagnostics if d.is_error]
    got = sorted((d.code, str(Path(d.span.file)), d.span.line) for d in errors if d.span is not None)
    assert all(d.span is not None for d in errors), "every error must point at a line"
    assert got == sorted(expected)
    for diagnostic in errors:
        assert diagnostic.message
