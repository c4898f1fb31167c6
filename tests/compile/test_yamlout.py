"""The canonical YAML writer: whatever it writes reads back as exactly what it was given."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula_compile.emit.yamlout import dump, string
from nebula_compile.source.parse import parse

keys = st.text(min_size=1, max_size=12)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "yes",
            "No",
            "on",
            "~",
            "null",
            "0123",
            "1e3",
            "12:30",
            "2024-01-01",
            "- a",
            "a: b",
            "#x",
            "",
            " x",
            "x ",
            "<<",
            "=",
            "a\nb\n",
            "a\n\n",
            "\n",
            "a\r\nb",
            "\t",
            "é",
            "\u2028",
            "\ufeff",
        ]
    ),
)
documents = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=30,
).filter(lambda v: isinstance(v, dict | list))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(documents)
def test_pyyaml_and_nebula_read_back_what_was_written(value: object) -> None:
    text = dump(value)
    assert yaml.safe_load(text) == value
    assert parse(text, "out.yaml").value == _keys_as_text(value)


def _keys_as_text(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _keys_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_as_text(v) for v in value]
    return value


def test_kubernetes_shape_and_quoting() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"a": "true", "b": "0123"}},
        "data": {"config.json": '{\n  "a": 1\n}\n', "list": [1, 2], "empty": {}},
    }
    assert dump(obj) == (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: x\n"
        "  labels:\n"
        '    a: "true"\n'
        '    b: "0123"\n'
        "data:\n"
        "  config.json: |\n"
        "    {\n"
        '      "a": 1\n'
        "    }\n"
        "  list:\n"
        "  - 1\n"
        "  - 2\n"
        "  empty: {}\n"
    )


def test_plain_only_when_safe() -> None:
    assert string("registry.example.com/ml/shop-nn:sha-1234") == "registry.example.com/ml/shop-nn:sha-1234"
    assert string("Generated project 1") == "Generated project 1"
    for risky in ("yes", "Off", "1_000", "0x1F", "1:20", ".inf", "a #b", "a:", "@x", "*x", "!x", "%x", "{x}"):
        assert string(risky).startswith('"'), risky


def test_special_floats() -> None:
    text = dump({"a": math.inf, "b": -math.inf, "c": 1e-7, "d": 2.0})
    loaded = yaml.safe_load(text)
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and loaded["c"] == 1e-7 and loaded["d"] == 2.0
