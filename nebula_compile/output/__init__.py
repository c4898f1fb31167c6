"""Writing outputs: atomically, byte for byte the same on every machine."""

from nebula_compile.output.atomic import write_text_atomic

__all__ = ["write_text_atomic"]
