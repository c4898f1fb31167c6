"""Nebula's Pulumi programs: `aws` (the platform on AWS) and `kubernetes` (the compiled objects into a cluster).

Installed as the package `stacks`. Each reads what `nebula compile` wrote for one
environment (`manifest.json` and its neighbours), never the compiler's internals.
"""
