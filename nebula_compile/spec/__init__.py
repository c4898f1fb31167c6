"""The language: typed models, their JSON Schema, and the validate pass."""

from nebula_compile.spec.models import Spec
from nebula_compile.spec.validate import validate

__all__ = ["Spec", "validate"]
