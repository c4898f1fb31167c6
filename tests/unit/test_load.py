"""load: include:, merging of files, and positions that survive the merge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nebula_compile.source import load, load_text

Write = Callable[[str, str], Path]


def codes(document: object) -> list[str]:
    return [d.code for d in document.diagnostics]  # type: ignore[attr-defined]


def test_named_sections_merge_and_lists_concatenate(write: Write) -> None:
    root = write(
        "nebula.yaml", "include: [parts/*.yaml]\nprojects:\n  a: {}\nbindings:\n  - {subject: user:x, role: r}\n"
    )
    write("parts/b.yaml", "projects:\n  b: {}\nbindings:\n  - {subject: user:y, role: r}\n")
    write("parts/c.yaml", "projects:\n  c: {}\nroles:\n  r: [projects:read]\n")
    document = load(str(root))
    assert codes(document) == []
    assert document.value is not None
    assert list(document.value["projects"]) == ["a", "b", "c"]
    assert [b["subject"] for b in document.value["bindings"]] == ["user:x", "user:y"]
    assert document.value["roles"] == {"r": ["projects:read"]}


def test_positions_point_into_the_included_file(write: Write) -> None:
    root = write("nebula.yaml", "include: projects.yaml\n")
    write("projects.yaml", "projects:\n  churn:\n    models:\n      m: {algorithm: svm}\n")
    document = load(str(root))
    span = document.sourcemap.span(("projects", "churn", "models", "m", "algorithm"))
    assert span is not None
    assert span.file.endswith("projects.yaml")
    assert (span.line, span.column) == (4, 22)
    bindings_span = document.sourcemap.span(("projects", "churn"), key=True)
    assert bindings_span is not None and bindings_span.line == 2


def test_list_positions_after_concatenation(write: Write) -> None:
    root = write("nebula.yaml", "include: [more.yaml]\nbindings:\n  - {subject: user:a, role: r}\n")
    write("more.yaml", "# more bindings\nbindings:\n  - {subject: user:b, role: r}\n")
    document = load(str(root))
    second = document.sourcemap.span(("bindings", 1, "role"))
    assert second is not None and second.file.endswith("more.yaml") and second.line == 3


def test_include_cycle(write: Write) -> None:
    root = write("nebula.yaml", "include: a.yaml\n")
    write("a.yaml", "include: b.yaml\n")
    write("b.yaml", "include: a.yaml\n")
    document = load(str(root))
    assert codes(document) == ["NEB107"]
    assert "a.yaml -> b.yaml -> a.yaml" in document.diagnostics[0].message
    span = document.diagnostics[0].span
    assert span is not None and span.file.endswith("b.yaml")


def test_self_include_is_a_cycle(write: Write) -> None:
    root = write("nebula.yaml", "include: nebula.yaml\n")
    assert codes(load(str(root))) == ["NEB107"]


def test_diamond_include_reads_a_file_once(write: Write) -> None:
    root = write("nebula.yaml", "include: [a.yaml, b.yaml]\n")
    write("a.yaml", "include: shared.yaml\n")
    write("b.yaml", "include: shared.yaml\n")
    write("shared.yaml", "projects:\n  p: {}\n")
    document = load(str(root))
    assert codes(document) == []
    assert document.value == {"include": ["a.yaml", "b.yaml"], "projects": {"p": {}}}


def test_missing_include_and_empty_glob(write: Write) -> None:
    root = write("nebula.yaml", "include:\n  - nothere.yaml\n  - parts/*.yaml\n")
    document = load(str(root))
    assert codes(document) == ["NEB100", "NEB106"]
    assert [d.span.line for d in document.diagnostics if d.span] == [2, 3]


def test_absolute_include_is_refused(write: Write, tmp_path: Path) -> None:
    other = write("other.yaml", "projects: {}\n")
    root = write("nebula.yaml", f"include: {other}\n")
    assert codes(load(str(root))) == ["NEB106"]


def test_same_name_in_two_files(write: Write) -> None:
    root = write("nebula.yaml", "include: more.yaml\nprojects:\n  churn: {}\n")
    write("more.yaml", "\nprojects:\n  churn: {description: again}\n")
    document = load(str(root))
    (diagnostic,) = document.diagnostics
    assert diagnostic.code == "NEB108"
    assert diagnostic.span is not None and diagnostic.span.file.endswith("more.yaml") and diagnostic.span.line == 3
    assert diagnostic.notes[0][1].line == 3 and diagnostic.notes[0][1].file.endswith("nebula.yaml")


def test_single_section_in_two_files(write: Write) -> None:
    root = write("nebula.yaml", "include: more.yaml\nplatform: {name: a}\n")
    write("more.yaml", "platform: {name: b}\n")
    assert codes(load(str(root))) == ["NEB108"]


def test_version_may_repeat_when_equal(write: Write) -> None:
    root = write("nebula.yaml", "version: 1\ninclude: more.yaml\n")
    write("more.yaml", "version: 1\nprojects: {}\n")
    assert codes(load(str(root))) == []


def test_top_level_must_be_a_mapping() -> None:
    assert codes(load_text("- a\n- b\n")) == ["NEB108"]


def test_missing_root_file(tmp_path: Path) -> None:
    document = load(str(tmp_path / "nope.yaml"))
    assert codes(document) == ["NEB100"]
    assert document.value is None
    assert document.diagnostics[0].hint and "nebula init" in document.diagnostics[0].hint


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "nebula.yaml"
    path.write_bytes(b"a: \xff\xfe\n")
    assert codes(load(str(path))) == ["NEB100"]


def test_glob_matches_are_sorted(write: Write) -> None:
    root = write("nebula.yaml", "include: p/*.yaml\n")
    for name in ("zeta", "alpha", "mid"):
        write(f"p/{name}.yaml", f"projects:\n  {name}: {{}}\n")
    document = load(str(root))
    assert document.value is not None
    assert list(document.value["projects"]) == ["alpha", "mid", "zeta"]
