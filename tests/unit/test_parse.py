"""parse: YAML text -> plain values, with the surprises of YAML 1.1 removed."""

from __future__ import annotations

import math

import pytest

from nebula_compile.source.parse import MAX_EXPANDED, parse


def value(text: str) -> object:
    parsed = parse(text, "t.yaml")
    assert parsed.diagnostics == (), parsed.diagnostics
    return parsed.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: yes", "yes"),
        ("a: no", "no"),
        ("a: on", "on"),
        ("a: NO", "NO"),
        ("a: 2024-01-01", "2024-01-01"),
        ("a: 12:30:00", "12:30:00"),
        ("a: 0123", "0123"),
        ("a: 1_000", "1_000"),
        ("a: 0x1F", 31),
        ("a: 0o17", 15),
        ("a: -7", -7),
        ("a: 1.5", 1.5),
        ("a: 1e3", 1000.0),
        ("a: .5", 0.5),
        ("a: true", True),
        ("a: False", False),
        ("a: ~", None),
        ("a: null", None),
        ("a:", None),
        ("a: '5'", "5"),
        ('a: "true"', "true"),
        ("a: 1.10", 1.1),
    ],
)
def test_core_schema_scalars(text: str, expected: object) -> None:
    assert value(text) == {"a": expected}


def test_special_floats() -> None:
    parsed = value("a: .inf\nb: -.inf\nc: .nan")
    assert isinstance(parsed, dict)
    assert parsed["a"] == math.inf
    assert parsed["b"] == -math.inf
    assert math.isnan(parsed["c"])


def test_keys_are_always_text() -> None:
    # every key in the language is a name or a field, so `1:` names variant "1"
    assert value("200: ok\ntrue: x\n1.5: y\n~: z") == {"200": "ok", "true": "x", "1.5": "y", "~": "z"}


def test_anchors_aliases_and_merge_keys() -> None:
    parsed = value(
        "defaults: &d {cpu: 1, memory: 2Gi}\n"
        "small: {<<: *d, cpu: 2}\n"
        "multi: {<<: [*d, {gpu: 1}], memory: 8Gi}\n"
        "copy: *d\n"
    )
    assert parsed == {
        "defaults": {"cpu": 1, "memory": "2Gi"},
        "small": {"cpu": 2, "memory": "2Gi"},
        "multi": {"cpu": 1, "memory": "8Gi", "gpu": 1},
        "copy": {"cpu": 1, "memory": "2Gi"},
    }


def test_duplicate_key_is_reported_with_both_lines() -> None:
    parsed = parse("a: 1\nb:\n  c: 1\n  c: 2\n", "t.yaml")
    (diagnostic,) = parsed.diagnostics
    assert diagnostic.code == "NEB102"
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (4, 3)
    assert diagnostic.notes[0][1].line == 3


def test_all_duplicates_are_reported_at_once() -> None:
    parsed = parse("a: 1\na: 2\nb: 1\nb: 2\n", "t.yaml")
    assert [d.span.line for d in parsed.diagnostics if d.span] == [2, 4]


def test_billion_laughs_stops_fast() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    parsed = parse("\n".join(lines), "bomb.yaml")
    assert parsed.value is None
    (diagnostic,) = parsed.diagnostics
    assert diagnostic.code == "NEB103"
    assert f"{MAX_EXPANDED:,}" in diagnostic.message


def test_shared_alias_values_are_not_copied() -> None:
    parsed = value("a: &a [1, 2]\nb: *a\n")
    assert isinstance(parsed, dict)
    assert parsed["a"] is parsed["b"]


def test_recursive_alias_is_an_error() -> None:
    parsed = parse("a: &a\n  b: *a\n", "t.yaml")
    assert [d.code for d in parsed.diagnostics] == ["NEB103"]


@pytest.mark.parametrize("text", ["a: !!python/object:os.system x", "a: !custom 1", "a: !!binary aGk=", "a: !!set {x}"])
def test_unsafe_or_unknown_tags_are_refused(text: str) -> None:
    parsed = parse(text, "t.yaml")
    assert [d.code for d in parsed.diagnostics] == ["NEB104"]


def test_explicit_standard_tags_work() -> None:
    assert value("a: !!str 123\nb: !!int '7'") == {"a": "123", "b": 7}


def test_unclosed_bracket_points_where_it_opened() -> None:
    parsed = parse("a: 1\nb: [1, 2\nc: 3\n", "t.yaml")
    (diagnostic,) = parsed.diagnostics
    assert diagnostic.code == "NEB101"
    assert diagnostic.message == "invalid YAML: this '[' is never closed"
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (2, 4)
    assert diagnostic.notes[0][1].line == 3


def test_unclosed_quote_and_missing_colon() -> None:
    (quote,) = parse('a: 1\nb: "text\nc: 3\n', "t.yaml").diagnostics
    assert quote.span is not None and (quote.span.line, quote.span.column) == (2, 4)
    (colon,) = parse("roles:\n  viewer: [x]\n  editor\n    permissions: [y]\n", "t.yaml").diagnostics
    assert colon.span is not None and (colon.span.line, colon.span.column) == (3, 3)
    assert colon.hint is not None and "key: value" in colon.hint


def test_duplicate_anchor() -> None:
    (diagnostic,) = parse("a: &x 1\nb: &x 2\n", "t.yaml").diagnostics
    assert diagnostic.message == "this anchor name is already used"
    assert diagnostic.span is not None and diagnostic.span.line == 2
    assert diagnostic.notes[0][1].line == 1


def test_tab_indentation_gets_a_hint() -> None:
    (diagnostic,) = parse("a:\n\tb: 1\n", "t.yaml").diagnostics
    assert diagnostic.code == "NEB101"
    assert diagnostic.hint is not None and "tabs" in diagnostic.hint


def test_second_document_is_an_error() -> None:
    (diagnostic,) = parse("a: 1\n---\nb: 2\n", "t.yaml").diagnostics
    assert diagnostic.code == "NEB101"
    assert "second" in diagnostic.message


def test_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nebula_compile.source.parse.MAX_BYTES", 10)
    (diagnostic,) = parse("a: 12345678901234567890", "big.yaml").diagnostics
    assert diagnostic.code == "NEB105"


def test_empty_document_is_an_empty_mapping() -> None:
    assert parse("# only a comment\n", "t.yaml").value == {}


def test_non_scalar_key_is_an_error() -> None:
    (diagnostic,) = parse("? [a, b]\n: 1\n", "t.yaml").diagnostics
    assert diagnostic.code == "NEB101"


def test_deep_nesting_is_a_diagnostic_not_a_crash() -> None:
    depth = 5000
    parsed = parse("a: " + "[" * depth + "]" * depth, "deep.yaml")
    assert parsed.value is None
    (diagnostic,) = parsed.diagnostics
    assert diagnostic.code == "NEB101"
    assert "nesting" in diagnostic.message


def test_control_character_points_at_its_column() -> None:
    (diagnostic,) = parse("a: 1\nb: é\x1fy\n", "t.yaml").diagnostics
    assert diagnostic.code == "NEB101"
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (2, 5)
    assert "U+001F" in diagnostic.message
