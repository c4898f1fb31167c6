"""Nebula's compiler: nebula.yaml in, validated spec and infrastructure out."""

__version__ = "0.1.0"
