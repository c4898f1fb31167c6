"""Writing outputs: atomically, byte for byte the same on every machine."""

from nebula_compile.output.atomic import write_text_atomic
from nebula_compile.output.write import OutputError, remove_stale, write_tree

__all__ = ["OutputError", "remove_stale", "write_text_atomic", "write_tree"]
