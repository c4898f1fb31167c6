"""Binding references and checking the language's rules over a validated spec."""

from nebula_compile.resolve.overlay import overlay
from nebula_compile.resolve.resolve import Resolved, resolve
from nebula_compile.resolve.rules import check_rules

__all__ = ["Resolved", "check_rules", "overlay", "resolve"]
