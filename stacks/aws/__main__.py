"""`pulumi up` from this folder: set `nebula-aws:manifest` to a compiled build/<env>/manifest.json first."""

from stacks.aws import main

main()
