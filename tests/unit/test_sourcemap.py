"""SourceMap: value paths back to positions, falling back to the closest ancestor."""

from __future__ import annotations

from nebula_compile.source import load_text

TEXT = """\
base: &base
  cpu: 1
projects:
  churn:
    models:
      m:
        <<: *base
        algorithm: svm
    list:
      - a
      - b
"""


def test_value_and_key_spans() -> None:
    sourcemap = load_text(TEXT).sourcemap
    value = sourcemap.span(("projects", "churn", "models", "m", "algorithm"))
    key = sourcemap.span(("projects", "churn", "models", "m", "algorithm"), key=True)
    assert value is not None and (value.line, value.column) == (8, 20)
    assert key is not None and (key.line, key.column) == (8, 9)


def test_missing_key_falls_back_to_the_closest_ancestor() -> None:
    located = load_text(TEXT).sourcemap.locate(("projects", "churn", "models", "m", "target"))
    assert located is not None
    assert located.path == ("projects", "churn", "models", "m")
    assert located.span.line == 6  # the key that names the block


def test_blocks_point_at_their_key_scalars_at_themselves() -> None:
    sourcemap = load_text(TEXT).sourcemap
    block = sourcemap.span(("projects", "churn", "models"))
    assert block is not None and (block.line, block.column) == (5, 5)
    value = sourcemap.span(("projects", "churn", "models"), key=False)
    assert value is not None and value.line == 6


def test_pydantic_union_tags_are_skipped() -> None:
    located = load_text(TEXT).sourcemap.locate(("projects", "churn", "function-after[x]", "list", 1))
    assert located is not None
    assert located.path == ("projects", "churn", "list", 1)
    assert located.span.line == 11


def test_merged_keys_point_at_the_anchor() -> None:
    span = load_text(TEXT).sourcemap.span(("projects", "churn", "models", "m", "cpu"))
    assert span is not None and span.line == 2


def test_out_of_range_index() -> None:
    located = load_text(TEXT).sourcemap.locate(("projects", "churn", "list", 9))
    assert located is not None and located.path == ("projects", "churn", "list")
