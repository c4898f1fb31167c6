"""Nebula's machine-learning lifecycle: data, training, registry, serving, drift."""
