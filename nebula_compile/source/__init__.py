"""Reading and parsing: files (or a git revision) in, YAML values with positions out."""

from nebula_compile.source.load import Document, load, load_text
from nebula_compile.source.sourcemap import SourceMap

__all__ = ["Document", "SourceMap", "load", "load_text"]
