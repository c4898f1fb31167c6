"""The resource graph (manifest.json) and the lowering pass that builds it."""

from nebula_compile.ir.graph import MANIFEST_VERSION, Resource, ResourceGraph, Source
from nebula_compile.ir.lower import lower

__all__ = ["MANIFEST_VERSION", "Resource", "ResourceGraph", "Source", "lower"]
