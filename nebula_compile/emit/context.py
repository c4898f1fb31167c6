"""What every emitter may know besides the graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EmitContext:
    environment: str
    cache: dict[tuple[str, ...], Any] | None = field(default=None, compare=False)
    """Emitted output by content key, shared by compiles that are mostly alike (plan's two sides)."""
