"""Policies: data packs and cross-resource checks over the compiled output; they change nothing."""

from nebula_compile.policy.evaluate import PolicyReport, Result, check_policies

__all__ = ["PolicyReport", "Result", "check_policies"]
