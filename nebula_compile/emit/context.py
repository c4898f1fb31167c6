"""What every emitter may know besides the graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nebula_compile.ir.graph import ResourceGraph, content_hash

T = TypeVar("T")


@dataclass(frozen=True)
class EmitContext:
    environment: str
    cache: dict[tuple[str, ...], Any] | None = field(default=None, compare=False)
    """Emitted output by content key, shared by compiles that are mostly alike (plan's two sides)."""


def shared_key(graph: ResourceGraph) -> str:
    """What every project's output depends on besides the project itself."""
    return content_hash(
        [graph.settings, graph.platform, graph.revision]
        + [[r.id, r.hash] for kind in ("connection", "role", "binding") for r in graph.of_kind(kind)]
    )


def cached(context: EmitContext, key: tuple[str, ...], build: Callable[[], T]) -> T:
    """`build()`, or what it returned before for the same key in this context's cache."""
    if context.cache is None:
        return build()
    if key not in context.cache:
        context.cache[key] = build()
    value: T = context.cache[key]
    return value
