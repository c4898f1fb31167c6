"""Canonical YAML: the same objects give the same bytes on every machine.

Key order is the order the emitters build (apiVersion, kind, metadata, spec, as
Kubernetes users read them); labels and annotations are sorted by the emitters.
Multi-line strings are written as literal blocks, nothing is wrapped, LF only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[misc]
    pass


def _str(dumper: Any, value: str) -> Any:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(value: Any) -> str:
    text: str = yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    return text


def dump_all(values: Iterable[Any]) -> str:
    return "---\n".join(dump(v) for v in values)
