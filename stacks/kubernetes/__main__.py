"""`pulumi up` from this folder: set `nebula-kubernetes:objects` to a compiled build/<env>/kubernetes folder."""

from stacks.kubernetes import main

main()
