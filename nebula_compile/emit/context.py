"""What every emitter may know besides the graph."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmitContext:
    environment: str
